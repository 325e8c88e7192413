"""The embedded digits: 1,797 8x8 handwritten digits shipped inside the package (no download).

The default dataset of the offline demo and of CI, split by a fixed, stratified rule so that
every run and every ``seqlite eval`` sees the same test images.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["DIGITS_PATH", "digits_datasets", "digits_split", "load_digits"]

DIGITS_PATH = Path(__file__).with_name("digits.csv.gz")
# The split of the embedded digits never depends on a run's seed, so every run and every
# ``seqlite eval`` sees the same test images.
SPLIT_SEED = 0


def load_digits() -> tuple[Tensor, Tensor]:
    """All 1,797 digits as ``(images uint8 (N, 1, 8, 8) in 0..16, labels int64 (N,))``.

    The file is scikit-learn's ``sklearn/datasets/data/digits.csv.gz`` (BSD-3-Clause,
    scikit-learn developers): the test part of the UCI "Optical Recognition of Handwritten
    Digits" data set (E. Alpaydin, C. Kaynak, 1998; UCI Machine Learning Repository, CC BY
    4.0). Each row is 64 pixel counts (a 32x32 bitmap summed over 4x4 blocks) and the label.
    """
    with gzip.open(DIGITS_PATH, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = torch.from_numpy(table[:, :64]).to(torch.uint8).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(table[:, 64])
    return images, labels


def digits_split(test_fraction: float = 0.2) -> tuple[Tensor, Tensor]:
    """Indices (train, test) into :func:`load_digits`: a fixed split stratified by digit.

    Every class gives the same fraction of its images to the test set.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    _, labels = load_digits()
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    train_idx, test_idx = [], []
    for digit in range(10):
        members = torch.nonzero(labels == digit).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = round(len(members) * test_fraction)
        test_idx.append(members[:cut])
        train_idx.append(members[cut:])
    return torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values


def digits_datasets(test_fraction: float = 0.2) -> tuple[TensorDataset, TensorDataset]:
    """The embedded digits as normalised ``1x8x8`` float tensors, split by :func:`digits_split`.

    Pixels are scaled to [0, 1] and normalised with the training split's mean and standard
    deviation. No augmentation: flips change digits and an 8x8 image has no room to shift.
    """
    images, labels = load_digits()
    train_idx, test_idx = digits_split(test_fraction)
    x = images.float() / 16.0
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    return TensorDataset(x[train_idx], labels[train_idx]), TensorDataset(x[test_idx], labels[test_idx])
