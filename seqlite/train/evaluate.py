"""Top-1 / top-5 error of a model on a loader, and of a checkpoint on its dataset (``seqlite eval``)."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .. import checks
from ..checkpoint import EVALUATION, CheckpointError, load_checkpoint
from ..data import build_datasets
from .config import TrainConfig
from .devices import Process, autocast, default_workers, loader_workers, reduce_sum, resolve_device
from .errors import ConfigError
from .loaders import make_loader, to_device
from .setup import build_model, load_weights

__all__ = ["evaluate", "evaluate_checkpoint"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str | None = None,
    amp: str = "off",
    channels_last: bool = False,
    proc: Process | None = None,
) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 error (percent) of ``model`` on ``loader``.

    ``device`` defaults to the device of the model's parameters; ``proc``: sum over torchrun's
    processes, each of which evaluated its share.
    """
    if device is None:
        device = next(model.parameters()).device
    proc = proc or Process()
    device = torch.device(device)
    model.eval()
    loss_sum, wrong1, wrong5, seen = 0.0, 0, 0, 0
    for images, targets in loader:
        images, targets = to_device(images, targets, device, channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        wrong1 += (top[:, 0] != targets).sum().item()
        wrong5 += (~(top == targets[:, None]).any(1)).sum().item()
        seen += len(targets)
    loss_sum, wrong1, wrong5, seen = reduce_sum([loss_sum, wrong1, wrong5, seen], device, proc)
    if not seen:
        raise ValueError("evaluate: the loader gave no images to evaluate")
    return {"loss": loss_sum / seen, "error": 100 * wrong1 / seen, "top5_error": 100 * wrong5 / seen}


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
    """Top-1 / top-5 error (percent) of a checkpoint written by :func:`~seqlite.train.train` on ``dataset``'s test set.

    ``dataset`` defaults to the one the checkpoint was trained on. ``holdout`` > 0 evaluates on
    the held-out training images instead; it must be the checkpoint's own ``holdout`` (the same
    split :func:`~seqlite.train.train` used), since any other split would count images the model trained on.
    """
    path = Path(checkpoint)
    ckpt = load_checkpoint(path, required=EVALUATION)
    for name, value, check in (("batch_size", batch_size, checks.positive_int),
                               ("holdout", holdout, checks.non_negative_int),
                               ("workers", workers, checks.non_negative_int)):
        try:
            value is None or check(name, value)
        except checks.InvalidValue as err:
            raise ConfigError(name, str(err)) from None
    cfg = _trained_config(ckpt["config"], path)
    dataset = dataset or cfg.dataset
    if holdout and (holdout != cfg.holdout or dataset != cfg.dataset):
        if dataset != cfg.dataset:
            why = f"it was trained on {cfg.dataset}, not {dataset}"
        elif cfg.holdout:
            why = (f"it was trained with holdout {cfg.holdout}, and any other split counts images it trained on; "
                   f"use --holdout {cfg.holdout}")
        else:
            why = "it was trained on every training image, so none are held out; evaluate on the test set instead"
        raise ConfigError("holdout", f"holdout {holdout} does not fit the checkpoint {path}: {why}")
    dev = resolve_device(device)
    spec = build_datasets(dataset, data_dir, download=download, holdout=holdout, verify_checksums=verify_data,
                          augment=False)
    if (spec.num_classes, spec.in_chans) != (ckpt["num_classes"], ckpt["in_chans"]):
        raise ValueError(
            f"dataset {dataset!r} has {spec.num_classes} classes and {spec.in_chans} channels, but the checkpoint "
            f"{path} was trained for {ckpt['num_classes']} classes and {ckpt['in_chans']} channels"
        )
    try:
        net = build_model(cfg, ckpt["num_classes"], ckpt["in_chans"])
    except ConfigError as err:
        raise CheckpointError(path, f"its config does not describe a model that can be built ({err})") from None
    load_weights(net, ckpt["model"], path)
    net.to(dev)
    workers = default_workers(dataset) if workers is None else loader_workers(workers)
    loader = make_loader(spec.test, batch_size, workers, dev)
    stats = evaluate(net, loader, dev)
    return {"top1_error": stats["error"], "top5_error": stats["top5_error"], "loss": stats["loss"],
            "images": len(spec.test), "split": spec.test_split}


def _trained_config(saved: dict, path: Path) -> TrainConfig:
    """The checkpoint's run settings, checked as :class:`TrainConfig` checks a run's (older files lack some)."""
    known = {f.name for f in fields(TrainConfig)}
    try:
        return TrainConfig(**{k: v for k, v in saved.items() if k in known}).resolved()
    except ConfigError as err:
        if err.option == "model":
            raise CheckpointError(path, f"its config names the model {saved['model']!r}, which is not registered") \
                from None
        raise CheckpointError(path, f"its config is not one seqlite train writes: {err}") from None
