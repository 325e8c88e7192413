"""The parts of a run, built from its configuration: device settings, data, model, optimiser, loaders.

:func:`build_run` builds them in the order that keeps a bad input from costing anything: the
options are checked against the device first, then the data is read and the model built
(a missing dataset or a model that does not fit it stops there), then the optimiser,
schedule, loss scaler and loaders. A :class:`Run` holds the parts and :class:`Progress`
where the run stands; the training loop, the time projection and resuming all work on one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._compat import warn_if_compile_skips_checkpointing
from ..checkpoint import CheckpointError
from ..data import DataSpec
from ..registry import create_model
from . import devices
from .devices import Process, make_scaler, resolve_amp
from .errors import ConfigError
from .loaders import Loaders, build_data, build_loaders
from .recipe import build_optimizer, build_scheduler, run_recipe
from .run_folder import RunFolder

__all__ = ["Progress", "Run", "build_model", "build_run", "configure_device", "load_weights"]


@dataclass
class Progress:
    """Where the run stands: epochs done, their metrics rows, the best error, RNG states to restore."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_error: float = math.inf
    best_epoch: int = 0  # the epoch best.pt holds (0: none yet)
    rng: dict[str, Any] | None = None


@dataclass
class Run:
    """A run being trained: its resolved configuration and every part it is made of."""

    cfg: Any  # the resolved TrainConfig, with amp as it resolves on this device
    proc: Process
    device: torch.device
    folder: RunFolder
    spec: DataSpec
    net: nn.Module  # the bare network: what checkpoints hold
    model: nn.Module  # what the steps call: net under DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    loaders: Loaders
    progress: Progress = field(default_factory=Progress)
    callbacks: list = field(default_factory=list)  # seqlite.train.Callback instances
    say: Callable[[str], object] = print  # rank 0's messages (tqdm.write while bars are shown)

    def notify(self, event: str, *args: Any) -> None:
        """Call ``event`` of every callback with this run and ``args``."""
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)


def configure_device(cfg: Any, proc: Process, device: torch.device) -> Any:
    """Check the options against the device and machine; set TF32 and determinism.

    Returns ``cfg`` with ``amp`` as it resolves on ``device`` and at most one loader worker per CPU.
    """
    try:
        amp = resolve_amp(cfg.amp, device)
    except ValueError as err:
        raise ConfigError("amp", str(err)) from None
    if cfg.gpu_data and cfg.dataset not in ("cifar10", "cifar100"):
        raise ConfigError("gpu_data", f"gpu_data is for CIFAR-10/100 (the pipeline does their crop and flip); "
                                      f"got dataset {cfg.dataset!r}")
    if cfg.sync_bn and proc.world_size > 1 and device.type != "cuda":
        raise ConfigError("sync_bn", f"sync_bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only); "
                                     f"found {device}")
    if cfg.batch_size % proc.world_size:
        raise ConfigError("batch_size", f"batch_size {cfg.batch_size} must be divisible by the {proc.world_size} "
                                        "processes")
    devices.set_float32_precision(device)
    devices.set_determinism(cfg.deterministic, device)
    # "auto" becomes what it means on this device before the checkpoint compares or records it.
    return replace(cfg, amp=amp, workers=devices.loader_workers(cfg.workers))


def build_model(cfg: Any, num_classes: int, in_chans: int) -> nn.Module:
    """``cfg.model`` for ``num_classes`` classes of ``in_chans``-channel images; ConfigError if the args do not fit."""
    for name, value, what in (("num_classes", num_classes, "classes"), ("in_chans", in_chans, "image channels")):
        if name in cfg.model_args and cfg.model_args[name] != value:
            raise ConfigError("model_args", f"model_args {name}={cfg.model_args[name]!r} does not fit {cfg.dataset}, "
                                            f"which has {value} {what}; leave {name} out (the dataset sets it)")
    try:
        return create_model(cfg.model, **{"num_classes": num_classes, "in_chans": in_chans, **cfg.model_args})
    except (TypeError, ValueError) as err:
        args = ",".join(f"{k}={v!r}" for k, v in cfg.model_args.items())
        raise ConfigError("model_args", f"model_args {args!r} do not fit {cfg.model}: {err}") from None


def load_weights(net: nn.Module, weights: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's ``model`` entry into ``net``; CheckpointError naming ``path`` if it does not fit."""
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(path, f"its weights do not fit the model its config describes ({first})") from None


def _wrap(net: nn.Module, cfg: Any, proc: Process, device: torch.device) -> nn.Module:
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


def build_run(cfg: Any, proc: Process, device: torch.device, folder: RunFolder | None = None) -> Run:
    """Every part of the run ``cfg`` (resolved, device configured): data, network (seeded), optimiser...

    ``folder`` defaults to ``cfg.out``'s; nothing is written here.
    """
    spec = build_data(cfg, proc)
    devices.seed_everything(cfg.seed)
    net = build_model(cfg, spec.num_classes, spec.in_chans)
    if cfg.sync_bn and proc.world_size > 1:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    recipe = run_recipe(cfg)
    optimizer = build_optimizer(net, recipe)
    return Run(
        cfg=cfg, proc=proc, device=device, folder=folder or RunFolder(Path(cfg.out)), spec=spec, net=net,
        model=_wrap(net, cfg, proc, device), optimizer=optimizer, scheduler=build_scheduler(optimizer, recipe),
        scaler=make_scaler(cfg.amp, device), loaders=build_loaders(spec, cfg, proc, device),
    )
