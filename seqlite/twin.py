"""The plain twin of a SeqConv network: the fair baseline of every comparison.

SeqConv is a drop-in replacement of a regular wide convolutional layer (paper 1, 3.1,
Fig. 1 left vs. middle). :func:`plain_twin` undoes the drop-in: it copies a network and puts
back, in place of every SeqConv layer, the regular layer it stands for, a
``Conv2d(in, out, 3) -> BN -> ReLU`` of the same widths (:class:`PlainConv2d`). Everything
else, weights included, is the original network's, so a twin and its model differ only in
the layers being compared.

Parameter and multiply-accumulate difference per replaced layer (``in -> out`` on an
``H x W`` map, group views ``v_i`` of :func:`~seqlite.layers.group_views`, ``g = out / k``):

==========================  ===================================  =======================
layer                       parameters                           MACs
==========================  ===================================  =======================
plain twin                  ``9 in out + 2 out``                 ``9 in out H W``
SeqConv (basic)             ``9 k sum(v_i) + 2 out``             ``9 k sum(v_i) H W``
SeqConv-B (bottleneck)      ``k sum(v_i) + g (9 k^2 / c + 4k)``  ``(k sum(v_i) + g 9 k^2 / c) H W``
==========================  ===================================  =======================

A WSeqConv with ``window = in`` has ``v_i = in`` for every group, so ``k sum(v_i) = in out``:
its twin has exactly its parameters and MACs (paper 3.1: "reduced to the same as of a
regular convolutional layer"). A dense layer (Eq. 1) has ``sum(v_i) = g in + k g (g - 1) / 2``,
more than its twin; a bottleneck layer usually has fewer. BN is not counted as MACs
(:func:`seqlite.count_flops` counts convolutions and matrix products).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .blocks import ResidualBlock
from .checks import positive_int, probability
from .layers import HadamardSeqConv2d, SeqConv2d, SeqConvOutput
from .spec import plain_conv_param_count

__all__ = ["PlainConv2d", "plain_conv_param_count", "plain_twin"]


class PlainConv2d(nn.Module):
    """``Dropout2d -> Conv2d(in, out, 3, padding=1, bias=False) -> BN -> ReLU``: a regular wide layer.

    It has the calling conventions of :class:`~seqlite.layers.SeqConv2d`, so it fits
    wherever one did: calling it returns the activated output; :meth:`forward_residual`
    returns ``(raw, activated)`` and adds a shortcut to the raw convolution output before BN,
    the pre-activation identity mapping of the residual block (Fig. 2), which the SeqConv
    layer adds group by group at the same place. ``drop_rate`` is the SeqConv layer's channel
    dropout (rate from paper 4.2; channel-wise is seqlite's choice), drawn once on the input
    instead of once per group view.
    """

    def __init__(self, in_channels: int, out_channels: int, *, drop_rate: float = 0.0):
        super().__init__()
        in_channels, out_channels = positive_int("in_channels", in_channels), positive_int("out_channels", out_channels)
        drop_rate = probability("drop_rate", drop_rate)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.drop_rate = drop_rate
        self.dropout = nn.Dropout2d(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        # The paper's initialisation (4.2), as seqlite.blocks.init_weights gives the SeqConv layers.
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def extra_repr(self) -> str:
        drop = f", drop_rate={self.drop_rate}" if self.drop_rate else ""
        return f"{self.in_channels}, {self.out_channels}{drop}"

    def forward_residual(self, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
        raw = self.conv(self.dropout(x))
        if shortcut is not None:
            raw = raw + shortcut
        return SeqConvOutput(raw, torch.relu(self.bn(raw)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(self.dropout(x))))


def _twin_layer(layer: SeqConv2d | HadamardSeqConv2d, zero_init: bool) -> PlainConv2d:
    seq = layer.dense if isinstance(layer, HadamardSeqConv2d) else layer
    plain = PlainConv2d(seq.in_channels, seq.out_channels, drop_rate=seq.drop_rate)
    if zero_init:
        nn.init.zeros_(plain.conv.weight)
    weight = next(seq.parameters())
    return plain.to(device=weight.device, dtype=weight.dtype)


def _replace(module: nn.Module) -> int:
    replaced = 0
    for name, child in module.named_children():
        if isinstance(child, (SeqConv2d, HadamardSeqConv2d)):
            # Layer B of a residual block starts at zero so the block starts as the identity
            # (paper 4.2); the twin keeps that, or it would be a differently initialised network.
            zero_init = isinstance(module, ResidualBlock) and name == "layer_b"
            setattr(module, name, _twin_layer(child, zero_init))
            replaced += 1
        else:
            replaced += _replace(child)
    return replaced


def plain_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every SeqConv layer replaced by a regular layer of the same widths.

    Every :class:`~seqlite.layers.SeqConv2d` (windowed or dense, basic or bottleneck) becomes a
    :class:`PlainConv2d` ``in -> out`` (Conv3x3-BN-ReLU, with the layer's dropout rate), newly
    initialised as the paper initialises its convolutions (He, fan-out; the second layer of
    each residual block at zero, paper 4.2). All other modules are copies of ``model``'s, with
    their weights, so the two networks start alike everywhere else. ``model`` is not changed.
    The parameter and MAC difference is in the module docstring: none for the paper's
    WSeqConv (``window = in``), more for the twin of a bottleneck layer, less for a dense one.

    Raises ``ValueError`` when ``model`` has no SeqConv layer (its twin would be itself).

    >>> from seqlite import count_params, create_model, seqconv_param_count
    >>> model = create_model("seqresnet_k8_r4_n1")  # all WSeqConv but the first layer, dense 16 -> 64
    >>> count_params(model) - count_params(plain_twin(model))
    16128
    >>> seqconv_param_count(16, 64, 8) - plain_conv_param_count(16, 64)
    16128
    """
    if isinstance(model, (SeqConv2d, HadamardSeqConv2d)):
        return _twin_layer(model, zero_init=False)
    twin = copy.deepcopy(model)
    if _replace(twin) == 0:
        raise ValueError(
            f"model must contain SeqConv2d layers to replace; {type(model).__name__} has none"
        )
    return twin
