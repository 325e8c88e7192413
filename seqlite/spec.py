"""The shape of a SeqConv layer (paper 3.1-3.2), apart from any layer: views, masks, closed-form counts.

:class:`SeqConvSpec` holds the six numbers that define a layer, validated once. Everything
that follows from them alone lives here: which channels each group sees (Eq. 1-2), the masks
of Eq. 4 and the parameter counts of the layer and of the plain convolution it replaces. The
layer itself (:mod:`seqlite.layers`) and its fast kernel (:mod:`seqlite.fast`) both read a spec;
neither needs the other to know a layer's shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from .checks import boolean, positive_int

__all__ = ["SeqConvSpec", "group_views", "plain_conv_param_count", "seqconv_param_count", "window_mask"]


@dataclass(frozen=True)
class SeqConvSpec:
    """The shape of one SeqConv layer: the six numbers that define it (paper 3.1-3.2).

    Args:
        in_channels: channels of the input ``x_0``.
        out_channels: channels of the output ``[x_1, ..., x_g]``; a multiple of ``k``.
        k: channels each group produces (the growth rate); ``g = out_channels / k``.
        window: ``None`` for dense aggregation (Eq. 1); ``w`` to let every group see only
            the most recent ``w`` channels of ``[x_0, ..., x_{i-1}]`` (Eq. 2). The paper's
            WSeqConv is ``window=in_channels``.
        bottleneck: the bottleneck transform (SeqConv-B) instead of Conv3x3-BN-ReLU.
        subgroups: cardinality ``c`` of the bottleneck's 3x3 conv (SeqResNeXt).

    Validated once, when made: a ``ValueError`` names the parameter and the rule it
    breaks. Integers may be any integer type (``numpy.int64`` included) and are stored
    as ``int``; ``bottleneck`` must be ``True`` or ``False``.
    """

    in_channels: int
    out_channels: int
    k: int
    window: int | None = None
    bottleneck: bool = False
    subgroups: int = 1

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "k", "subgroups"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        if self.window is not None:
            object.__setattr__(self, "window", positive_int("window", self.window))
        boolean("bottleneck", self.bottleneck)  # "no" is truthy: refuse rather than guess
        if self.out_channels % self.k:
            raise ValueError(
                f"out_channels must be divisible by k (g = out_channels / k groups); "
                f"got out_channels={self.out_channels}, k={self.k}"
            )
        if self.k % self.subgroups:
            raise ValueError(
                f"subgroups must divide k (each group's 3x3 conv is split into "
                f"`subgroups` parts); got k={self.k}, subgroups={self.subgroups}"
            )
        if self.subgroups > 1 and not self.bottleneck:
            raise ValueError(
                "subgroups > 1 needs bottleneck=True: the paper's cardinality splits the "
                f"3x3 conv of the bottleneck transform; got subgroups={self.subgroups}"
            )

    @classmethod
    def of(cls, layer_or_config: Any) -> SeqConvSpec:
        """The spec of a layer (anything with a ``spec``, as :class:`~seqlite.layers.SeqConv2d`), a spec, or a
        mapping of its arguments (``in_channels``, ``out_channels``, ``k`` and optionally the other three)."""
        spec = getattr(layer_or_config, "spec", layer_or_config)
        if isinstance(spec, SeqConvSpec):
            return spec
        if isinstance(spec, Mapping):
            allowed = {f.name for f in dataclasses.fields(cls)}
            unknown, missing = set(spec) - allowed, {"in_channels", "out_channels", "k"} - set(spec)
            if unknown or missing:
                raise ValueError(
                    f"layer_or_config must be a SeqConv2d or a mapping with keys in_channels, out_channels, k and "
                    f"optionally window, bottleneck, subgroups; missing {sorted(missing)}, unknown {sorted(unknown)}"
                )
            return cls(**spec)
        raise ValueError("layer_or_config must be a SeqConv2d, a SeqConvSpec or a mapping of its arguments, "
                         f"got {type(layer_or_config).__name__}")

    @property
    def groups(self) -> int:
        """``g = out_channels / k``, the number of groups (transforms ``F_i``)."""
        return self.out_channels // self.k

    @cached_property
    def views(self) -> tuple[tuple[int, int], ...]:
        """Channel range ``(start, stop)`` of ``[x_0, x_1, ..., x_{g-1}]`` each group sees.

        Group ``i`` (1-based in the paper, index ``i - 1`` here) sees channels
        ``[in + (i-1)k - w, in + (i-1)k)`` of the concatenation (Eq. 2), clipped at 0:
        a group with fewer than ``w`` channels before it sees all of them, which is
        dense aggregation (Eq. 1). ``window=None`` is dense.
        """
        views = []
        for i in range(self.groups):
            stop = self.in_channels + i * self.k
            start = 0 if self.window is None else max(0, stop - self.window)
            views.append((start, stop))
        return tuple(views)

    def mask(self) -> Tensor:
        """The masks ``omega_i`` of Eq. 4 stacked as a ``(g, in + out - k)`` 0/1 matrix.

        Row ``i`` is the mask over the dense input ``[x_0, x_1, ..., x_{g-1}]`` of group
        ``i + 1``: 1 on the channels inside its window, 0 elsewhere, including channels
        that do not exist yet for that group (they are later groups' outputs).
        """
        mask = torch.zeros(self.groups, self.in_channels + self.out_channels - self.k)
        for i, (start, stop) in enumerate(self.views):
            mask[i, start:stop] = 1.0
        return mask

    def param_count(self) -> int:
        """Closed-form number of parameters of the layer (BN affine included).

        Basic group ``i`` with a view of ``v_i`` channels: ``9 v_i k`` conv weights and
        ``2k`` BN parameters. Bottleneck: ``v_i k`` (1x1) ``+ 9 k^2 / c`` (3x3 with ``c``
        subgroups) ``+ 4k``. Dense views grow by ``k`` per group, so the total grows
        quadratically with the width; a window keeps it linear (paper 3.1).
        """
        views = sum(stop - start for start, stop in self.views)
        k, g = self.k, self.groups
        if self.bottleneck:
            return views * k + g * (9 * k * k // self.subgroups + 4 * k)
        return 9 * views * k + g * 2 * k


def group_views(
    in_channels: int, out_channels: int, k: int, window: int | None = None
) -> list[tuple[int, int]]:
    """:attr:`SeqConvSpec.views` of ``SeqConvSpec(in_channels, out_channels, k, window)``, as a list."""
    return list(SeqConvSpec(in_channels, out_channels, k, window).views)


def window_mask(in_channels: int, out_channels: int, k: int, window: int | None = None) -> Tensor:
    """:meth:`SeqConvSpec.mask` (Eq. 4) of ``SeqConvSpec(in_channels, out_channels, k, window)``."""
    return SeqConvSpec(in_channels, out_channels, k, window).mask()


def seqconv_param_count(
    in_channels: int,
    out_channels: int,
    k: int,
    window: int | None = None,
    bottleneck: bool = False,
    subgroups: int = 1,
) -> int:
    """:meth:`SeqConvSpec.param_count`: parameters of one :class:`~seqlite.layers.SeqConv2d`, closed form."""
    return SeqConvSpec(in_channels, out_channels, k, window, bottleneck, subgroups).param_count()


def plain_conv_param_count(in_channels: int, out_channels: int, kernel_size: int = 3) -> int:
    """Parameters of a plain ``Conv(kxk, no bias) -> BN`` from ``in`` to ``out`` channels.

    The wide layer a SeqConv replaces (Fig. 1 left; :class:`seqlite.twin.PlainConv2d`),
    counted like :func:`seqconv_param_count` (BN affine included): ``k^2 in out + 2 out``.
    """
    in_channels, out_channels = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
    kernel_size = positive_int("kernel_size", kernel_size)
    return kernel_size * kernel_size * in_channels * out_channels + 2 * out_channels
