"""The models under ``torch.compile`` and ``torch.export`` on CPU.

A tiny network (k=8, r=1, n=1, 8x8 input) keeps the compile time down; the fast SeqConv
path (Python loops over a fixed plan, ``split``/``cat``) must trace without graph breaks
changing the numbers. ``backend="aot_eager"`` traces forward and backward as Inductor
would, without generating code (seconds instead of minutes on a CPU).
"""

from __future__ import annotations

import copy

import pytest
import torch

from seqlite._compat import COMPILED_CHECKPOINT_KEEPS_BATCHNORM
from seqlite.seqresnet import seqresnet_cifar


def _model(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = seqresnet_cifar(**{"k": 8, "r": 1, "n": 1, "num_classes": 5, **kwargs})
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


@pytest.mark.slow
def test_torch_compile_with_grad_checkpointing_matches_eager():
    """Gradient checkpointing under ``torch.compile``: outputs, gradients and BatchNorm buffers
    of two SGD steps equal eager mode's, and the checkpointed regions are in the traced graph."""
    from torch._dynamo.backends.debugging import aot_eager  # the backend behind backend="aot_eager"

    # One residual block and both down-sampling blocks: every kind of checkpointed segment.
    eager = _model(k=4, n=(1, 0, 0), drop_rate=0.0).double().train()  # compiled dropout draws other masks
    eager.set_grad_checkpointing()
    model = copy.deepcopy(eager)
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return aot_eager(graph_module, example_inputs)

    compiled = torch.compile(model, backend=backend, fullgraph=True)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    for net, run in ((eager, eager), (model, compiled)):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        net.outputs = []
        for _ in range(2):  # the second step's forward sees the first step's statistics and weights
            optimizer.zero_grad()
            out = run(x)
            out.logsumexp(1).sum().backward()
            net.outputs.append(out.detach())
            net.grads = {n: p.grad.clone() for n, p in net.named_parameters()}
            optimizer.step()
    for out, expected in zip(model.outputs, eager.outputs):
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-10)
    for name, grad in model.grads.items():
        torch.testing.assert_close(grad, eager.grads[name], rtol=1e-9, atol=1e-10, msg=name)
    buffers = dict(eager.named_buffers())
    for name, buffer in model.named_buffers():  # statistics updated once per step, not again in backward
        torch.testing.assert_close(buffer, buffers[name], rtol=1e-12, atol=1e-12, msg=name)
    assert int(buffers["seqconv1.transforms.0.bn.num_batches_tracked"]) == 2
    regions = [n for g in graphs for n in g.graph.nodes if n.target is torch.ops.higher_order.tag_activation_checkpoint]
    # stem + first SeqConv, the residual block, two down-sampling blocks; none where torch would update
    # BatchNorm statistics twice (torch < 2.9, seqlite._compat): there the blocks run without checkpointing.
    assert len(regions) == (4 if COMPILED_CHECKPOINT_KEEPS_BATCHNORM else 0)
