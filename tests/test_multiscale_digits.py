"""The multi-scale digits of notebook 11: deterministic, faithful to the digits, inside the canvas, split-safe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqlite import SeqResNet, SeqResNetConfig
from seqlite.data import digits_split, load_digits
from seqlite.data.multiscale_digits import multiscale_digits, multiscale_digits_datasets, paste_digits


def test_same_seed_same_images_other_seed_other_placements():
    a = multiscale_digits("train", canvas=16, min_size=6, max_size=16, seed=3)
    b = multiscale_digits("train", canvas=16, min_size=6, max_size=16, seed=3)
    c = multiscale_digits("train", canvas=16, min_size=6, max_size=16, seed=4)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a.sizes, c.sizes) and not torch.equal(a.images, c.images)
    assert torch.equal(a.labels, c.labels)  # the same digits, placed elsewhere


def test_labels_and_sources_follow_the_fixed_split_copy_by_copy():
    images, labels = load_digits()
    train_idx, test_idx = digits_split()
    train = multiscale_digits("train", canvas=16, copies=3)
    test = multiscale_digits("test", canvas=16)
    assert torch.equal(train.source, train_idx.repeat(3)) and torch.equal(test.source, test_idx)
    assert torch.equal(train.labels, labels[train.source]) and torch.equal(test.labels, labels[test.source])
    assert not set(train.source.tolist()) & set(test.source.tolist())  # no test digit is ever trained on
    # Each split has its own random stream: the test digits' sizes are not the first training digits' sizes.
    assert not torch.equal(train.sizes[: len(test.sizes)], test.sizes)
    assert train.images.shape == (3 * len(train_idx), 1, 16, 16) and train.images.dtype == torch.float32


def test_sizes_cover_the_range_and_every_digit_lies_in_its_box():
    data = multiscale_digits("train", canvas=20, min_size=6, max_size=14, seed=1)
    assert data.sizes.min() == 6 and data.sizes.max() == 14
    assert set(data.sizes.tolist()) == set(range(6, 15))
    assert (data.tops >= 0).all() and (data.tops + data.sizes <= 20).all()
    assert (data.lefts >= 0).all() and (data.lefts + data.sizes <= 20).all()
    # Both corners are drawn: digits touch every border of the canvas somewhere.
    assert (data.tops == 0).any() and (data.tops + data.sizes == 20).any()
    for n in range(0, len(data.images), 97):
        top, left, s = int(data.tops[n]), int(data.lefts[n]), int(data.sizes[n])
        outside = data.images[n, 0].clone()
        outside[top : top + s, left : left + s] = 0
        assert outside.abs().max() == 0, f"image {n} has ink outside its box"
        assert data.images[n, 0, top : top + s, left : left + s].max() > 0.2, f"image {n} has no digit in its box"
    assert data.images.min() >= 0 and data.images.max() <= 1


def test_defaults_are_a_32x32_canvas_with_digits_from_8_to_24_pixels():
    data = multiscale_digits("test")
    assert data.images.shape[-2:] == (32, 32)
    assert data.sizes.min() == 8 and data.sizes.max() == 24  # max_size defaults to 3/4 of the canvas
    assert multiscale_digits("test", canvas=8).sizes.unique().tolist() == [8]  # never below min_size


def test_a_digit_at_its_own_size_is_pasted_unchanged_and_resizing_is_torchs():
    images, _ = load_digits()
    digits = images[:3].float() / 16
    sizes, tops, lefts = torch.tensor([8, 8, 12]), torch.tensor([0, 4, 1]), torch.tensor([0, 2, 3])
    canvas = paste_digits(digits, sizes, tops, lefts, 16)
    torch.testing.assert_close(canvas[0, :, :8, :8], digits[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(canvas[1, :, 4:12, 2:10], digits[1], rtol=0, atol=1e-6)
    expected = F.interpolate(digits[2:3], size=(12, 12), mode="bilinear", align_corners=False, antialias=True)[0]
    torch.testing.assert_close(canvas[2, :, 1:13, 3:15], expected)


def test_datasets_are_normalised_with_the_training_statistics_and_test_ignores_copies():
    train, test = multiscale_digits_datasets(canvas=16, min_size=6, max_size=16, seed=2)
    x = train.tensors[0]
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-4
    raw_train = multiscale_digits("train", canvas=16, min_size=6, max_size=16, seed=2).images
    raw_test = multiscale_digits("test", canvas=16, min_size=6, max_size=16, seed=2).images
    torch.testing.assert_close(test.tensors[0], (raw_test - raw_train.mean()) / raw_train.std())
    # More training copies change the statistics, not the test digits' placements.
    _, test3 = multiscale_digits_datasets(canvas=16, min_size=6, max_size=16, seed=2, copies=3)
    raw_train3 = multiscale_digits("train", canvas=16, min_size=6, max_size=16, seed=2, copies=3).images
    torch.testing.assert_close(test3.tensors[0], (raw_test - raw_train3.mean()) / raw_train3.std())
    assert torch.equal(test3.tensors[1], test.tensors[1])


def test_the_cifar_template_keeps_room_in_its_last_stage():
    # The point of the dataset (notebook 11): the 8x8 digits leave 2x2 maps in the last stage, 16x16 canvases 4x4.
    net = SeqResNet(SeqResNetConfig(stem=((16, 1),), widths=(16, 32, 48), k=(4, 4, 4), blocks=(1, 1, 1),
                                    in_chans=1)).eval()
    train, _ = multiscale_digits_datasets(canvas=16)
    with torch.no_grad():
        features = net.forward_features(train.tensors[0][:2])
    assert features.shape[-2:] == (4, 4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(canvas=7), "canvas"),
        (dict(canvas=16.0), "canvas"),
        (dict(min_size=0), "min_size"),
        (dict(canvas=16, min_size=17), "min_size"),
        (dict(canvas=16, min_size=10, max_size=9), "max_size"),
        (dict(canvas=16, max_size=17), "max_size"),
        (dict(copies=0), "copies"),
        (dict(copies=True), "copies"),
        (dict(seed=-1), "seed"),
        (dict(split="validation"), "split"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        multiscale_digits(**kwargs)


def test_paste_refuses_digits_outside_the_canvas():
    digits = torch.ones(1, 1, 8, 8)
    with pytest.raises(ValueError, match="inside the 10x10 canvas"):
        paste_digits(digits, torch.tensor([8]), torch.tensor([3]), torch.tensor([0]), 10)
    with pytest.raises(ValueError, match="one entry per digit"):
        paste_digits(digits, torch.tensor([8, 8]), torch.tensor([0]), torch.tensor([0]), 10)
