"""Residual and down-sampling blocks built from SeqConv layers (paper 3.2, Fig. 2-3).

Blocks pass a pair ``(raw, activated)`` along (:class:`~seqlite.layers.SeqConvOutput`):
``raw`` is the residual stream of pre-activation ResNets, ``activated`` the features
the next SeqConv reads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import SeqConv2d, SeqConvOutput

__all__ = ["DownsamplingBlock", "ResidualBlock", "init_weights"]


class ResidualBlock(nn.Module):
    """Two WSeqConv layers ``C -> C`` with the shortcut inside the second (Fig. 2).

    Layer A reads the activated features. Layer B reads A's output and adds the
    matching ``k``-channel slice of the residual stream to each group's raw conv
    output before its BN, so each group of B already sees the updated stream of the
    groups before it. Layer B's 3x3 convolutions start at zero (paper 4.2,
    :meth:`zero_init_last`): initialised by :func:`init_weights` (as every network of
    seqlite is when it is built), a new block passes the residual stream through
    unchanged. ``windowed=False`` makes both layers dense (Table 5, S2).
    """

    def __init__(
        self,
        channels: int,
        k: int,
        *,
        windowed: bool = True,
        bottleneck: bool = False,
        subgroups: int = 1,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        # WSeqConv (window = C) as in the paper; windowed=False gives dense layers (Table 5, S2).
        window = channels if windowed else None
        options = dict(window=window, bottleneck=bottleneck, subgroups=subgroups, drop_rate=drop_rate)
        self.layer_a = SeqConv2d(channels, channels, k, **options)
        self.layer_b = SeqConv2d(channels, channels, k, **options)

    def zero_init_last(self) -> None:
        """Zero layer B's 3x3 convolutions (paper 4.2): the block starts as the identity of its stream."""
        for transform in self.layer_b.transforms:
            nn.init.zeros_(transform.conv3x3.weight)

    def forward(self, x: SeqConvOutput) -> SeqConvOutput:
        raw, activated = x
        return self.layer_b.forward_residual(self.layer_a(activated), shortcut=raw)


class DownsamplingBlock(nn.Module):
    """Extension WSeqConv, concatenation, grouped strided 3x3 downsizing (Fig. 3).

    The extension layer (``C -> C_out - C``, window ``C``) widens the activated
    features to ``C_out``; a 3x3 convolution of stride 2 with ``C_out / k_next * c_next``
    groups halves the resolution. Its groups line up with the feature groups, so
    features of different groups never mix (the hierarchy the next WSeqConv reads is
    kept). With ``in_channels == out_channels`` there is no extension (the ImageNet stem).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        k: int,
        *,
        k_next: int | None = None,
        subgroups: int = 1,
        subgroups_next: int | None = None,
        bottleneck: bool = False,
        windowed: bool = True,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        k_next = k if k_next is None else k_next
        subgroups_next = subgroups if subgroups_next is None else subgroups_next
        if out_channels < in_channels:
            raise ValueError(
                f"out_channels must be >= in_channels for a down-sampling block; "
                f"got in_channels={in_channels}, out_channels={out_channels}"
            )
        if out_channels % k_next:
            raise ValueError(
                f"out_channels must be divisible by k_next (downsizing groups = out / k_next); "
                f"got out_channels={out_channels}, k_next={k_next}"
            )
        self.extension = (
            SeqConv2d(
                in_channels,
                out_channels - in_channels,
                k,
                window=in_channels if windowed else None,
                bottleneck=bottleneck,
                subgroups=subgroups,
                drop_rate=drop_rate,
            )
            if out_channels > in_channels
            else None
        )
        self.downsize_groups = out_channels // k_next * subgroups_next
        self.downsize = nn.Conv2d(
            out_channels, out_channels, 3, stride=2, padding=1, groups=self.downsize_groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: SeqConvOutput | Tensor) -> SeqConvOutput:
        """Takes the previous ``(raw, activated)`` pair (only ``activated`` is read) or a tensor."""
        activated = x.activated if isinstance(x, SeqConvOutput) else x
        if self.extension is not None:
            activated = torch.cat([activated, self.extension(activated)], 1)
        raw = self.downsize(activated)
        return SeqConvOutput(raw, torch.relu(self.bn(raw)))


def init_weights(module: nn.Module) -> nn.Module:
    """The paper's initialisation (4.2) of ``module`` and everything in it; returns ``module``.

    He/MSRA (fan-out) convolutions, Xavier fully connected layers with zero bias, BN weight 1
    and bias 0; then every residual block's :meth:`~ResidualBlock.zero_init_last` (layer B's
    3x3 convolutions at zero), as timm's ``ResNet.init_weights`` does. The networks call it
    once, when they are built; blocks and layers built on their own start with PyTorch's
    default initialisation until it is called.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if hasattr(m, "zero_init_last"):
            m.zero_init_last()
    return module
