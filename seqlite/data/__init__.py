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

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CorruptDataError",
    "DATASETS",
    "DIGITS_PATH",
    "DataSpec",
    "DatasetNotFoundError",
    "build_datasets",
    "cifar_datasets",
    "digits_datasets",
    "digits_split",
    "imagenet_datasets",
    "load_cifar_file",
    "load_digits",
]

DATASETS = ("cifar10", "cifar100", "imagenet", "digits")
DIGITS_PATH = Path(__file__).with_name("digits.csv.gz")
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
# The split of the embedded digits never depends on a run's seed, so every run and every
# ``seqlite eval`` sees the same test images.
_SPLIT_SEED = 0


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk and could not be downloaded."""


class CorruptDataError(ValueError):
    """A dataset file cannot be read (truncated, corrupt, not in its format); the message names the file."""

    def __init__(self, message: str):
        # A DataLoader worker's error comes back as type(error)(a text with the worker's traceback);
        # keep its last line, the message itself.
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


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
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 0:
        raise ValueError(f"holdout must be a non-negative integer, got {holdout!r}")
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
    order = torch.randperm(size, generator=torch.Generator().manual_seed(_SPLIT_SEED)).tolist()
    return Subset(train, order[holdout:]), Subset(plain_train, order[:holdout])


# --- embedded digits --------------------------------------------------------------------


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
    generator = torch.Generator().manual_seed(_SPLIT_SEED)
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


# --- CIFAR ------------------------------------------------------------------------------


def cifar_transforms(name: str, augment: bool = True):
    """The paper's CIFAR pipeline (paper 4.2): pad 4 + random crop 32 + flip, normalise."""
    from torchvision import transforms as T

    from ..seqresnet import CIFAR_MEAN, CIFAR_STD

    mean, std = (CIFAR_MEAN, CIFAR_STD) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
    normalise = [T.ToTensor(), T.Normalize(mean, std)]
    train = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    return T.Compose(train + normalise), T.Compose(normalise)


def cifar_datasets(
    name: str,
    data_dir: str | os.PathLike = "data",
    *,
    download: bool = True,
    verify_checksums: bool = True,
    augment: bool = True,
):
    """CIFAR-10 or CIFAR-100 (train, test) through torchvision, from ``data_dir``.

    With ``download`` the archive is fetched into ``data_dir`` when the files are not there.
    ``verify_checksums=False`` accepts files in CIFAR's format whose MD5 sums differ from
    the official ones (a subset, or the tiny datasets the tests write); the files must
    still exist and be readable.
    """
    from torchvision.datasets import CIFAR10, CIFAR100

    if name not in ("cifar10", "cifar100"):
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    base = CIFAR10 if name == "cifar10" else CIFAR100
    root = Path(data_dir).expanduser()
    folder = root / base.base_folder
    files = [entry[0] for entry in base.train_list + base.test_list] + [base.meta["filename"]]
    missing = [f for f in files if not (folder / f).is_file()]
    title = "CIFAR-10" if name == "cifar10" else "CIFAR-100"
    how_to_get = (
        f"Get it with `seqlite train --dataset {name} --data-dir {root}` on a machine that is online "
        f"(it downloads {base.url}), or download and unpack that archive yourself so that "
        f"{folder} holds {', '.join(files)}."
    )
    if missing and not download:
        raise DatasetNotFoundError(
            f"{title} not found: looked in {folder} and did not find {', '.join(missing)}. {how_to_get}"
        )
    if missing:
        try:
            _safe_cifar(base, True)(root, train=True, download=True)
        except OSError as err:  # urllib's URLError is an OSError: offline, DNS, refused...
            raise DatasetNotFoundError(
                f"{title} not found in {folder} and the download from {base.url} failed ({err}). "
                f"{how_to_get}"
            ) from err
    cls = _safe_cifar(base, verify_checksums)
    train_tf, test_tf = cifar_transforms(name, augment)
    try:
        return cls(root, train=True, transform=train_tf), cls(root, train=False, transform=test_tf)
    except RuntimeError as err:
        raise DatasetNotFoundError(
            f"{title} files in {folder} do not match the official MD5 checksums ({err}). Delete them and "
            f"download again, or pass verify_checksums=False (--no-verify-data) to use them as they are."
        ) from err


class _CifarUnpickler(pickle.Unpickler):
    """Rebuilds only what CIFAR's python files hold: dicts, lists, bytes, strings, numbers, numpy arrays.

    Any other global a file names (the way a pickle runs code: ``os.system``, ``eval``, any
    ``__reduce__``) is refused before it is looked up, so a crafted file runs nothing.
    """

    _ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"),  # ndarray.__reduce__, protocols 0-4
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),  # ndarray.__reduce_ex__, protocol 5
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol 2
    }

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core"):  # files written before NumPy 2 renamed numpy.core
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR file holds only arrays, "
                                         "lists, strings and numbers")
        return super().find_class(module, name)


def load_cifar_file(path: str | os.PathLike) -> dict:
    """One CIFAR python-format file (a batch or the meta file) through the restricted unpickler.

    Nothing in the file can run code; a truncated, corrupt or non-CIFAR file raises
    :class:`CorruptDataError` naming it.
    """
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError) as err:
        raise CorruptDataError(f"cannot read the CIFAR file {path}: {type(err).__name__}: {err}") from None
    if not isinstance(entry, dict):
        raise CorruptDataError(f"cannot read the CIFAR file {path}: expected a dict, found {type(entry).__name__}")
    return entry


def _cifar_batch(path: Path, classes: int) -> tuple[np.ndarray, list[int]]:
    """The images (N, 3072) uint8 and labels of a batch file, checked so that training cannot fail on them."""
    entry = load_cifar_file(path)
    images = entry.get("data")
    labels = entry.get("labels", entry.get("fine_labels"))
    problem = None
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        problem = "'data' is not a uint8 array of rows of 3072 pixels"
    elif not isinstance(labels, list) or len(labels) != len(images):
        problem = f"expected {len(images)} labels under 'labels' or 'fine_labels'"
    elif not all(isinstance(y, int) and not isinstance(y, bool) and 0 <= y < classes for y in labels):
        problem = f"labels must be integers from 0 to {classes - 1}"
    if problem:
        raise CorruptDataError(f"not a CIFAR batch: {path}: {problem}")
    return images, labels


def _safe_cifar(base: type, verify_checksums: bool) -> type:
    """``base`` (CIFAR10/100) reading its files through :func:`load_cifar_file`, never plain pickle.

    Without ``verify_checksums`` the MD5 checks become "the file exists" (torchvision skips MD5
    for None); the restricted loading is the same either way.
    """
    from torchvision.datasets.utils import check_integrity
    from torchvision.datasets.vision import VisionDataset

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_integrity() or not check_integrity(self._path(self.meta["filename"]), self.meta["md5"]):
            raise RuntimeError("a file is missing or its MD5 sum differs")
        meta = load_cifar_file(self._path(self.meta["filename"]))
        self.classes = meta.get(self.meta["key"])
        if not isinstance(self.classes, list) or not self.classes:
            raise CorruptDataError(f"not a CIFAR meta file: {self._path(self.meta['filename'])}: no list of class "
                                   f"names under {self.meta['key']!r}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        batches = [_cifar_batch(self._path(name), len(self.classes))
                   for name, _ in (self.train_list if train else self.test_list)]
        self.data = np.vstack([images for images, _ in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self.targets = [y for _, labels in batches for y in labels]

    def _path(self, name: str) -> str:
        return os.path.join(self.root, self.base_folder, name)

    members: dict = {"__init__": __init__, "_path": _path}
    if not verify_checksums:
        members.update(
            train_list=[[name, None] for name, _ in base.train_list],
            test_list=[[name, None] for name, _ in base.test_list],
            meta={**base.meta, "md5": None},
        )
    return type(f"Safe{base.__name__}", (base,), members)


# --- ImageNet ---------------------------------------------------------------------------


def imagenet_transforms(augment: bool = True):
    """The standard ImageNet augmentation the paper adopts (paper 4.2, after fb.resnet.torch).

    Training: random-resized crop 224 (scale augmentation), colour jitter (brightness,
    contrast and saturation 0.4), AlexNet's PCA lighting noise (std 0.1, :class:`Lighting`),
    horizontal flip, normalisation. Evaluation: resize 256, centre crop 224, normalisation.
    """
    from torchvision import transforms as T

    from ..seqresnet import IMAGENET_MEAN, IMAGENET_STD
    from .augment import Lighting

    normalise = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    evaluation = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), normalise])
    if not augment:
        return evaluation, evaluation
    train = T.Compose([
        T.RandomResizedCrop(224),
        T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        T.ToTensor(),
        Lighting(0.1),  # on [0, 1] pixels, before normalisation
        T.RandomHorizontalFlip(),
        normalise,
    ])
    return train, evaluation


def _load_image(path: str):
    """torchvision's image loader, with an unreadable file named in the error (training stops there)."""
    from PIL import Image
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise CorruptDataError(f"cannot read the image {path}: {err}") from None


def imagenet_datasets(data_dir: str | os.PathLike, *, augment: bool = True):
    """ImageNet (train, val) as torchvision ImageFolders under ``data_dir/train`` and ``data_dir/val``."""
    from torchvision.datasets import ImageFolder

    root = Path(data_dir).expanduser()
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
            raise DatasetNotFoundError(
                f"ImageNet not found: looked for class folders in {folder}. ImageNet cannot be downloaded "
                f"automatically; get ILSVRC2012 from https://image-net.org (registration needed) and arrange it "
                f"as {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG (the validation images sorted "
                f"into class folders), then pass --data-dir {root}."
            )
    train_tf, eval_tf = imagenet_transforms(augment)
    train = ImageFolder(root / "train", transform=train_tf, loader=_load_image)
    val = ImageFolder(root / "val", transform=eval_tf, loader=_load_image)
    if train.classes != val.classes:
        raise ValueError(
            f"ImageNet train and val class folders differ under {root}: "
            f"{len(train.classes)} train classes, {len(val.classes)} val classes"
        )
    return train, val
