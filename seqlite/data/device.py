"""CIFAR on the training device: one uint8 tensor, augmented and normalised in batches.

Colab gives a GPU two CPU cores; per-image PIL transforms in two worker processes can starve
it. :class:`DeviceCIFARLoader` keeps the whole CIFAR training (or test) set as one uint8
tensor on the device (150 MB for CIFAR-10's 50,000 images) and does the paper's
augmentation (paper 4.2) there, a batch at a time, as the fastest CIFAR trainers do:

* zero padding by 4 pixels and a random 32x32 crop (offsets uniform in 0..8, as
  ``torchvision.transforms.RandomCrop(32, padding=4)``), then a horizontal flip with
  probability 1/2 (``RandomHorizontalFlip``) - the same distribution per image;
* normalisation with exactly torchvision's arithmetic (``/ 255``, ``- mean``, ``/ std``),
  so un-augmented images are bit-identical to ``ToTensor() + Normalize``.

The loader mimics a ``DataLoader``: ``len()``, iteration over ``(images, labels)`` already on
the device, ``sampler``, and :meth:`~DeviceCIFARLoader.set_epoch`. The crops and flips of an
epoch come from a generator seeded with (seed, epoch, rank), so a resumed epoch draws the same
ones; the order of the images comes from the ``sampler`` given, as with a ``DataLoader``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Sampler, SequentialSampler, Subset

from .augment import sample_seed

__all__ = ["DeviceCIFARLoader", "augment_batch", "normalise_batch"]


def normalise_batch(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 ``(B, 3, H, W)`` -> float, with ``ToTensor`` + ``Normalize``'s exact arithmetic."""
    return images.float().div(255).sub(mean[:, None, None]).div(std[:, None, None])


def augment_batch(
    images: Tensor, offsets: Tensor, flips: Tensor, padding: int = 4
) -> Tensor:
    """Crop each image of ``images`` (``(B, C, H, W)``) from its zero-padded copy, maybe mirrored.

    ``offsets``: ``(B, 2)`` top-left corner (row, column) of the crop in the padded image,
    in ``0..2*padding``; ``flips``: ``(B,)`` bool, mirror the crop left-right. One gather
    for the whole batch.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dev = images.device
    rows = offsets[:, 0, None].to(dev) + torch.arange(h, device=dev)  # (B, H)
    cols = offsets[:, 1, None].to(dev) + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flips[:, None].to(dev), cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None, None]
    channel = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _base_and_indices(dataset: Dataset) -> tuple[Dataset, list[int]]:
    """Unwrap (nested) Subsets: the underlying dataset and which of its images ``dataset`` holds."""
    indices = list(range(len(dataset)))  # type: ignore[arg-type]
    while isinstance(dataset, Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices


def _pipeline(transform) -> tuple[tuple[float, ...], tuple[float, ...], int | None, bool]:
    """Mean, std, crop padding (None: no crop) and flip of a CIFAR torchvision pipeline."""
    from torchvision import transforms as T

    steps = getattr(transform, "transforms", [transform])
    mean = std = None
    padding, flip = None, False
    for step in steps:
        if isinstance(step, T.Normalize):
            mean, std = tuple(step.mean), tuple(step.std)
        elif isinstance(step, T.RandomCrop):
            padding = step.padding if isinstance(step.padding, int) else step.padding[0]
        elif isinstance(step, T.RandomHorizontalFlip):
            flip = True
        elif not isinstance(step, T.ToTensor):
            raise ValueError(f"the on-device CIFAR pipeline does pad+crop, flip and normalise only; found {step}")
    if mean is None:
        raise ValueError("the dataset's transform has no Normalize step")
    return mean, std, padding, flip


class DeviceCIFARLoader:
    """Batches of a torchvision CIFAR dataset (or a Subset of one), augmented on ``device``.

    The augmentation and normalisation are read from the dataset's own transform (the
    paper's pipeline of :func:`seqlite.data.cifar_transforms`), so the two paths cannot
    drift apart. ``drop_last`` leaves out a smaller last batch.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device | str,
        *,
        sampler: Sampler | None = None,
        seed: int = 0,
        rank: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
    ):
        base, indices = _base_and_indices(dataset)
        if not (hasattr(base, "data") and hasattr(base, "targets")):
            raise ValueError(f"the on-device pipeline needs a torchvision CIFAR dataset, got {type(base).__name__}")
        self.device = torch.device(device)
        mean, std, self.padding, self.flip = _pipeline(base.transform)
        self.mean = torch.tensor(mean, device=self.device)
        self.std = torch.tensor(std, device=self.device)
        # (N, 32, 32, 3) HWC uint8 in the files -> (N, 3, 32, 32) on the device, once.
        chosen = np.asarray(base.data)[indices]
        self.images = torch.from_numpy(chosen).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = torch.as_tensor(np.asarray(base.targets)[indices], dtype=torch.int64).to(self.device)
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler if sampler is not None else SequentialSampler(range(len(indices)))
        self.seed, self.rank, self.epoch = seed, rank, 0
        self.drop_last = drop_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def set_epoch(self, epoch: int) -> None:
        """Seed this epoch's crops and flips (and the sampler's order, if it has epochs)."""
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.as_tensor(list(self.sampler), dtype=torch.int64)
        generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, self.rank))
        augment = self.padding is not None
        # Drawn on the CPU for the whole epoch: the same numbers on every device type.
        offsets = torch.randint(0, 2 * (self.padding or 0) + 1, (len(order), 2), generator=generator)
        flips = torch.rand(len(order), generator=generator) < 0.5 if self.flip else torch.zeros(len(order), dtype=bool)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size].to(self.device)
            images = self.images[index]
            if augment:
                part = slice(start, start + len(index))
                images = augment_batch(images, offsets[part], flips[part], self.padding)
            elif self.flip:
                part = slice(start, start + len(index))
                images = torch.where(flips[part, None, None, None].to(self.device), images.flip(-1), images)
            x = normalise_batch(images, self.mean, self.std).contiguous(memory_format=self.memory_format)
            yield x, self.labels[index]
