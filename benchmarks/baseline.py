"""The straightforward per-group SeqConv: the baseline and reference of the fast path.

This is the loop :class:`seqlite.layers.SeqConv2d` used before it got its fast path
(commit 17a1672): for each group, concatenate its view, apply ``Dropout2d``, run the
group transform, add the shortcut slice, BN, ReLU (Eq. 1-2, Fig. 2). Autograd keeps
every group's concatenated view for backward, so a dense layer's activation memory
grows quadratically with the number of groups.

It shares the parameters (and their names) of :class:`~seqlite.layers.SeqConv2d`:
:func:`use_baseline` switches the layers of a built model to this loop, so benchmarks
and tests compare the two implementations on the same weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqlite.layers import SeqConv2d, SeqConvOutput, seqconv_as_written

__all__ = ["BaselineSeqConv2d", "PlainConvStandIn", "use_baseline", "use_fast", "use_plain_conv"]


class BaselineSeqConv2d(SeqConv2d):
    """:class:`~seqlite.layers.SeqConv2d` computed group by group, as the paper writes it."""

    def forward_residual(self, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
        return seqconv_as_written(self, x, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_residual(x).activated


def use_baseline(model: nn.Module) -> nn.Module:
    """Switch every :class:`SeqConv2d` in ``model`` (in place) to the per-group loop."""
    for m in model.modules():
        if type(m) is SeqConv2d:
            m.__class__ = BaselineSeqConv2d
    return model


def use_fast(model: nn.Module) -> nn.Module:
    """Undo :func:`use_baseline`: every layer back to the default (fast) SeqConv2d."""
    for m in model.modules():
        if type(m) is BaselineSeqConv2d:
            m.__class__ = SeqConv2d
    return model


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
