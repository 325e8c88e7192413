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

from seqlite.layers import SeqConv2d, SeqConvOutput

__all__ = ["BaselineSeqConv2d", "use_baseline", "use_fast"]


def _channel_slice(features: list[Tensor], start: int, stop: int) -> Tensor:
    """Channels ``[start, stop)`` of ``torch.cat(features, 1)``, touching only the parts needed."""
    parts, offset = [], 0
    for f in features:
        width = f.shape[1]
        lo, hi = max(start, offset), min(stop, offset + width)
        if lo < hi:
            parts.append(f if (lo, hi) == (offset, offset + width) else f[:, lo - offset : hi - offset])
        offset += width
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


class BaselineSeqConv2d(SeqConv2d):
    """:class:`~seqlite.layers.SeqConv2d` computed group by group, as the paper writes it."""

    def forward_residual(self, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
        self._check_input(x, shortcut)
        dropout = nn.functional.dropout2d if self.training and self.drop_rate > 0 else None
        features = [x]  # [x_0, activated x_1, ...]; concatenated lazily per view
        raws = []
        for i, (transform, (start, stop)) in enumerate(zip(self.transforms, self.views)):
            view = _channel_slice(features, start, stop)
            if dropout is not None:
                view = dropout(view, self.drop_rate, True)
            raw = transform.conv(view)
            if shortcut is not None:
                raw = raw + shortcut[:, i * self.k : (i + 1) * self.k]
            raws.append(raw)
            features.append(torch.relu(transform.bn(raw)))
        return SeqConvOutput(torch.cat(raws, 1), torch.cat(features[1:], 1))

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
