"""Augmentation pieces torchvision does not have, and augmentation a resumed run can repeat.

* :class:`Lighting`: AlexNet-style PCA colour noise (Krizhevsky et al. 2012, section 4.1), part
  of "the standard augmentation scheme" the paper follows for ImageNet (paper 4.2, after
  fb.resnet.torch): each image gets ``eigvec @ (alpha * eigval)`` added to every pixel, with
  ``alpha ~ N(0, std^2)`` per principal component of ImageNet's RGB pixel covariance.
* :class:`SeededAugmentation` + :class:`EpochIndexSampler`: every sample's random transforms draw
  from torch's RNG seeded with (run seed, epoch, index), so an epoch draws the same crops and
  flips whichever worker process loads a sample, and whether the run was resumed or not.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from .constants import IMAGENET_EIGVAL, IMAGENET_EIGVEC

__all__ = [
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "EpochIndexSampler",
    "Lighting",
    "SeededAugmentation",
    "sample_seed",
]



class Lighting(torch.nn.Module):
    """Add ``eigvec @ (alpha * eigval)`` to every pixel of a ``(3, H, W)`` image in [0, 1].

    ``alpha`` holds one ``N(0, std^2)`` draw per principal component (torch's RNG), so the
    image's colour moves along the directions in which natural images vary most. Apply
    it to the tensor before normalisation (as fb.resnet.torch does); ``std=0`` is the identity.
    """

    def __init__(
        self,
        std: float = 0.1,
        eigval: Sequence[float] = IMAGENET_EIGVAL,
        eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
    ):
        super().__init__()
        if not std >= 0:
            raise ValueError(f"std must be >= 0, got {std!r}")
        self.std = float(std)
        self.register_buffer("eigval", torch.tensor(eigval, dtype=torch.float32), persistent=False)
        self.register_buffer("eigvec", torch.tensor(eigvec, dtype=torch.float32), persistent=False)

    def forward(self, img: Tensor) -> Tensor:
        if self.std == 0:
            return img
        alpha = torch.randn(3) * self.std
        rgb = self.eigvec @ (alpha * self.eigval)
        return img + rgb.to(img.dtype)[:, None, None]

    def extra_repr(self) -> str:
        return f"std={self.std}"


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for sample ``index`` in ``epoch`` of the run seeded ``seed``."""
    words = np.random.SeedSequence([seed & (2**64 - 1), epoch, index]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class SeededAugmentation(Dataset):
    """``dataset[index]`` with torch's RNG seeded from (``seed``, epoch, ``index``).

    Indexed with ``(epoch, index)`` pairs, as :class:`EpochIndexSampler` yields them. The
    caller's RNG is untouched (``fork_rng``), so with ``workers=0`` dropout in the main
    process draws what it would have drawn anyway.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochIndexSampler(Sampler):
    """Yields ``(epoch, index)`` for every index ``sampler`` yields; :meth:`set_epoch` before each epoch.

    The epoch travels with each index (the sampler runs in the main process), so worker
    processes that live across epochs (``persistent_workers``) still see the current one.
    """

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, int(index)) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]
