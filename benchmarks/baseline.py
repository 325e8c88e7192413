"""The plain-convolution stand-in: the physical reference of the benchmarks.

The per-group loop the fast path is compared with is no longer here: it is
:meth:`seqlite.SeqConv2d.forward_residual` itself, selected with
``seqlite.set_fast(model, False)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqlite.layers import SeqConv2d, SeqConvOutput

__all__ = ["PlainConvStandIn", "use_plain_conv"]


class PlainConvStandIn(SeqConv2d):
    """The physical reference: one ``Conv2d(in, out, 3) + BN + ReLU`` where the SeqConv layer was.

    Not a SeqConv at all; a network switched to it is the plain network of the same
    widths, the time no implementation of the SeqConv layers is expected to beat
    (issue 5: "the physical reference is 1.0x"). Basic layers only.
    """

    def forward_residual(self, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
        raw = self.plain_conv(x)
        if shortcut is not None:
            raw = raw + shortcut
        return SeqConvOutput(raw, torch.relu(self.plain_bn(raw)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.plain_bn(self.plain_conv(x)))


def use_plain_conv(model: nn.Module) -> nn.Module:
    """Replace (in place) every basic :class:`SeqConv2d` of ``model`` by :class:`PlainConvStandIn`."""
    for m in list(model.modules()):
        if type(m) is SeqConv2d:
            if m.bottleneck:
                raise ValueError("use_plain_conv stands in for basic SeqConv layers only (bottleneck=False)")
            weight = m.transforms[0].conv3x3.weight
            m.plain_conv = nn.Conv2d(m.in_channels, m.out_channels, 3, padding=1, bias=False).to(weight)
            m.plain_bn = nn.BatchNorm2d(m.out_channels).to(weight)
            m.__class__ = PlainConvStandIn
    return model
