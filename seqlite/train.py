"""Training SeqResNets with the paper's recipe (paper 4.2), resumable after any kill.

One :class:`TrainConfig` says everything about a run; :func:`train` runs it. The recipe
(paper 4.2): SGD with Nesterov momentum 0.9, weight decay 1e-4, initial lr 0.1; CIFAR batch
64 for 300 epochs with lr / 10 at 50% and 75% of the epochs (150 and 225); ImageNet batch 256
for 100 epochs with lr / 10 every 30 epochs. ``recipe="short"`` is a CIFAR run that fits a
free Colab session (:func:`recipe_for` says what it changes and why); ``recipe="quick"`` keeps
the optimiser and uses a short cosine schedule.

A run folder ``out`` holds ``config.json`` (the resolved :class:`TrainConfig`, written at the
start) and, after every epoch, ``last.pt``, ``best.pt`` when the test (or validation) error
is a new best, and one row of ``metrics.csv`` (:mod:`seqlite.metrics`). Checkpoints hold the
model, optimiser, scheduler, AMP scaler, every RNG state and the metrics so far, so
``resume=True`` continues where the last completed epoch ended. The order of the training
images comes from a generator seeded with (seed, epoch), and every random crop and flip from
(seed, epoch, image), never from a worker process's RNG, so a resumed epoch sees the batches
the uninterrupted run saw. What "exactly" means depends on the device:

* CPU: bit for bit. A run killed and resumed ends with the same weights as one that was not
  (tested, with and without worker processes, on the digits and on CIFAR-format data).
* GPU with ``deterministic=True`` (``--deterministic``): the same guarantee, at some cost in
  speed (cuDNN's deterministic algorithms, no autotuning, deterministic cuBLAS workspaces).
* GPU without it: the data, dropout masks and all states are resumed exactly, but cuDNN picks
  nondeterministic algorithms (among them the backward of the per-sample grouped convolution
  of the dropout path), so two runs - resumed or not - differ in the last bits and drift apart
  slowly; the final errors agree statistically, not bitwise.

Before the first epoch, ``time_steps`` warm training steps are timed (and undone) and the
projected time per epoch and for the run is printed and written to ``out/projection.json``.
Mixed precision: ``amp="auto"`` is bf16 on GPUs with bfloat16 tensor cores, fp16 with a loss
scaler (its state is in the checkpoint) on older ones, float32 on CPUs; float32 matrix
products and convolutions on CUDA both use TF32.

Nothing is lost to a kill or replaced unasked: ``last.pt`` is written before ``best.pt`` and
records its best epoch, so a resume rewrites a ``best.pt`` that a kill left stale or missing;
a folder holding any run file is refused unless ``resume`` (with its ``last.pt``) or
``overwrite``; temporary files of interrupted writes are removed when a run starts there.
A NaN or infinite training or test loss stops the run before that epoch is saved.

:func:`train` reads as the run's steps: check the options and the folder, build the data,
the model and optimiser, restore a checkpoint, prepare the folder, then for each epoch train,
evaluate and save.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the run uses DistributedDataParallel (NCCL on GPUs,
gloo on CPU) with a DistributedSampler; ``batch_size`` is the global batch, split evenly
over the processes; only rank 0 prints, writes metrics and checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from . import accel
from ._compat import warn_if_compile_skips_checkpointing
from .accel import AMP_MODES, autocast, make_scaler, resolve_amp
from .checkpoint import CheckpointError, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .data import DATASETS, DataSpec, build_datasets
from .data.augment import EpochIndexSampler, SeededAugmentation
from .data.device import DeviceCIFARLoader
from .metrics import METRICS_COLUMNS, append_metrics, write_metrics
from .registry import create_model, list_models

__all__ = [
    "METRICS_COLUMNS",
    "ConfigError",
    "NonFiniteLossError",
    "OutputError",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "evaluate_checkpoint",
    "project_time",
    "recipe_for",
    "resolve_device",
    "run_files",
    "train",
]

RECIPES = ("paper", "short", "quick")
# What must match between a checkpoint and the command that resumes it.
_RUN_IDENTITY = (
    "model", "model_args", "dataset", "holdout", "subset", "recipe", "epochs", "batch_size", "lr", "seed", "amp",
)


class NonFiniteLossError(FloatingPointError):
    """The training or test loss became NaN or infinite; the run stopped before saving that epoch."""


class OutputError(RuntimeError):
    """A file of the run folder could not be written (no space left, read-only, not a folder...)."""


@dataclass(frozen=True)
class Recipe:
    """Optimiser and schedule of a run (paper 4.2 for ``paper``)."""

    epochs: int
    batch_size: int
    schedule: str  # "milestones": lr/10 at 50% and 75%; "step": lr/10 every step_size; "cosine"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    step_size: int = 30
    warmup_epochs: int = 0  # linear warm-up from lr / (warmup_epochs + 1) before the schedule


def recipe_for(recipe: str, dataset: str) -> Recipe:
    """The defaults of ``recipe`` for ``dataset``; the digits follow the CIFAR recipe.

    ``paper`` is the paper's (paper 4.2). ``short`` (CIFAR and the digits only) is a run
    that fits a free Colab session on one T4: 40 epochs of batch 128 instead of 300 of
    batch 64 (1/15 of the paper's steps), with the paper's SGD (Nesterov momentum 0.9) and

    * lr 0.2: the paper's 0.1 scaled with the batch (linear scaling rule), reached after a
      3-epoch linear warm-up (a large lr on freshly initialised BatchNorm nets can diverge);
    * a cosine decay to 0 instead of the two /10 steps: with few epochs, every epoch spends
      time at a useful lr and the last ones anneal smoothly;
    * weight decay 5e-4 instead of 1e-4: the usual value for short CIFAR schedules, where
      fewer steps need stronger regularisation per step;
    * no label smoothing: not shown to pay on this network, and it changes the training
      loss that the curves show.

    Expected: about 6% test error for ``seqresnet_k8_r4_n1`` on CIFAR-10 (the paper's 300
    epochs give 4.78%, Table 3), an estimate from how networks of this size train under
    such schedules. Not yet measured on a GPU.
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}; got {recipe!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    imagenet = dataset == "imagenet"
    if recipe == "paper":
        return Recipe(100, 256, "step") if imagenet else Recipe(300, 64, "milestones")
    if recipe == "short":
        if imagenet:
            raise ValueError("recipe 'short' is a CIFAR recipe; for ImageNet use 'paper' or 'quick'")
        return Recipe(40, 128, "cosine", lr=0.2, weight_decay=5e-4, warmup_epochs=3)
    quick_epochs = {"imagenet": 16, "cifar10": 30, "cifar100": 30, "digits": 10}[dataset]
    return Recipe(quick_epochs, 256 if imagenet else 64, "cosine")


def _positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return "must be a positive integer"
    return None


def _non_negative_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return "must be a non-negative integer"
    return None


def _seed(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        return "must be an integer from 0 to 2**32 - 1"
    return None


def _positive_finite(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        return "must be a positive finite number"
    return None


def _registered_model(value: Any) -> str | None:
    if value not in list_models():
        return f"must be a registered model name (seqlite.list_models(): {', '.join(list_models())})"
    return None


def _device_name(value: Any) -> str | None:
    if value == "auto":
        return None
    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        return "must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    return None


def _option(default: Any = None, help: str = "", *, factory=None, **cli: Any) -> Any:
    """A :class:`TrainConfig` field with its command-line help and check (``seqlite train`` reads them).

    ``cli`` may hold ``check`` (value -> problem or None), ``choices``, ``metavar``, ``flag`` (the
    option's name when it is not ``--field-name``) and ``cli=False`` (no option).
    """
    metadata = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything about one run. ``None`` means "the recipe's value".

    Each field's metadata holds the help text and the check of the ``seqlite train`` option
    built from it, so the command line and this class cannot disagree on defaults.
    """

    model: str = _option("seqresnet_k8_r4_n1", "a registered model name (seqlite.list_models())",
                         check=_registered_model)
    model_args: dict[str, Any] = _option(
        factory=dict, help="overrides for the model builder, e.g. k=16,r=3 or n=(1,2,1)", metavar="K=V,...")
    dataset: str = _option("digits", "digits: the embedded 8x8 digits (no download)", choices=DATASETS)
    data_dir: str = _option(
        factory=lambda: os.environ.get("SEQLITE_DATA_DIR", "data"),
        help="where datasets are read from / downloaded to (default: $SEQLITE_DATA_DIR or ./data)")
    download: bool = _option(True, "never download; stop if the dataset is not in --data-dir", flag="--no-download")
    verify_data: bool = _option(
        True, "skip the MD5 check of the CIFAR files (for subsets or re-packed copies). The files are still read by "
        "a restricted loader that builds only arrays, lists, strings and numbers, so they cannot run code, and "
        "labels must be class numbers; the images themselves are not checked", flag="--no-verify-data")
    holdout: int = _option(0, "hold out N training images and evaluate on them (paper 4.1: 5000)",
                           check=_non_negative_int, metavar="N")
    subset: int | None = _option(None, "train on N training images only, a fixed random choice (quick experiments)",
                                 check=_positive_int, metavar="N")
    recipe: str = _option(
        "paper",
        "paper: SGD Nesterov 0.9, wd 1e-4, lr 0.1, CIFAR 300 epochs batch 64 lr/10 at 50% and 75%, ImageNet 100 "
        "epochs batch 256 lr/10 every 30; short (CIFAR, fits a Colab session): 40 epochs batch 128, lr 0.2 after "
        "3 warm-up epochs, cosine, wd 5e-4; quick: paper optimiser, short cosine schedule", choices=RECIPES)
    epochs: int | None = _option(None, "default: the recipe's", check=_positive_int)
    batch_size: int | None = _option(None, "global batch size, split over torchrun processes (default: the recipe's)",
                                     check=_positive_int)
    lr: float | None = _option(None, "initial learning rate (default: the recipe's, 0.1)", check=_positive_finite)
    seed: int = _option(0, "seeds the weights, data order, dropout and augmentation", check=_seed)
    device: str = _option("auto", "auto (CUDA when available), cpu, cuda, cuda:1, mps, ...", check=_device_name)
    amp: str = _option(
        "auto", "mixed precision: auto = bf16 on GPUs of compute capability >= 8.0 (A100, H100, RTX 30xx+), fp16 "
        "with a loss scaler on older ones (T4, V100), off (float32; TF32 on CUDA) on CPUs", choices=AMP_MODES)
    channels_last: bool = _option(False, "channels_last memory format (faster on GPUs)")
    compile: bool = _option(
        False, "torch.compile the model. The first epoch pays the compilation: about a minute on a GPU, several "
        "minutes on a CPU; the smaller last batch of an epoch compiles once more (a second, shorter pause)")
    deterministic: bool = _option(
        False, "deterministic GPU kernels (cuDNN deterministic, no autotuning, deterministic algorithms, cuBLAS "
        "workspace): a resumed GPU run then matches an uninterrupted one; slower. CPU runs are exact anyway")
    gpu_data: bool = _option(
        False, "CIFAR only: keep the images on the device as one uint8 tensor and crop, flip and normalise there "
        "in batches (no loader processes; for GPUs fed by few CPU cores, as on Colab)")
    time_steps: int = _option(10, "time this many warm training steps before the first epoch and print the "
                                  "projected time per epoch and for the run (0: skip)", check=_non_negative_int,
                              metavar="N")
    sync_bn: bool = _option(False, "SyncBatchNorm across torchrun processes (CUDA only)")
    workers: int | None = _option(None, "data loader processes (default: 0 for the in-memory digits, else one per "
                                        "CPU this process may use, up to 8)",
                                  check=_non_negative_int)
    out: str | None = _option(None, "output folder (default: runs/MODEL-DATASET)")
    resume: bool = _option(False, "continue the run in OUT from its last.pt (start afresh if OUT holds no run)")
    overwrite: bool = _option(False, "start afresh even if OUT holds a run (its checkpoints and metrics are deleted)")
    progress: bool = _option(True, "no progress bars", flag="--no-progress")

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's values filled in and every field checked."""
        for f in fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                raise ConfigError(f.name, f"{f.name} must be one of {', '.join(f.metadata['choices'])}; got {value!r}")
        recipe = recipe_for(self.recipe, self.dataset)
        cfg = replace(
            self,
            epochs=recipe.epochs if self.epochs is None else self.epochs,
            batch_size=recipe.batch_size if self.batch_size is None else self.batch_size,
            lr=recipe.lr if self.lr is None else self.lr,
            workers=accel.default_workers(self.dataset) if self.workers is None else self.workers,
            model_args=dict(self.model_args),
            out=f"runs/{self.model}-{self.dataset}" if self.out is None else str(self.out),
        )
        for f in fields(cfg):
            value, check = getattr(cfg, f.name), f.metadata.get("check")
            problem = check(value) if check is not None and value is not None else None
            if problem:
                raise ConfigError(f.name, f"{f.name} {problem}, got {value!r}")
        if cfg.resume and cfg.overwrite:
            raise ConfigError("overwrite", "--resume and --overwrite exclude each other: continue the run in out, "
                                           "or replace it")
        cfg.lr = float(cfg.lr)
        return cfg


class ConfigError(ValueError):
    """A :class:`TrainConfig` field has a value it cannot have; ``option`` names the field."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(message)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD, Nesterov momentum 0.9, weight decay 1e-4 on all parameters (paper 4.2)."""
    recipe = recipe_for(cfg.recipe, cfg.dataset)
    return torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr if cfg.lr is None else cfg.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's per-epoch schedule for ``cfg.epochs`` epochs."""
    recipe = recipe_for(cfg.recipe, cfg.dataset)
    epochs = recipe.epochs if cfg.epochs is None else cfg.epochs
    if recipe.schedule == "milestones":
        # lr / 10 at 50% and 75% of training: epochs 150 and 225 of 300 (paper 4.2).
        # (A milestone at epoch 0 would cut the very first lr, so short runs drop it.)
        milestones = [m for m in (epochs // 2, epochs * 3 // 4) if m > 0]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, recipe.step_size, gamma=0.1)
    warmup = recipe.warmup_epochs if epochs > recipe.warmup_epochs else 0
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs - warmup)
    if not warmup:
        return cosine
    # Epochs 1..warmup: lr * 1/(w+1), 2/(w+1), ..., then the cosine from the full lr.
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, 1 / (warmup + 1), 1.0, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


@dataclass
class TrainResult:
    out: Path
    history: list[dict[str, float]]  # one metrics row per epoch
    best_error: float

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1]


# --- processes and devices --------------------------------------------------------------


@dataclass(frozen=True)
class _Process:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when available) or a device name this machine has; ``ConfigError`` otherwise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = _device_name(device)
    if problem:
        raise ConfigError("device", f"device {problem}, got {device!r}")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", f"device {device!r} was asked for but CUDA is not available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError("device", f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                                        "device(s), numbered from 0")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", f"device {device!r} was asked for but MPS is not available; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError("device", f"device {device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


def _start_processes(device: str) -> tuple[_Process, torch.device]:
    """Join torchrun's process group when there is one; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    proc = _Process()
    if world_size > 1:
        proc = _Process(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    dev = resolve_device(device)
    if dev.type == "cuda" and world_size > 1:
        accel.check_local_rank(proc.local_rank)
        dev = torch.device("cuda", proc.local_rank)
    # Before anything opens a CUDA context (the pin-memory thread would open one on GPU 0).
    dev = accel.set_cuda_device(dev)
    if world_size > 1 and not dist.is_initialized():
        accel.init_distributed(dev)
    return proc, dev


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


# --- data -------------------------------------------------------------------------------


def _loader(dataset: Dataset, batch_size: int, cfg: TrainConfig, device: torch.device, sampler, generator,
            persistent: bool = True):
    on_cuda = device.type == "cuda"
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=on_cuda,  # pinned memory only helps (and only exists) with CUDA
        # Test workers would sit idle through every training epoch, holding CPUs (Colab has 2).
        persistent_workers=persistent and cfg.workers > 0,
        generator=generator,
    )


def _to_device(images: torch.Tensor, targets: torch.Tensor, device: torch.device, channels_last: bool):
    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(device, non_blocking=non_blocking)


# --- one epoch --------------------------------------------------------------------------


def _reduce(values: list[float], device: torch.device, proc: _Process) -> list[float]:
    """Sum ``values`` over all processes."""
    if proc.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _all_finite(value: torch.Tensor, proc: _Process) -> bool:
    # Every process must agree, or one would stop while the others wait for it forever.
    flag = torch.isfinite(value).to(torch.int32)
    if proc.world_size > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _train_step(model, images, targets, optimizer, scaler, amp: str, device: torch.device):
    """Forward, loss, backward, update; with fp16 the scaler skips a step whose gradients overflowed."""
    with autocast(device, amp):
        logits = model(images)
        loss = F.cross_entropy(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped (and the scale halved) when a gradient is inf or NaN
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss, logits


def _train_epoch(model, loader, optimizer, scaler, cfg, epoch, device, proc, bar_factory) -> dict[str, float]:
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    seen, checked_step = 0, 0
    start = time.perf_counter()
    bar = bar_factory(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
    log_every = 10
    for step, (images, targets) in enumerate(bar, 1):
        images, targets = _to_device(images, targets, device, cfg.channels_last)
        loss, logits = _train_step(model, images, targets, optimizer, scaler, cfg.amp, device)
        loss_sum += loss.detach().double() * len(targets)
        wrong += (logits.detach().argmax(1) != targets).sum()
        seen += len(targets)
        # A NaN or inf stays in the running sum, so checking it now and then catches every one
        # without a GPU sync per step.
        if step % log_every == 0 or step == len(loader):
            if not _all_finite(loss_sum, proc):
                raise NonFiniteLossError(
                    f"the training loss became {loss_sum.item()} in epoch {epoch + 1} (between steps "
                    f"{checked_step + 1} and {step}) at lr {optimizer.param_groups[0]['lr']:g}; training stopped "
                    f"and nothing of this epoch was saved. Try a smaller --lr, or --amp off."
                )
            checked_step = step
            bar.set_postfix(
                loss=f"{loss_sum.item() / seen:.4f}",
                err=f"{100 * wrong.item() / seen:.2f}%",
                img_s=f"{seen * proc.world_size / (time.perf_counter() - start):.0f}",
                refresh=False,
            )
    total_loss, total_wrong, total_seen = _reduce([loss_sum.item(), float(wrong.item()), float(seen)], device, proc)
    return {"train_loss": total_loss / total_seen, "train_error": 100 * total_wrong / total_seen}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str | None = None,
    amp: str = "off",
    channels_last: bool = False,
    _proc: _Process | None = None,
) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 error (percent) of ``model`` on ``loader``.

    ``device`` defaults to the device of the model's parameters.
    """
    if device is None:
        device = next(model.parameters()).device
    proc = _proc or _Process()
    device = torch.device(device)
    model.eval()
    loss_sum, wrong1, wrong5, seen = 0.0, 0, 0, 0
    for images, targets in loader:
        images, targets = _to_device(images, targets, device, channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        wrong1 += (top[:, 0] != targets).sum().item()
        wrong5 += (~(top == targets[:, None]).any(1)).sum().item()
        seen += len(targets)
    loss_sum, wrong1, wrong5, seen = _reduce([loss_sum, wrong1, wrong5, seen], device, proc)
    return {"loss": loss_sum / seen, "error": 100 * wrong1 / seen, "top5_error": 100 * wrong5 / seen}


# --- the run, step by step ---------------------------------------------------------------


RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "config.json", "projection.json")


@dataclass(frozen=True)
class RunFolder:
    """The files of a run in ``out``: checkpoints, metrics and the resolved configuration."""

    path: Path

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def config(self) -> Path:
        return self.path / "config.json"


@dataclass
class _Progress:
    """Where the run stands: epochs done, their metrics rows, the best error, RNG states to restore."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_error: float = math.inf
    best_epoch: int = 0  # the epoch best.pt holds (0: none yet)
    rng: dict[str, Any] | None = None


@dataclass
class _Loaders:
    train: DataLoader | DeviceCIFARLoader
    test: DataLoader | DeviceCIFARLoader
    sampler: EpochIndexSampler | DeviceCIFARLoader  # set_epoch() before every epoch
    generator: torch.Generator  # reseeded with (seed, epoch) before every epoch


def train(cfg: TrainConfig) -> TrainResult:
    """Run ``cfg`` to its last epoch (continuing ``cfg.out/last.pt`` when ``cfg.resume``)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the library itself needs only torch and torchvision
        raise ImportError(
            "training shows its progress with tqdm, which is not installed: pip install 'seqlite[train]'"
        ) from None

    cfg = cfg.resolved()
    proc, device = _start_processes(cfg.device)
    try:
        return _run(cfg, proc, device, tqdm)
    finally:
        if proc.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(cfg: TrainConfig, proc: _Process, device: torch.device, tqdm) -> TrainResult:
    say = tqdm.write if proc.main else (lambda *a, **k: None)
    cfg = _configure_device(cfg, proc, device)
    run = RunFolder(Path(cfg.out))
    resuming = _check_run_folder(run, cfg)
    # Data and model before anything is written: a missing dataset or a model that does not fit it stops here.
    spec = _build_data(cfg, proc)
    net, optimizer, scheduler, scaler = _build_training(cfg, spec, proc, device)
    progress = _Progress()
    if resuming:
        ckpt = _load_run_checkpoint(run.last)
        progress = _restore(ckpt, run.last, cfg, proc, net, optimizer, scheduler, scaler)
        say(f"resuming {run.last} after epoch {progress.epoch}/{cfg.epochs}")
        if proc.main:
            _repair_best(run, ckpt, say)
        del ckpt
    elif cfg.resume:
        say(f"no run in {run.path} yet; starting from scratch")
    model = _wrap_model(net, cfg, proc, device)
    loaders = _build_loaders(spec, cfg, proc, device)
    if proc.main:
        _prepare_run_folder(run, cfg, progress, resuming)
        say(_describe_run(cfg, net, spec, proc, device))
    if cfg.time_steps and progress.epoch < cfg.epochs:
        projection = _project_time(model, net, loaders, optimizer, scaler, cfg, progress, device, proc)
        if projection is not None and proc.main:
            say(projection.line())
            _write_json(run.path / "projection.json", projection.as_dict())

    if progress.rng is not None:
        restore_rng_state(progress.rng)
    elif proc.world_size > 1:
        _seed_everything(cfg.seed + proc.rank)  # different dropout and augmentation in each process

    def bar_factory(iterable, **kwargs):
        return tqdm(iterable, disable=not (proc.main and cfg.progress), dynamic_ncols=True, **kwargs)

    for epoch in range(progress.epoch, cfg.epochs):
        row = _run_epoch(model, net, loaders, optimizer, scheduler, scaler, cfg, epoch, device, proc, bar_factory)
        if not math.isfinite(row["test_loss"]):
            raise NonFiniteLossError(
                f"the {spec.test_split} loss became {row['test_loss']} after epoch {epoch + 1} at lr {row['lr']:g}; "
                "training stopped and nothing of this epoch was saved. Try a smaller --lr, or --amp off."
            )
        progress.history.append(row)
        progress.epoch = epoch + 1
        improved = row["test_error"] < progress.best_error
        if improved:
            progress.best_error, progress.best_epoch = row["test_error"], epoch + 1
        _save_epoch(run, cfg, spec, proc, net, optimizer, scheduler, scaler, progress, improved)
        say(_describe_epoch(row, cfg, spec) + (" *best*" if improved else ""))
    return TrainResult(out=run.path, history=progress.history, best_error=progress.best_error)


def _check_run_options(cfg: TrainConfig, proc: _Process, device: torch.device) -> None:
    """Options that only make sense on some devices or process counts."""
    try:
        resolve_amp(cfg.amp, device)
    except ValueError as err:
        raise ConfigError("amp", str(err)) from None
    if cfg.gpu_data and cfg.dataset not in ("cifar10", "cifar100"):
        raise ConfigError("gpu_data", f"gpu_data is for CIFAR-10/100 (the pipeline does their crop and flip); "
                                      f"got dataset {cfg.dataset!r}")
    if cfg.sync_bn and proc.world_size > 1 and device.type != "cuda":
        raise ConfigError(
            "sync_bn", f"sync_bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only); found {device}")
    if cfg.batch_size % proc.world_size:
        raise ConfigError(
            "batch_size", f"batch_size {cfg.batch_size} must be divisible by the {proc.world_size} processes")


def _configure_device(cfg: TrainConfig, proc: _Process, device: torch.device) -> TrainConfig:
    """Check the options against the device; set TF32 and determinism; ``amp`` as it resolves here."""
    _check_run_options(cfg, proc, device)
    accel.set_float32_precision(device)
    accel.set_determinism(cfg.deterministic, device)
    # "auto" becomes what it means on this device before the checkpoint compares or records it.
    return replace(cfg, amp=resolve_amp(cfg.amp, device))


def project_time(cfg: TrainConfig) -> accel.Projection | None:
    """What :func:`train` would print before its first epoch, without training or writing anything.

    Builds ``cfg``'s data, model and loaders, times ``cfg.time_steps`` warm training steps
    (``None`` when the epoch has too few batches) and projects them over ``cfg.epochs``: to
    choose a recipe (or a device) with its cost in hand. Seeds the global RNGs with ``cfg.seed``.
    """
    cfg = cfg.resolved()
    if not cfg.time_steps:
        raise ConfigError("time_steps", "time_steps must be positive to project a run's time")
    proc, device = _Process(), accel.set_cuda_device(resolve_device(cfg.device))
    cfg = _configure_device(cfg, proc, device)
    spec = _build_data(cfg, proc)
    net, optimizer, _, scaler = _build_training(cfg, spec, proc, device)
    model = _wrap_model(net, cfg, proc, device)
    loaders = _build_loaders(spec, cfg, proc, device)
    return _project_time(model, net, loaders, optimizer, scaler, cfg, _Progress(), device, proc)


def _check_run_folder(run: RunFolder, cfg: TrainConfig) -> bool:
    """Whether this run continues the one in ``run``; refuses to replace a run unasked.

    Any run file means a run is there, not only ``last.pt``: a folder holding only an earlier
    run's ``best.pt`` or ``metrics.csv`` is not empty. Nothing is written here.
    """
    _check_writable(run.path)
    present = run_files(run.path)
    if not present or cfg.overwrite:
        return False
    if cfg.resume and run.last.exists():
        return True
    listed = ", ".join(present)
    if cfg.resume:
        raise FileExistsError(
            f"{run.path} holds a run ({listed}) but no last.pt to resume it from; pass --overwrite to replace it, "
            "or choose another --out"
        )
    raise FileExistsError(
        f"{run.path} already holds a run ({listed}); pass --resume to continue it, --overwrite to start afresh "
        "there, or choose another --out"
    )


def run_files(folder: str | os.PathLike) -> list[str]:
    """The run files (:data:`RUN_FILES`) present in ``folder``."""
    folder = Path(folder)
    return [name for name in RUN_FILES if (folder / name).exists()] if folder.is_dir() else []


def _check_writable(folder: Path) -> None:
    """Refuse an ``out`` that cannot become a writable folder, before any dataset is loaded."""

    def refuse(problem: str):
        return ConfigError("out", f"out {str(folder)!r} {problem}")

    limit = os.pathconf("/", "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    too_long = [part for part in folder.parts if len(os.fsencode(part)) > limit]
    if too_long:
        raise refuse(f"cannot be made: a name of {len(os.fsencode(too_long[0]))} bytes is longer than the {limit} "
                     "the file system allows")
    existing = folder
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as err:
        raise refuse(f"cannot be made: {err.strerror or err}") from None
    if existing == folder and not folder.is_dir():
        raise refuse("is a file, not a folder")
    if not existing.is_dir():
        raise refuse(f"cannot be made: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise refuse(f"cannot be written: {existing} is not writable for this user")


@contextlib.contextmanager
def _writing(path: Path, run: RunFolder):
    """Turn a failed write of ``path`` into one :class:`OutputError` that names it."""
    try:
        yield
    except OSError as err:
        problem = "no space left on the device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        kept = f"; the last good checkpoint {run.last} is kept (continue with --resume)" if run.last.exists() else ""
        raise OutputError(f"cannot write {path}: {problem}{kept}") from err


def _build_data(cfg: TrainConfig, proc: _Process) -> DataSpec:
    """The training and test sets; only rank 0 downloads, the others wait and read the files."""

    def datasets(download: bool) -> DataSpec:
        try:
            return build_datasets(cfg.dataset, cfg.data_dir, download=download, holdout=cfg.holdout,
                                  verify_checksums=cfg.verify_data)
        except ValueError as err:
            if str(err).startswith("holdout"):  # more than the dataset's training images
                raise ConfigError("holdout", str(err)) from None
            raise

    spec = datasets(cfg.download) if proc.main else None
    if proc.world_size > 1:
        dist.barrier()
    if not proc.main:
        spec = datasets(False)
    if cfg.subset is not None and cfg.subset < len(spec.train):
        chosen = torch.randperm(len(spec.train), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.subset]
        spec.train = Subset(spec.train, chosen.sort().values.tolist())
    return spec


def _build_model(cfg: TrainConfig, num_classes: int, in_chans: int) -> nn.Module:
    """``cfg.model`` for ``num_classes`` classes of ``in_chans``-channel images; ConfigError if the args do not fit."""
    for name, value, what in (("num_classes", num_classes, "classes"), ("in_chans", in_chans, "image channels")):
        if name in cfg.model_args and cfg.model_args[name] != value:
            raise ConfigError("model_args", f"model_args {name}={cfg.model_args[name]!r} does not fit {cfg.dataset}, "
                                            f"which has {value} {what}; leave {name} out (the dataset sets it)")
    args = {"num_classes": num_classes, "in_chans": in_chans, **cfg.model_args}
    try:
        return create_model(cfg.model, **args)
    except (TypeError, ValueError) as err:
        raise ConfigError("model_args", f"model_args {_format_args(cfg.model_args)!r} do not fit {cfg.model}: "
                                        f"{err}") from None


def _format_args(args: dict[str, Any]) -> str:
    return ",".join(f"{k}={v!r}" for k, v in args.items())


def _build_training(cfg: TrainConfig, spec: DataSpec, proc: _Process, device: torch.device):
    """The network (seeded), its optimiser and schedule (paper 4.2) and the fp16 loss scaler."""
    _seed_everything(cfg.seed)
    net = _build_model(cfg, spec.num_classes, spec.in_chans)
    if cfg.sync_bn and proc.world_size > 1:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(net, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = make_scaler(cfg.amp, device)
    return net, optimizer, scheduler, scaler


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    ours = asdict(cfg)
    differ = [f"{k}: checkpoint {saved.get(k)!r}, now {ours[k]!r}" for k in _RUN_IDENTITY if saved.get(k) != ours[k]]
    if differ:
        raise ValueError(
            f"cannot resume {path}: the run was started with other settings ({'; '.join(differ)}). "
            "Repeat the original options, or choose another --out."
        )


def _load_run_checkpoint(path: Path) -> dict[str, Any]:
    ckpt = load_checkpoint(path, required=("model", "optimizer", "scheduler", "epoch", "config", "rng", "history"))
    if not isinstance(ckpt["config"], dict):
        raise CheckpointError(path, "its config entry is not a dict of run settings")
    return ckpt


def _restore(ckpt: dict[str, Any], path: Path, cfg: TrainConfig, proc: _Process, net, optimizer, scheduler,
             scaler) -> _Progress:
    """Load every state of the checkpoint ``ckpt`` (read from ``path``) into the run; returns where it stood."""
    _check_resumable(ckpt["config"], cfg, path)
    _load_weights(net, ckpt["model"], path)
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt["rng"][proc.rank] if len(ckpt["rng"]) == proc.world_size else ckpt["rng"][0]
    history = list(ckpt["history"])
    return _Progress(ckpt["epoch"], history, ckpt.get("best_error", math.inf), _best_epoch(ckpt), rng)


def _load_weights(net: nn.Module, weights: dict[str, Any], path: Path) -> None:
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(path, f"its weights do not fit the model its config describes ({first})") from None


def _best_epoch(ckpt: dict[str, Any]) -> int:
    """The epoch ``best.pt`` should hold: recorded, or (older checkpoints) the first epoch of least test error."""
    if "best_epoch" in ckpt:
        return int(ckpt["best_epoch"])
    history = ckpt.get("history") or []
    if not history:
        return 0
    best = min(history, key=lambda row: row["test_error"])
    return int(best["epoch"])


def _repair_best(run: RunFolder, last: dict[str, Any], say) -> None:
    """Make ``best.pt`` hold the best epoch ``last.pt`` records, after a kill between the two writes.

    ``last.pt`` is written first and ``best.pt`` second, so the only state a kill can leave is a
    ``last.pt`` whose own epoch is the new best and a ``best.pt`` that is older or missing; then
    ``last.pt`` itself is the best checkpoint, and is copied.
    """
    best_epoch = _best_epoch(last)
    if best_epoch == 0:
        return
    try:
        held = load_checkpoint(run.best, required=("epoch",))["epoch"] if run.best.exists() else None
    except CheckpointError:
        held = "unreadable"
    if held == best_epoch:
        return
    if best_epoch != last["epoch"]:
        say(f"warning: {run.best} holds epoch {held}, but the best epoch was {best_epoch}, whose weights are in no "
            "checkpoint any more; best.pt is left as it is")
        return
    with _writing(run.best, run):
        save_checkpoint(last, run.best)
    say(f"repaired {run.best}: it held epoch {held}, now epoch {best_epoch} (the best, from {run.last})")


def _wrap_model(net: nn.Module, cfg: TrainConfig, proc: _Process, device: torch.device) -> nn.Module:
    """What the training steps call: ``net`` under DDP and/or ``torch.compile`` when asked."""
    model = net
    if proc.world_size > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        if device.type != "cuda":
            # Inductor imports cpp_extension, which warns that no CUDA runtime exists: true and
            # irrelevant on a CPU-only machine.
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        warn_if_compile_skips_checkpointing(net)
        model = torch.compile(model)
    return model


def _build_loaders(spec: DataSpec, cfg: TrainConfig, proc: _Process, device: torch.device) -> _Loaders:
    """Each process shuffles its own share; the order depends only on (seed, epoch)."""
    train_gen = torch.Generator()
    if proc.world_size > 1:
        sampler = DistributedSampler(spec.train, proc.world_size, proc.rank, shuffle=True, seed=cfg.seed)
        test_set = Subset(spec.test, range(proc.rank, len(spec.test), proc.world_size))
    else:
        sampler = RandomSampler(spec.train, generator=train_gen)
        test_set = spec.test
    per_process_batch = cfg.batch_size // proc.world_size
    if cfg.gpu_data:
        train_loader = DeviceCIFARLoader(spec.train, per_process_batch, device, sampler=sampler, seed=cfg.seed,
                                         rank=proc.rank)
        test_loader = DeviceCIFARLoader(test_set, max(per_process_batch, 256), device)
        return _Loaders(train_loader, test_loader, train_loader, train_gen)
    # Random transforms draw from (seed, epoch, sample), not from a worker's RNG: a resumed epoch
    # repeats the crops and flips of the uninterrupted run, whatever the workers.
    sampler = EpochIndexSampler(sampler)
    # The loader gets a generator of its own: persistent workers draw their base seed from it once,
    # in the first epoch a process runs; drawn from train_gen, that would shift the order of later
    # epochs by where the run (or its resume) started.
    train_loader = _loader(SeededAugmentation(spec.train, cfg.seed), per_process_batch, cfg, device, sampler,
                           torch.Generator().manual_seed(cfg.seed))
    test_loader = _loader(test_set, max(per_process_batch, 256), cfg, device, None, torch.Generator(),
                          persistent=False)
    return _Loaders(train_loader, test_loader, sampler, train_gen)


def _prepare_run_folder(run: RunFolder, cfg: TrainConfig, progress: _Progress, resuming: bool) -> None:
    """Make ``out``; write ``config.json`` and ``metrics.csv`` (after a resume: the checkpointed epochs).

    Temporary files left by writes that a kill interrupted are removed: they are never read.
    """
    with _writing(run.path, run):
        run.path.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            for leftover in run.path.glob(f".{name}.*tmp"):
                leftover.unlink(missing_ok=True)
        if not resuming:
            # A fresh run (--overwrite): an old last.pt must not be resumed as if it were this run's.
            run.last.unlink(missing_ok=True)
            run.best.unlink(missing_ok=True)
    with _writing(run.config, run):
        _write_json(run.config, asdict(cfg))
    with _writing(run.metrics, run):
        write_metrics(run.metrics, progress.history)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON, replaced atomically (tuples in model_args become lists)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _describe_run(cfg: TrainConfig, net: nn.Module, spec: DataSpec, proc: _Process, device: torch.device) -> str:
    n_params = sum(p.numel() for p in net.parameters())
    return (
        f"{cfg.model} ({n_params / 1e6:.2f}M parameters) on {cfg.dataset}: {len(spec.train)} training, "
        f"{len(spec.test)} {spec.test_split} images; {cfg.epochs} epoch{'s' * (cfg.epochs != 1)}, "
        f"batch {cfg.batch_size}, lr {cfg.lr:g} ({cfg.recipe} recipe); {device}"
        + (f" x {proc.world_size} processes" if proc.world_size > 1 else "")
        + f"; writing to {cfg.out}"
    )


def _project_time(model, net, loaders: _Loaders, optimizer, scaler, cfg: TrainConfig, progress: _Progress,
                  device: torch.device, proc: _Process) -> accel.Projection | None:
    """Time ``cfg.time_steps`` warm training steps on real batches, then undo them.

    The weights, BatchNorm statistics, optimiser and scaler states and every RNG come back
    as they were, so the run (and a resume) continues exactly as without the projection;
    the data order is reseeded before each epoch anyway. The first steps are not timed
    (cuDNN autotuning, ``torch.compile``, the loader's first batches).
    """
    saved = copy.deepcopy((net.state_dict(), optimizer.state_dict(), scaler.state_dict() if scaler else None))
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    model.train()
    with torch.random.fork_rng(devices=devices):
        loaders.generator.manual_seed(_epoch_seed(cfg.seed, progress.epoch))
        loaders.sampler.set_epoch(progress.epoch)

        def step(batch) -> None:
            images, targets = _to_device(*batch, device, cfg.channels_last)
            _train_step(model, images, targets, optimizer, scaler, cfg.amp, device)

        timed = accel.time_steps(step, loaders.train, cfg.time_steps, sync=device.type == "cuda")
    net.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    if scaler is not None:
        scaler.load_state_dict(saved[2])
    if timed is None:
        return None
    seconds, steps = _reduce([timed[0]], device, proc)[0] / proc.world_size, timed[1]
    return accel.Projection(seconds, steps, len(loaders.train), cfg.epochs - progress.epoch)


def _run_epoch(model, net, loaders: _Loaders, optimizer, scheduler, scaler, cfg: TrainConfig, epoch: int,
               device: torch.device, proc: _Process, bar_factory) -> dict[str, float]:
    """Train one epoch, evaluate, step the schedule; returns the epoch's metrics row."""
    began = time.perf_counter()
    loaders.generator.manual_seed(_epoch_seed(cfg.seed, epoch))
    loaders.sampler.set_epoch(epoch)
    lr = optimizer.param_groups[0]["lr"]
    train_stats = _train_epoch(model, loaders.train, optimizer, scaler, cfg, epoch, device, proc, bar_factory)
    if proc.world_size > 1:
        # Each process updated its own BatchNorm running statistics in its last step; evaluate
        # (and save) rank 0's everywhere, as DDP's next forward would.
        for buffer in net.buffers():
            dist.broadcast(buffer, 0)
    # The bare network, not the DDP wrapper: the processes' shares of the test set may differ
    # by one batch, and DDP's forward could wait for a partner that has finished.
    test_stats = evaluate(net, loaders.test, device, cfg.amp, cfg.channels_last, _proc=proc)
    scheduler.step()
    return {
        "epoch": epoch + 1,
        "lr": lr,
        **train_stats,
        "test_loss": test_stats["loss"],
        "test_error": test_stats["error"],
        "test_top5_error": test_stats["top5_error"],
        "seconds": time.perf_counter() - began,
    }


def _save_epoch(run: RunFolder, cfg: TrainConfig, spec: DataSpec, proc: _Process, net, optimizer, scheduler,
                scaler, progress: _Progress, improved: bool) -> None:
    """Checkpoint the finished epoch (``last.pt``, ``best.pt`` on a new best) and add its metrics row."""
    rng_states = [capture_rng_state()]
    if proc.world_size > 1:
        rng_states = [None] * proc.world_size
        dist.all_gather_object(rng_states, capture_rng_state())
    if not proc.main:
        return
    state = {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": progress.epoch,
        "best_error": progress.best_error,
        "best_epoch": progress.best_epoch,
        "history": progress.history,
        "config": asdict(cfg),
        "num_classes": spec.num_classes,
        "in_chans": spec.in_chans,
        "rng": rng_states,
        "world_size": proc.world_size,
    }
    # last.pt, then best.pt, then the metrics row. A kill between the checkpoints leaves a last.pt that
    # records itself as the best epoch, from which a resume rewrites best.pt (_repair_best); a kill
    # before the row loses nothing, as a resume rewrites metrics.csv from the checkpoint's history.
    with _writing(run.last, run):
        save_checkpoint(state, run.last)
    if improved:
        with _writing(run.best, run):
            save_checkpoint(state, run.best)
    with _writing(run.metrics, run):
        append_metrics(run.metrics, progress.history[-1])


def _describe_epoch(row: dict[str, float], cfg: TrainConfig, spec: DataSpec) -> str:
    return (
        f"epoch {row['epoch']}/{cfg.epochs}: lr {row['lr']:g}, train loss {row['train_loss']:.4f} error "
        f"{row['train_error']:.2f}%, {spec.test_split} loss {row['test_loss']:.4f} error "
        f"{row['test_error']:.2f}% (top-5 {row['test_top5_error']:.2f}%), {row['seconds']:.1f} s"
    )


# --- evaluating a checkpoint ------------------------------------------------------------


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    dataset: str | None = None,
    data_dir: str = "data",
    *,
    device: str = "auto",
    batch_size: int = 256,
    workers: int | None = None,
    download: bool = True,
    verify_data: bool = True,
    holdout: int = 0,
) -> dict[str, float]:
    """Top-1 / top-5 error (percent) of a checkpoint written by :func:`train` on ``dataset``'s test set.

    ``dataset`` defaults to the one the checkpoint was trained on. ``holdout`` > 0 evaluates on
    the held-out training images instead; it must be the checkpoint's own ``holdout`` (the same
    split :func:`train` used), since any other split would count images the model trained on.
    """
    path = Path(checkpoint)
    ckpt = load_checkpoint(path, required=("model", "config", "num_classes", "in_chans"))
    saved = ckpt["config"]
    missing = [key for key in ("model", "model_args", "dataset") if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise CheckpointError(path, f"its config lacks {', '.join(missing)}, so the model cannot be rebuilt")
    dataset = dataset or saved["dataset"]
    for name, value, check in (("batch_size", batch_size, _positive_int), ("holdout", holdout, _non_negative_int),
                               ("workers", workers, _non_negative_int)):
        problem = check(value) if value is not None else None
        if problem:
            raise ConfigError(name, f"{name} {problem}, got {value!r}")
    trained_holdout = saved.get("holdout", 0)
    if holdout and (holdout != trained_holdout or dataset != saved["dataset"]):
        if dataset != saved["dataset"]:
            why = f"it was trained on {saved['dataset']}, not {dataset}"
        elif trained_holdout:
            why = (f"it was trained with holdout {trained_holdout}, and any other split counts images it trained on; "
                   f"use --holdout {trained_holdout}")
        else:
            why = "it was trained on every training image, so none are held out; evaluate on the test set instead"
        raise ConfigError("holdout", f"holdout {holdout} does not fit the checkpoint {path}: {why}")
    dev = resolve_device(device)
    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    if _registered_model(cfg.model):
        raise CheckpointError(path, f"its config names the model {cfg.model!r}, which is not registered")
    spec = build_datasets(dataset, data_dir, download=download, holdout=holdout, verify_checksums=verify_data,
                          augment=False)
    if (spec.num_classes, spec.in_chans) != (ckpt["num_classes"], ckpt["in_chans"]):
        raise ValueError(
            f"dataset {dataset!r} has {spec.num_classes} classes and {spec.in_chans} channels, but the checkpoint "
            f"{path} was trained for {ckpt['num_classes']} classes and {ckpt['in_chans']} channels"
        )
    try:
        net = _build_model(replace(cfg, dataset=dataset), ckpt["num_classes"], ckpt["in_chans"])
    except ConfigError as err:
        raise CheckpointError(path, f"its config does not describe a model that can be built ({err})") from None
    _load_weights(net, ckpt["model"], path)
    net.to(dev)
    cfg = replace(cfg, workers=accel.default_workers(dataset) if workers is None else workers)
    loader = _loader(spec.test, batch_size, cfg, dev, None, None, persistent=False)
    stats = evaluate(net, loader, dev)
    return {"top1_error": stats["error"], "top5_error": stats["top5_error"], "loss": stats["loss"],
            "images": len(spec.test), "split": spec.test_split}
