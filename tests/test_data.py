"""Datasets: the embedded digits, CIFAR read from its real on-disk format, ImageFolder, errors."""

from __future__ import annotations

import itertools
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from seqlite.data import (
    CIFAR100_MEAN,
    CIFAR100_STD,
    CorruptDataError,
    DatasetNotFoundError,
    build_datasets,
    digits_datasets,
    digits_split,
    load_cifar_file,
    load_digits,
)
from seqlite.seqresnet import CIFAR_MEAN, CIFAR_STD

# --- embedded digits --------------------------------------------------------------------


def test_digits_are_the_1797_real_images():
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.uint8
    assert int(images.max()) == 16 and int(images.min()) == 0  # 4x4 block counts of a 32x32 bitmap
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert torch.bincount(labels).min() >= 170  # about 180 of each digit


def test_digits_split_is_fixed_stratified_and_normalised():
    images, labels = load_digits()
    train_idx, test_idx = digits_split()
    assert sorted(train_idx.tolist() + test_idx.tolist()) == list(range(1797))  # disjoint, complete
    per_class, test_per_class = torch.bincount(labels), torch.bincount(labels[test_idx], minlength=10)
    assert torch.all((test_per_class - 0.2 * per_class).abs() <= 1)

    train, test = digits_datasets()
    again_train, _ = digits_datasets()
    assert torch.equal(train.tensors[0], again_train.tensors[0])
    assert torch.equal(train.tensors[1], labels[train_idx]) and torch.equal(test.tensors[1], labels[test_idx])
    x = train.tensors[0]
    assert x.shape == (len(train_idx), 1, 8, 8) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-4
    # The same affine map of the raw pixels on both sides.
    raw = images.float()
    scale = (x[0] - x[1]).flatten() / (raw[train_idx[0]] - raw[train_idx[1]]).flatten()
    scale = scale[torch.isfinite(scale)][0]
    offset = x[0].flatten()[0] - scale * raw[train_idx[0]].flatten()[0]
    torch.testing.assert_close(test.tensors[0], raw[test_idx] * scale + offset)


def test_digits_holdout_comes_from_training_images():
    spec = build_datasets("digits", holdout=100)
    full = build_datasets("digits")
    assert len(spec.train) + len(spec.test) == len(full.train)
    assert spec.test_split == "validation" and spec.num_classes == 10 and spec.in_chans == 1
    with pytest.raises(ValueError, match="holdout"):
        build_datasets("digits", holdout=len(full.train))


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="dataset must be one of cifar10, cifar100, imagenet, digits"):
        build_datasets("mnist")


# --- CIFAR in its real on-disk format -----------------------------------------------------


def _write_batch(path: Path, images: np.ndarray, labels: list[int], label_key: str) -> None:
    with open(path, "wb") as f:
        pickle.dump({"data": images.reshape(len(images), -1), label_key: labels}, f)


def write_tiny_cifar(root: Path, name: str = "cifar10", per_file: int = 4, seed: int = 0) -> dict:
    """CIFAR's python format: pickled dicts of uint8 rows (N, 3072) in CHW order, and a meta file."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True)
    files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    if name == "cifar100":
        files = {"train": ["train"], "test": ["test"]}
    label_key = "labels" if name == "cifar10" else "fine_labels"
    written = {}
    for split, names in files.items():
        chunks = []
        for file_name in names:
            images = rng.integers(0, 256, size=(per_file, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, classes, size=per_file).tolist()
            _write_batch(folder / file_name, images, labels, label_key)
            chunks.append((images, labels))
        written[split] = (np.concatenate([c[0] for c in chunks]), sum((c[1] for c in chunks), []))
    meta_name, meta_key = ("batches.meta", "label_names") if name == "cifar10" else ("meta", "fine_label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(classes)]}, f)
    return written


def _normalised(chw_uint8: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(chw_uint8).float() / 255
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def test_cifar10_loads_from_disk_with_the_papers_augmentation(tmp_path):
    written = write_tiny_cifar(tmp_path, "cifar10")
    spec = build_datasets("cifar10", tmp_path, download=False, verify_checksums=False)
    assert (len(spec.train), len(spec.test), spec.num_classes, spec.in_chans) == (20, 4, 10, 3)
    images, labels = written["test"]
    for i in range(len(spec.test)):
        x, y = spec.test[i]
        assert y == labels[i]
        torch.testing.assert_close(x, _normalised(images[i], CIFAR_MEAN, CIFAR_STD))
    # Training images: a 32x32 crop of the image zero-padded by 4 pixels, maybe mirrored (paper 4.2).
    train_images, train_labels = written["train"]
    torch.manual_seed(0)
    shifts_seen, flips_seen = set(), set()
    for i, _ in itertools.product(range(len(spec.train)), range(3)):
        x, y = spec.train[i]
        assert y == train_labels[i] and x.shape == (3, 32, 32)
        padded = F.pad(torch.from_numpy(train_images[i]).float() / 255, (4, 4, 4, 4))
        padded = (padded - torch.tensor(CIFAR_MEAN)[:, None, None]) / torch.tensor(CIFAR_STD)[:, None, None]
        matches = [
            (dy, dx, flip)
            for dy, dx, flip in itertools.product(range(9), range(9), (False, True))
            if torch.allclose(x, (padded.flip(-1) if flip else padded)[:, dy : dy + 32, dx : dx + 32], atol=1e-5)
        ]
        assert matches, f"training image {i} is not a padded crop (or mirrored crop) of the stored image"
        shifts_seen.add(matches[0][:2])
        flips_seen.add(matches[0][2])
    assert len(shifts_seen) > 1 and flips_seen == {False, True}


def test_cifar100_format_and_its_statistics(tmp_path):
    written = write_tiny_cifar(tmp_path, "cifar100", per_file=6)
    spec = build_datasets("cifar100", tmp_path, download=False, verify_checksums=False)
    assert (len(spec.train), len(spec.test), spec.num_classes) == (6, 6, 100)
    x, y = spec.test[2]
    assert y == written["test"][1][2]
    torch.testing.assert_close(x, _normalised(written["test"][0][2], CIFAR100_MEAN, CIFAR100_STD))


def test_cifar_holdout_is_evaluated_without_augmentation(tmp_path):
    written = write_tiny_cifar(tmp_path, "cifar10")
    spec = build_datasets("cifar10", tmp_path, download=False, verify_checksums=False, holdout=5)
    assert (len(spec.train), len(spec.test), spec.test_split) == (15, 5, "validation")
    train_images = written["train"][0]
    held = [spec.test[i][0] for i in range(5)]
    for x, idx in zip(held, spec.test.indices):
        torch.testing.assert_close(x, _normalised(train_images[idx], CIFAR_MEAN, CIFAR_STD))
    assert not set(spec.test.indices) & set(spec.train.indices)


def test_cifar_checksums_are_verified_by_default(tmp_path):
    write_tiny_cifar(tmp_path, "cifar10")
    with pytest.raises(DatasetNotFoundError, match="MD5") as err:
        build_datasets("cifar10", tmp_path, download=False)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value)


def test_missing_cifar_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        build_datasets("cifar100", tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "cifar-100-python") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert "train, test, meta" in message


# --- ImageNet as an ImageFolder tree ------------------------------------------------------


def test_imagenet_imagefolder_tree(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 2)):
        for cls in ("n01440764", "n01443537"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(60 + 10 * i, 80, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    spec = build_datasets("imagenet", tmp_path)
    assert (len(spec.train), len(spec.test), spec.num_classes) == (6, 4, 2)
    x, y = spec.train[4]
    assert x.shape == (3, 224, 224) and y == 1
    first, again = spec.test[0][0], spec.test[0][0]
    assert first.shape == (3, 224, 224) and torch.equal(first, again)  # evaluation is deterministic


def test_missing_imagenet_explains_how_to_arrange_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        build_datasets("imagenet", tmp_path)
    assert str(tmp_path / "train") in str(err.value) and "image-net.org" in str(err.value)


# --- files that are not what they claim to be ---------------------------------------------


class _WritesAMarker:
    """Unpickling this calls open(marker, "w"): what a crafted file would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("target", ["data_batch_2", "test_batch", "batches.meta"])
@pytest.mark.parametrize("verify", [False, True])
def test_a_crafted_cifar_file_runs_no_code(tmp_path, target, verify):
    write_tiny_cifar(tmp_path, "cifar10")
    marker = tmp_path / "marker"
    path = tmp_path / "cifar-10-batches-py" / target
    with open(path, "wb") as f:
        pickle.dump({"data": _WritesAMarker(marker), "labels": [0], "label_names": _WritesAMarker(marker)}, f)
    error = CorruptDataError if not verify else DatasetNotFoundError  # verified: the MD5 differs
    with pytest.raises(error) as err:
        build_datasets("cifar10", tmp_path, download=False, verify_checksums=verify)
    assert not marker.exists()
    if not verify:
        # open's module as pickle records it: io, or _io on Python 3.13
        assert str(path) in str(err.value) and f"refused to load {open.__module__}.open" in str(err.value)


def test_the_restricted_loader_reads_arrays_of_every_pickle_protocol(tmp_path):
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}"
        with open(path, "wb") as f:
            pickle.dump({"data": images, "labels": [1, 2], "batch_label": b"x"}, f, protocol=protocol)
        entry = load_cifar_file(path)
        assert np.array_equal(entry["data"], images) and entry["labels"] == [1, 2], protocol


def _respelled(data: bytes, old: str, new: str) -> bytes:
    """The pickle ``data`` with every global of module ``old...`` named ``new...`` (frame lengths kept right).

    What another NumPy writes: NumPy 1 names ``numpy.core.numeric._frombuffer`` where NumPy 2
    names ``numpy._core.numeric._frombuffer``.
    """
    ops = list(pickletools.genops(data))
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    pieces = []
    for (op, arg, pos), end in zip(ops, ends):
        raw = data[pos:end]
        if op.name == "SHORT_BINUNICODE" and arg.startswith(old):
            text = (new + arg[len(old):]).encode()
            raw = b"\x8c" + bytes([len(text)]) + text
        elif op.name == "GLOBAL" and arg.startswith(old):
            raw = b"c" + (new + arg[len(old):]).replace(" ", "\n").encode() + b"\n"
        pieces.append((op.name, raw))
    out, frame_at = bytearray(), None
    for name, raw in pieces:
        if name == "FRAME":
            frame_at = len(out)
            out += raw
            continue
        out += raw
        if frame_at is not None:  # the frame holds everything up to the next FRAME (or the end)
            out[frame_at + 1 : frame_at + 9] = (len(out) - frame_at - 9).to_bytes(8, "little")
    return bytes(out)


@pytest.mark.parametrize("written_by", ["numpy 1", "numpy 2"])
@pytest.mark.parametrize("running", ["numpy 1", "numpy 2"])
def test_cifar_files_of_either_numpy_load_with_either_numpy(tmp_path, monkeypatch, written_by, running):
    """NumPy 2 renamed numpy.core to numpy._core: a file names the one of the numpy that wrote it.

    ``running="numpy 1"``: the modules only NumPy 2 has cannot be imported (as on NumPy 1), and
    the other way round; the loader must not look the file's spelling up.
    """
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    spelled = {"numpy 1": "numpy.core.", "numpy 2": "numpy._core."}
    native = spelled["numpy 2" if int(np.__version__.split(".")[0]) >= 2 else "numpy 1"]  # the floors' venv has 1
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps({"data": images, "labels": [1, 2], "scalar": np.uint8(7)}, protocol=protocol)
        assert native.encode() in data
        path = tmp_path / f"p{protocol}"
        path.write_bytes(_respelled(data, native, spelled[written_by]))
        assert spelled[written_by].encode() in path.read_bytes()
        with monkeypatch.context() as patch:
            absent = "numpy._core" if running == "numpy 1" else "numpy.core"
            for module in ("multiarray", "numeric"):
                patch.setitem(sys.modules, f"{absent}.{module}", None)  # `import` of it now fails
            entry = load_cifar_file(path)
        assert np.array_equal(entry["data"], images) and entry["labels"] == [1, 2] and entry["scalar"] == 7, protocol


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a dict", "labels out of range", "wrong width"])
def test_a_corrupt_cifar_batch_is_named(tmp_path, damage):
    write_tiny_cifar(tmp_path, "cifar10")
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a pickle at all")
    elif damage == "not a dict":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    elif damage == "labels out of range":
        _write_batch(path, np.zeros((4, 3, 32, 32), np.uint8), [0, 1, 2, 10], "labels")
    else:
        path.write_bytes(pickle.dumps({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}))
    with pytest.raises(CorruptDataError) as err:
        build_datasets("cifar10", tmp_path, download=False, verify_checksums=False)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def _write_image_tree(root: Path, count: int = 2) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_is_named_even_from_a_worker_process(tmp_path, workers):
    _write_image_tree(tmp_path)
    bad = tmp_path / "train" / "b" / "1.png"
    bad.write_bytes(b"\x89PNG torn")
    spec = build_datasets("imagenet", tmp_path)
    loader = torch.utils.data.DataLoader(spec.train, batch_size=4, num_workers=workers)
    with pytest.raises(CorruptDataError) as err:
        list(loader)
    assert str(err.value).startswith(f"cannot read the image {bad}") and "\n" not in str(err.value)
