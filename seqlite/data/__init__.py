"""Datasets for training SeqResNets: CIFAR-10/100, ImageNet and the embedded digits.

:func:`build_datasets` is what ``seqlite train`` and ``seqlite eval`` call (and what the
tests call, on tiny datasets written in the real on-disk formats):

* ``cifar10`` / ``cifar100``: torchvision's dataset classes, read from ``data_dir`` or
  downloaded into it. Training augmentation is the paper's (paper 4.2): random 32x32 crop
  after 4-pixel zero padding, horizontal flip, per-channel mean/std normalisation.
* ``imagenet``: an ImageFolder tree ``data_dir/train/<class>/*`` and ``data_dir/val/<class>/*``;
  random-resized crop 224 + flip for training, resize 256 + centre crop 224 for evaluation.
* ``digits``: the 1,797 8x8 handwritten digits shipped inside this package (no download),
  the default for the offline demo and for CI; a fixed, stratified train/test split.

``holdout=N`` keeps N training images out of training and evaluates on them instead of the
test set (paper 4.1 holds out 5,000 CIFAR images while tuning). A missing dataset that cannot
be downloaded raises :class:`DatasetNotFoundError` saying where it looked and how to get it;
no dataset is ever replaced by another one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Subset

from ..checks import non_negative_int
from .cifar import cifar_datasets, cifar_transforms, load_cifar_file
from .constants import CIFAR100_MEAN, CIFAR100_STD, CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD
from .digits import DIGITS_PATH, SPLIT_SEED, digits_datasets, digits_split, load_digits
from .errors import CorruptDataError, DatasetNotFoundError
from .imagenet import imagenet_datasets, imagenet_transforms

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CorruptDataError",
    "DATASETS",
    "DIGITS_PATH",
    "DataSpec",
    "DatasetNotFoundError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_datasets",
    "cifar_datasets",
    "cifar_transforms",
    "digits_datasets",
    "digits_split",
    "imagenet_datasets",
    "imagenet_transforms",
    "load_cifar_file",
    "load_digits",
]

DATASETS = ("cifar10", "cifar100", "imagenet", "digits")


@dataclass
class DataSpec:
    """The two datasets of a run and what the model needs to know about them."""

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    in_chans: int
    # "test", or "validation" when training images were held out (paper 4.1).
    test_split: str = "test"


def build_datasets(
    name: str,
    data_dir: str | os.PathLike = "data",
    *,
    download: bool = True,
    holdout: int = 0,
    verify_checksums: bool = True,
    augment: bool = True,
) -> DataSpec:
    """Training and evaluation datasets for ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    holdout = non_negative_int("holdout", holdout)
    if name == "digits":
        train, test = digits_datasets()
        spec = DataSpec(name, train, test, num_classes=10, in_chans=1)
        if holdout:
            spec.train, spec.test = _hold_out(train, train, holdout)
            spec.test_split = "validation"
        return spec
    if name == "imagenet":
        train, test = imagenet_datasets(data_dir, augment=augment)
        spec = DataSpec(name, train, test, num_classes=len(train.classes), in_chans=3)
        if holdout:
            plain_train, _ = imagenet_datasets(data_dir, augment=False)
            spec.train, spec.test = _hold_out(train, plain_train, holdout)
            spec.test_split = "validation"
        return spec
    kwargs = dict(download=download, verify_checksums=verify_checksums)
    train, test = cifar_datasets(name, data_dir, augment=augment, **kwargs)
    spec = DataSpec(name, train, test, num_classes=len(train.classes), in_chans=3)
    if holdout:
        # The held-out images are evaluated without augmentation, like the test set.
        plain_train, _ = cifar_datasets(name, data_dir, augment=False, **kwargs)
        spec.train, spec.test = _hold_out(train, plain_train, holdout)
        spec.test_split = "validation"
    return spec


def _hold_out(train: Dataset, plain_train: Dataset, holdout: int) -> tuple[Subset, Subset]:
    """Split off ``holdout`` random training images (fixed seed) as the validation set."""
    size = len(train)
    if holdout >= size:
        raise ValueError(f"holdout must be smaller than the {size} training images, got {holdout}")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    return Subset(train, order[holdout:]), Subset(plain_train, order[:holdout])
