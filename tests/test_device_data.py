"""The on-device CIFAR pipeline against torchvision's, ImageNet's full augmentation, seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from test_data import write_tiny_cifar
from torch.utils.data import DataLoader, RandomSampler, Subset, TensorDataset

from seqlite.data import build_datasets, imagenet_transforms
from seqlite.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, EpochIndexSampler, Lighting, SeededAugmentation
from seqlite.data.device import DeviceCIFARLoader
from seqlite.seqresnet import CIFAR_MEAN, CIFAR_STD

STEP = 7  # pixel value = 1 + 7 * position: every row and column has its own value, and 0 is the padding


def _position_images(n: int) -> np.ndarray:
    """(N, 32, 32, 3) HWC uint8: red encodes the row, green the column, so a crop says where it came from."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([1 + STEP * rows, 1 + STEP * cols, np.full_like(rows, 100)], axis=-1).astype(np.uint8)
    return np.repeat(image[None], n, axis=0)


def _crop_of(x: torch.Tensor) -> tuple[int, int, bool]:
    """(row offset, column offset in the 40x40 padded image, flipped) of a normalised crop of a position image."""
    pixels = (x * torch.tensor(CIFAR_STD)[:, None, None] + torch.tensor(CIFAR_MEAN)[:, None, None]) * 255
    pixels = pixels.round().to(torch.int64)
    row, col, col_right = (int(pixels[0, 16, 16]) - 1) // STEP, (int(pixels[1, 16, 16]) - 1) // STEP, \
        (int(pixels[1, 16, 17]) - 1) // STEP
    flipped = col_right < col
    # Output pixel (16, 16) is padded pixel (dy + 16, dx + 16), or (dy + 16, dx + 15) when mirrored.
    return row - 12, col - (11 if flipped else 12), flipped


def _torchvision_crop(image_hwc: np.ndarray, dy: int, dx: int, flipped: bool) -> torch.Tensor:
    """What torchvision's pipeline gives for this crop and flip (its own pad, crop, flip, ToTensor, Normalize)."""
    img = TF.crop(TF.pad(Image.fromarray(image_hwc), 4), dy, dx, 32, 32)
    img = TF.hflip(img) if flipped else img
    return T.Normalize(CIFAR_MEAN, CIFAR_STD)(T.ToTensor()(img))


def _chi_square(counts: np.ndarray, expected: np.ndarray) -> float:
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.fixture
def cifar(tmp_path):
    write_tiny_cifar(tmp_path, "cifar10", per_file=4)
    return build_datasets("cifar10", tmp_path, download=False, verify_checksums=False)


def test_device_crops_and_flips_are_distributed_as_torchvision_s(cifar):
    n = 3000
    cifar.train.data = _position_images(n)
    cifar.train.targets = [i % 10 for i in range(n)]
    torch.manual_seed(0)
    tv = np.array([_crop_of(cifar.train[i][0]) for i in range(n)])
    loader = DeviceCIFARLoader(cifar.train, 500, "cpu", seed=0)
    dev = np.array([_crop_of(x) for images, _ in loader for x in images])
    assert len(dev) == n
    # 99.9% critical values of chi-square: 26.12 for 8 degrees of freedom (9 offsets), 10.83 for 1 (flip).
    for samples in (tv, dev):
        assert samples[:, :2].min() == 0 and samples[:, :2].max() == 8
        for axis in (0, 1):
            assert _chi_square(np.bincount(samples[:, axis], minlength=9), np.full(9, n / 9)) < 26.12
        assert _chi_square(np.bincount(samples[:, 2], minlength=2), np.full(2, n / 2)) < 10.83
    # And the two pipelines' histograms agree with each other (chi-square test of homogeneity).
    for axis, bins, critical in ((0, 9, 26.12), (1, 9, 26.12), (2, 2, 10.83)):
        table = np.stack([np.bincount(tv[:, axis], minlength=bins), np.bincount(dev[:, axis], minlength=bins)])
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        assert _chi_square(table, expected) < critical


def test_device_batches_are_torchvision_s_pixels_bit_for_bit(cifar):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    cifar.train.data = images
    loader = DeviceCIFARLoader(cifar.train, 8, "cpu", seed=3)
    assert len(loader) == 3
    positions = DeviceCIFARLoader(Subset(cifar.train, range(20)), 8, "cpu", seed=3)
    positions.images = torch.from_numpy(_position_images(20)).permute(0, 3, 1, 2).contiguous()
    seen = 0
    for (x, y), (p, _) in zip(loader, positions):
        for i in range(len(x)):
            dy, dx, flipped = _crop_of(p[i])  # the same draws on position images say which crop it was
            assert torch.equal(x[i], _torchvision_crop(images[seen], dy, dx, flipped))
            assert y[i] == cifar.train.targets[seen]
            seen += 1
    assert seen == 20
    # The test set: no augmentation, and exactly ToTensor() + Normalize().
    test = DeviceCIFARLoader(cifar.test, 3, "cpu")
    batches = list(test)
    assert [len(b[0]) for b in batches] == [3, 1]
    got = torch.cat([b[0] for b in batches])
    assert all(torch.equal(got[i], cifar.test[i][0]) for i in range(len(cifar.test)))


def test_device_augmentation_is_a_function_of_seed_epoch_and_rank(cifar):
    def epoch(loader, e):
        loader.set_epoch(e)
        return torch.cat([x for x, _ in loader])

    sampler = RandomSampler(cifar.train, generator=torch.Generator().manual_seed(0))
    a = DeviceCIFARLoader(cifar.train, 8, "cpu", sampler=sampler, seed=5)
    b = DeviceCIFARLoader(cifar.train, 8, "cpu", sampler=sampler, seed=5)
    sampler.generator.manual_seed(9)
    first = epoch(a, 2)
    torch.rand(100)  # the global RNG plays no part
    sampler.generator.manual_seed(9)
    assert torch.equal(epoch(b, 2), first)  # a resumed epoch 2 draws the same crops and flips
    sampler.generator.manual_seed(9)
    assert not torch.equal(epoch(b, 3), first)
    other_rank = DeviceCIFARLoader(cifar.train, 8, "cpu", sampler=sampler, seed=5, rank=1)
    sampler.generator.manual_seed(9)
    assert not torch.equal(epoch(other_rank, 2), first)
    assert len(DeviceCIFARLoader(cifar.train, 8, "cpu", drop_last=True)) == 2


def test_device_pipeline_refuses_what_it_cannot_do(cifar):
    with pytest.raises(ValueError, match="torchvision CIFAR dataset"):
        DeviceCIFARLoader(TensorDataset(torch.zeros(2, 3, 32, 32)), 2, "cpu")
    cifar.train.transform = T.Compose([T.RandomRotation(10), T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    with pytest.raises(ValueError, match="pad\\+crop, flip and normalise only"):
        DeviceCIFARLoader(cifar.train, 2, "cpu")


# --- ImageNet: the standard augmentation (paper 4.2) -------------------------------------------------


def test_imagenet_training_pipeline_is_the_standard_one():
    train, evaluation = imagenet_transforms()
    kinds = [type(t).__name__ for t in train.transforms]
    assert kinds == ["RandomResizedCrop", "ColorJitter", "ToTensor", "Lighting", "RandomHorizontalFlip", "Normalize"]
    jitter = train.transforms[1]
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.6, 1.4) and jitter.hue is None
    assert train.transforms[3].std == 0.1
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8))
    assert train(image).shape == evaluation(image).shape == (3, 224, 224)
    plain, _ = imagenet_transforms(augment=False)
    assert "Lighting" not in [type(t).__name__ for t in plain.transforms]


def test_lighting_adds_one_colour_along_the_principal_components():
    eigvec = torch.tensor(IMAGENET_EIGVEC)
    assert torch.allclose(eigvec.T @ eigvec, torch.eye(3), atol=2e-3)  # columns are unit eigenvectors
    img = torch.rand(3, 5, 7)
    assert torch.equal(Lighting(0.0)(img), img)
    with pytest.raises(ValueError, match="std must be >= 0"):
        Lighting(-1)
    lighting = Lighting(0.1)
    torch.manual_seed(0)
    shifts = torch.stack([(lighting(img) - img)[:, 0, 0] for _ in range(4000)])
    torch.manual_seed(0)
    out = lighting(img) - img
    assert torch.allclose(out, out[:, :1, :1].expand_as(out), atol=1e-6)  # the same shift at every pixel
    # The shifts' covariance is V diag((0.1 * eigval)^2) V^T, V's columns the eigenvectors.
    expected = eigvec @ torch.diag((0.1 * torch.tensor(IMAGENET_EIGVAL)) ** 2) @ eigvec.T
    covariance = shifts.T @ shifts / len(shifts)
    assert torch.allclose(covariance, expected, atol=0.06 * expected.abs().max())
    assert shifts.mean(0).abs().max() < 4 * 0.1 * IMAGENET_EIGVAL[0] / len(shifts) ** 0.5


# --- augmentation a resumed epoch repeats ------------------------------------------------------------


class _Noisy(torch.utils.data.Dataset):
    """Every item is a fresh random draw, as a random crop or flip is."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(2) + index


def test_seeded_augmentation_depends_on_seed_epoch_and_index_only():
    data = SeededAugmentation(_Noisy(), seed=4)
    first = data[(1, 3)]
    torch.rand(10)
    before = torch.get_rng_state()
    assert torch.equal(data[(1, 3)], first)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left alone
    assert not torch.equal(data[(2, 3)], first) and not torch.equal(SeededAugmentation(_Noisy(), 5)[(1, 3)], first)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_draws_the_same_with_any_workers_even_persistent_ones(workers):
    def epochs(loader, sampler, which):
        out = []
        for e in which:
            sampler.sampler.generator.manual_seed(100 + e)
            sampler.set_epoch(e)
            out.append(torch.cat(list(loader)))
        return out

    def loader(workers):
        sampler = EpochIndexSampler(RandomSampler(range(12), generator=torch.Generator()))
        return DataLoader(SeededAugmentation(_Noisy(), 4), batch_size=5, sampler=sampler, num_workers=workers,
                          persistent_workers=workers > 0), sampler

    whole = epochs(*loader(0), [0, 1, 2])
    resumed = epochs(*loader(workers), [1, 2])  # a run resumed after epoch 1, its workers started afresh
    assert torch.equal(whole[1], resumed[0]) and torch.equal(whole[2], resumed[1])
    assert not torch.equal(whole[1], whole[2])
