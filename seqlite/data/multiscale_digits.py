"""The embedded digits at many sizes on a larger canvas: a small task where depth can matter.

The embedded 8x8 digits (:func:`seqlite.data.digits_datasets`) leave the CIFAR template's
three stages (Table 1) with 8x8, 4x4 and 2x2 feature maps. On a 2x2 map a padded 3x3
convolution already sees the whole map, so a deeper group of a SeqConv layer cannot see
farther than a shallow one, and experiments on those digits cannot show what aggregating
features of many depths (Eq. 1-2) does. Notebook 11 needs a task that is as cheap but
gives the feature maps room:

* each digit is resized to a size drawn uniformly from ``min_size ... max_size`` pixels
  and pasted at a uniformly drawn position on a blank ``canvas x canvas`` image; the
  class does not depend on size or place, so a network needs features of several scales
  (the "multi-scale representation" of the paper's introduction);
* everything is drawn from ``seed`` with torch's generator: the same arguments give the
  same tensors on every machine, with no download;
* training and test images come from :func:`seqlite.data.digits_split`'s fixed split, so
  no test digit is ever seen in training, at any size. Each split draws from a random
  stream of its own (seeded by ``seed`` and the split), so the test images do not repeat
  the training images' sizes and places and do not change with the training ``copies``.

A 32x32 canvas is the CIFAR size of the paper's Table 5 networks (maps 32, 16, 8); notebook
11's quick mode uses 16x16 (maps 16, 8, 4) to fit the CPU budget of CI.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset

from . import digits_split, load_digits

__all__ = ["MultiscaleDigits", "multiscale_digits", "multiscale_digits_datasets", "paste_digits"]

_DIGIT_SIDE = 8  # the embedded digits are 8x8
_SPLITS = {"train": 0, "test": 1}


class MultiscaleDigits(NamedTuple):
    """Rendered digits: ``images`` (N, 1, canvas, canvas) in [0, 1], ``labels`` (N,), and where each digit is.

    ``sizes``, ``tops``, ``lefts`` (N,): the digit ``n`` covers rows ``tops[n] ... tops[n] + sizes[n] - 1``
    and the same range of columns from ``lefts[n]``; ``source`` (N,) is its index into
    :func:`~seqlite.data.load_digits`.
    """

    images: Tensor
    labels: Tensor
    sizes: Tensor
    tops: Tensor
    lefts: Tensor
    source: Tensor


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def paste_digits(digits: Tensor, sizes: Tensor, tops: Tensor, lefts: Tensor, canvas: int) -> Tensor:
    """Resize each ``digits[n]`` (N, 1, h, w) to ``sizes[n]`` pixels square and paste it on a blank canvas.

    Resizing is torch's bilinear interpolation with antialiasing (so a digit shrunk below
    its 8 pixels is smoothed, not sub-sampled); a digit kept at its own size is copied
    unchanged. Digits of the same size are resized together.
    """
    n = len(digits)
    if not (len(sizes) == len(tops) == len(lefts) == n):
        raise ValueError(f"sizes, tops and lefts must have one entry per digit ({n}); "
                         f"got {len(sizes)}, {len(tops)}, {len(lefts)}")
    if n and (int((tops + sizes).max()) > canvas or int((lefts + sizes).max()) > canvas
              or int(tops.min()) < 0 or int(lefts.min()) < 0):
        raise ValueError(f"every digit must lie inside the {canvas}x{canvas} canvas (tops, lefts >= 0, "
                         f"top + size <= canvas)")
    out = digits.new_zeros(n, digits.shape[1], canvas, canvas)
    for size in sizes.unique().tolist():
        members = torch.nonzero(sizes == size).flatten()
        resized = F.interpolate(digits[members], size=(size, size), mode="bilinear", align_corners=False,
                                antialias=True)
        for image, n_ in zip(resized, members.tolist()):
            top, left = int(tops[n_]), int(lefts[n_])
            out[n_, :, top : top + size, left : left + size] = image
    return out


def multiscale_digits(
    split: str = "train",
    *,
    canvas: int = 32,
    min_size: int = 8,
    max_size: int | None = None,
    copies: int = 1,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> MultiscaleDigits:
    """One split of the multi-scale digits, un-normalised (pixels in [0, 1]).

    ``split``: ``"train"`` or ``"test"`` (:func:`~seqlite.data.digits_split`'s). Each digit
    of the split is drawn ``copies`` times, each time at its own size (uniform from
    ``min_size`` to ``max_size``, both included; ``max_size`` defaults to 3/4 of the canvas) and position
    (uniform over the places where it fits). Images are ordered copy by copy, each copy
    in the split's order.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}; got {split!r}")
    canvas = _check_int("canvas", canvas, _DIGIT_SIDE)
    min_size = _check_int("min_size", min_size, 1, canvas)
    max_size = max(min_size, canvas * 3 // 4) if max_size is None else max_size
    max_size = _check_int("max_size", max_size, min_size, canvas)
    copies = _check_int("copies", copies, 1)
    seed = _check_int("seed", seed, 0)
    images, labels = load_digits()
    indices = digits_split(test_fraction)[_SPLITS[split]].repeat(copies)
    # One stream per split and seed: test placements never repeat the training ones in the same order.
    generator = torch.Generator().manual_seed(2 * seed + _SPLITS[split])
    n = len(indices)
    sizes = torch.randint(min_size, max_size + 1, (n,), generator=generator)
    tops = (torch.rand(n, generator=generator) * (canvas - sizes + 1)).floor().long()
    lefts = (torch.rand(n, generator=generator) * (canvas - sizes + 1)).floor().long()
    pixels = images[indices].float() / 16.0  # the digits' pixel counts run from 0 to 16
    return MultiscaleDigits(paste_digits(pixels, sizes, tops, lefts, canvas), labels[indices], sizes, tops, lefts,
                            indices)


def multiscale_digits_datasets(
    *,
    canvas: int = 32,
    min_size: int = 8,
    max_size: int | None = None,
    copies: int = 1,
    test_copies: int = 1,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> tuple[TensorDataset, TensorDataset]:
    """Training and test sets of :func:`multiscale_digits` as ``(image, label)`` pairs, normalised.

    Normalised like :func:`~seqlite.data.digits_datasets`: with the training images' mean
    and standard deviation, on both sides. ``copies`` / ``test_copies``: renderings of each
    training / test digit.
    """
    options = dict(canvas=canvas, min_size=min_size, max_size=max_size, seed=seed, test_fraction=test_fraction)
    train = multiscale_digits("train", copies=copies, **options)
    test = multiscale_digits("test", copies=test_copies, **options)
    mean, std = train.images.mean(), train.images.std()
    return (TensorDataset((train.images - mean) / std, train.labels),
            TensorDataset((test.images - mean) / std, test.labels))
