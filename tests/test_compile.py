"""The models under ``torch.compile`` and ``torch.export`` on CPU (issue 2 and issue 5).

A tiny network (k=8, r=1, n=1, 8x8 input) keeps the compile time down; the fast SeqConv
path (Python loops over a fixed plan, ``split``/``cat``) must trace without graph breaks
changing the numbers.
"""

from __future__ import annotations

import pytest
import torch

from seqlite.seqresnet import seqresnet_cifar


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = seqresnet_cifar(k=8, r=1, n=1, num_classes=5)
    for block in model.modules():  # zero-initialised convs would make half the network trivially equal
        if hasattr(block, "layer_b"):
            for t in block.layer_b.transforms:
                torch.nn.init.normal_(t.conv3x3.weight, std=0.1)
    return model


@pytest.mark.slow
def test_torch_compile_matches_eager():
    model = _model().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model)
        torch.testing.assert_close(compiled(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_training_step_matches_eager():
    """Forward and backward traced (dropout off: compiled RNG differs from eager RNG)."""
    model = seqresnet_cifar(k=8, r=1, n=1, num_classes=5, drop_rate=0.0)
    x = torch.randn(2, 3, 8, 8)
    model(x).logsumexp(1).sum().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    compiled = torch.compile(model, backend="aot_eager")
    compiled(x).logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_torch_export_matches_eager():
    model = _model().eval()
    x = torch.randn(2, 3, 8, 8)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-4, atol=1e-5)
        other = torch.randn(2, 3, 8, 8)  # the exported graph is not specialised to one input's values
        torch.testing.assert_close(exported.module()(other), model(other), rtol=1e-4, atol=1e-5)
