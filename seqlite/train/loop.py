"""The training loop: :func:`train` -> :func:`run` -> :func:`run_epoch` -> :func:`train_step`.

Read it top to bottom: a run checks its options and its folder, builds its parts
(:mod:`~seqlite.train.setup`), restores a checkpoint when resuming (:mod:`~seqlite.train.resume`),
writes its folder, times a few steps (:mod:`~seqlite.train.projection`), then for each epoch
trains, evaluates and saves. Under ``torchrun`` (``WORLD_SIZE`` > 1) every process runs the same
loop on its share of the data (DistributedDataParallel); only rank 0 prints and writes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import resume
from .callbacks import Callback
from .config import TrainConfig
from .devices import (
    Process,
    all_finite,
    autocast,
    reduce_sum,
    resolve_device,
    seed_everything,
    set_cuda_device,
    start_processes,
)
from .errors import ConfigError, NonFiniteLossError
from .evaluate import evaluate
from .loaders import to_device
from .projection import Projection, project
from .run_folder import RunFolder
from .setup import Run, build_run, configure_device

__all__ = ["TrainResult", "project_time", "run", "run_epoch", "train", "train_step"]


@dataclass
class TrainResult:
    out: Path
    history: list[dict[str, float]]  # one metrics row per epoch
    best_error: float

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1]


def train(cfg: TrainConfig, callbacks: Iterable[Callback] = ()) -> TrainResult:
    """Run ``cfg`` to its last epoch (continuing ``cfg.out/last.pt`` when ``cfg.resume``).

    ``callbacks``: :class:`~seqlite.train.Callback` instances whose events are called as the run goes.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the library itself needs only torch and torchvision
        raise ImportError(
            "training shows its progress with tqdm, which is not installed: pip install 'seqlite[train]'"
        ) from None

    # The bars' lock, made now: made lazily by the first message, a Ctrl-C inside its making breaks
    # tqdm (an AttributeError instead of the KeyboardInterrupt).
    tqdm.get_lock()
    cfg = cfg.resolved()
    proc, device = start_processes(cfg.device)
    try:
        return run(cfg, proc, device, tqdm, list(callbacks))
    finally:
        if proc.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def run(cfg: TrainConfig, proc: Process, device: torch.device, tqdm, callbacks: list[Callback]) -> TrainResult:
    """The run's steps, in order; ``tqdm`` draws the progress bars."""
    say = tqdm.write if proc.main else (lambda *a, **k: None)
    cfg = configure_device(cfg, proc, device)
    folder = RunFolder(Path(cfg.out))
    # A folder it must not touch is refused before any data is read. Every process looks now, before
    # the first barrier (in build_run), so before rank 0 writes anything: they all see the same folder.
    found = _look(folder, cfg)
    # Data and model before anything is written: a missing dataset or a model that does not fit it stops here.
    state = build_run(cfg, proc, device, folder)
    state.callbacks, state.say = callbacks, say

    def bar(**kwargs):
        return tqdm(disable=not (proc.main and cfg.progress), dynamic_ncols=True, **kwargs)

    with folder.lock() if proc.main else contextlib.nullcontext():
        if proc.main and _look(folder, cfg) != found:  # another run wrote there while this one was starting
            raise FileExistsError(f"{folder.path} changed while this run was starting (another run wrote there); "
                                  "look at it and repeat the command")
        _start(state, *found)
        progress = state.progress
        for epoch in range(progress.epoch, cfg.epochs):
            row = run_epoch(state, epoch, bar)
            progress.history.append(row)
            progress.epoch = epoch + 1
            improved = row["test_error"] < progress.best_error
            if improved:
                progress.best_error, progress.best_epoch = row["test_error"], epoch + 1
            resume.save_epoch(state, improved)
            say(_describe_epoch(row, state) + (" *best*" if improved else ""))
            state.notify("on_epoch_end", row)
    return TrainResult(out=folder.path, history=progress.history, best_error=progress.best_error)


def _look(folder: RunFolder, cfg: TrainConfig) -> tuple[bool, bool]:
    """(whether the run continues the one in ``folder``, whether that one never finished an epoch); refuses a run
    it must not replace."""
    resuming = folder.holds_run(cfg.resume, cfg.overwrite)
    return resuming, cfg.resume and not resuming and folder.unstarted()


def _start(run: Run, resuming: bool, unstarted: bool) -> None:
    """Continue the run in the folder or start afresh, write the folder, time a few steps (the folder is held)."""
    cfg, folder, proc = run.cfg, run.folder, run.proc
    if resuming:
        ckpt = resume.load_run_checkpoint(folder.last)
        run.progress = resume.restore(run, ckpt, folder.last)
        run.say(f"resuming {folder.last} after epoch {run.progress.epoch}/{cfg.epochs}")
        if proc.main:
            resume.repair_best(folder, ckpt, run.say)
        del ckpt
    elif unstarted:
        resume.check_same_run(folder.read_config() or {}, cfg, folder.config)
        run.say(f"the run in {folder.path} stopped before its first epoch ended; starting it again")
    elif cfg.resume:
        run.say(f"no run in {folder.path} yet; starting from scratch")
    if proc.main:
        folder.prepare(asdict(cfg), run.progress.history, fresh=run.progress.epoch == 0)
        run.say(_describe_run(run))
    run.notify("on_run_start")
    if cfg.time_steps and run.progress.epoch < cfg.epochs:
        projection = project(run, train_step)
        if projection is not None and proc.main:
            run.say(projection.line())
            folder.write_json(folder.projection, projection.as_dict())
    if run.progress.rng is None and proc.world_size > 1:
        seed_everything(cfg.seed + proc.rank)  # different dropout and augmentation in each process


def run_epoch(run: Run, epoch: int, bar: Callable) -> dict[str, float]:
    """Train one epoch, evaluate, step the schedule; returns the epoch's metrics row."""
    began = time.perf_counter()
    run.loaders.set_epoch(epoch)
    lr = run.optimizer.param_groups[0]["lr"]
    train_stats = _train_epoch(run, epoch, bar)
    if run.proc.world_size > 1:
        # Each process updated its own BatchNorm running statistics in its last step; evaluate
        # (and save) rank 0's everywhere, as DDP's next forward would.
        for buffer in run.net.buffers():
            dist.broadcast(buffer, 0)
    # The bare network, not the DDP wrapper: the processes' shares of the test set may differ
    # by one batch, and DDP's forward could wait for a partner that has finished.
    test = evaluate(run.net, run.loaders.test, run.device, run.cfg.amp, run.cfg.channels_last, proc=run.proc)
    if not math.isfinite(test["loss"]):
        raise NonFiniteLossError(
            f"the {run.spec.test_split} loss became {test['loss']} after epoch {epoch + 1} at lr {lr:g}; "
            "training stopped and nothing of this epoch was saved. Try a smaller --lr, or --amp off."
        )
    run.scheduler.step()
    return {"epoch": epoch + 1, "lr": lr, **train_stats, "test_loss": test["loss"], "test_error": test["error"],
            "test_top5_error": test["top5_error"], "seconds": time.perf_counter() - began}


def _train_epoch(run: Run, epoch: int, bar: Callable) -> dict[str, float]:
    cfg, device, loader = run.cfg, run.device, run.loaders.train
    run.model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    seen, checked_step, log_every = 0, 0, 10
    start = time.perf_counter()
    # The bar is only told the count: a bar that iterated the loader itself would start (and
    # throw away) an extra pass of loader workers.
    with bar(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch") as shown:
        for step, (images, targets) in enumerate(loader, 1):
            images, targets = to_device(images, targets, device, cfg.channels_last)
            loss, logits = train_step(run.model, images, targets, run.optimizer, run.scaler, cfg.amp, device)
            loss_sum += loss.detach().double() * len(targets)
            wrong += (logits.detach().argmax(1) != targets).sum()
            seen += len(targets)
            shown.update()
            # A NaN or inf stays in the running sum, so checking it now and then catches every one
            # without a GPU sync per step.
            if step % log_every == 0 or step == len(loader):
                if not all_finite(loss_sum, run.proc):
                    raise NonFiniteLossError(
                        f"the training loss became {loss_sum.item()} in epoch {epoch + 1} (between steps "
                        f"{checked_step + 1} and {step}) at lr {run.optimizer.param_groups[0]['lr']:g}; training "
                        "stopped and nothing of this epoch was saved. Try a smaller --lr, or --amp off."
                    )
                checked_step = step
                shown.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", err=f"{100 * wrong.item() / seen:.2f}%",
                                  img_s=f"{seen * run.proc.world_size / (time.perf_counter() - start):.0f}",
                                  refresh=False)
    total_loss, total_wrong, total_seen = reduce_sum([loss_sum.item(), float(wrong.item()), float(seen)], device,
                                                     run.proc)
    return {"train_loss": total_loss / total_seen, "train_error": 100 * total_wrong / total_seen}


def train_step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None, amp: str, device: torch.device):
    """Forward, loss, backward, update; with fp16 the scaler skips a step whose gradients overflowed.

    Returns the (unscaled) loss and the logits.
    """
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


def project_time(cfg: TrainConfig) -> Projection | None:
    """What :func:`train` would print before its first epoch, without training or writing anything.

    Builds ``cfg``'s data, model and loaders, times ``cfg.time_steps`` warm training steps
    (``None`` when the epoch has too few batches) and projects them over ``cfg.epochs``: to
    choose a recipe (or a device) with its cost in hand. Seeds the global RNGs with ``cfg.seed``.
    """
    cfg = cfg.resolved()
    if not cfg.time_steps:
        raise ConfigError("time_steps", "time_steps must be positive to project a run's time")
    proc, device = Process(), set_cuda_device(resolve_device(cfg.device))
    cfg = configure_device(cfg, proc, device)
    return project(build_run(cfg, proc, device), train_step)


def _describe_run(run: Run) -> str:
    cfg, spec = run.cfg, run.spec
    n_params = sum(p.numel() for p in run.net.parameters())
    return (
        f"{cfg.model} ({n_params / 1e6:.2f}M parameters) on {cfg.dataset}: {len(spec.train)} training, "
        f"{len(spec.test)} {spec.test_split} images; {cfg.epochs} epoch{'s' * (cfg.epochs != 1)}, "
        f"batch {cfg.batch_size}, lr {cfg.lr:g} ({cfg.recipe} recipe); {run.device}"
        + (f" x {run.proc.world_size} processes" if run.proc.world_size > 1 else "")
        + f"; writing to {cfg.out}"
    )


def _describe_epoch(row: dict[str, float], run: Run) -> str:
    return (
        f"epoch {row['epoch']}/{run.cfg.epochs}: lr {row['lr']:g}, train loss {row['train_loss']:.4f} error "
        f"{row['train_error']:.2f}%, {run.spec.test_split} loss {row['test_loss']:.4f} error "
        f"{row['test_error']:.2f}% (top-5 {row['test_top5_error']:.2f}%), {row['seconds']:.1f} s"
    )
