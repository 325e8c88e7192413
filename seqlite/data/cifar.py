"""CIFAR-10 and CIFAR-100 in their python format, read so that a crafted file runs no code.

torchvision's dataset classes find, download and MD5-check the files; every file is read by
:func:`load_cifar_file`, a restricted unpickler that builds only arrays, lists, strings and
numbers, and every batch is checked (shape, labels, at least one image) before training can
trip over it. Training augmentation is the paper's (paper 4.2): random 32x32 crop after 4-pixel
zero padding, horizontal flip, per-channel mean/std normalisation.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from .constants import CIFAR100_MEAN, CIFAR100_STD, CIFAR_MEAN, CIFAR_STD
from .errors import CorruptDataError, DatasetNotFoundError

__all__ = ["cifar_datasets", "cifar_transforms", "load_cifar_file"]


def cifar_transforms(name: str, augment: bool = True):
    """The paper's CIFAR pipeline (paper 4.2): pad 4 + random crop 32 + flip, normalise."""
    from torchvision import transforms as T

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


def _numpy_rebuilders() -> dict[tuple[str, str], object]:
    """The functions this numpy rebuilds arrays and scalars with, asked of numpy itself.

    NumPy 2 moved them from ``numpy.core`` to ``numpy._core``, and a pickle names them as the
    numpy that wrote it spells them. Taking them from the running numpy (what its own arrays
    reduce to) reads files of either spelling with either numpy, without importing a module
    the running numpy may not have.
    """
    array = np.zeros(1, np.uint8)
    found = {
        "_reconstruct": array.__reduce__()[0],  # ndarray.__reduce__, protocols 0-4
        "_frombuffer": array.__reduce_ex__(5)[0],  # ndarray.__reduce_ex__, protocol 5
        "scalar": np.uint8(0).__reduce__()[0],
    }
    return {(fn.__module__.rsplit(".", 1)[1], name): fn for name, fn in found.items()}


class _CifarUnpickler(pickle.Unpickler):
    """Rebuilds only what CIFAR's python files hold: dicts, lists, bytes, strings, numbers, numpy arrays.

    Any other global a file names (the way a pickle runs code: ``os.system``, ``eval``, any
    ``__reduce__``) is refused before it is looked up, so a crafted file runs nothing.
    """

    _NUMPY = _numpy_rebuilders()  # (submodule, name) -> function, e.g. ("numeric", "_frombuffer")
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # encode: protocol-2 bytes

    def find_class(self, module: str, name: str):
        for core in ("numpy._core.", "numpy.core."):  # as NumPy 2, or as NumPy 1 wrote the file
            if module.startswith(core) and (module[len(core):], name) in self._NUMPY:
                return self._NUMPY[module[len(core):], name]
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
    elif len(images) == 0:
        problem = "it holds no images"
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
