"""The fast SeqConv2d (``layer.fast``, seqlite.fast) against its per-group loop (``fast=False``).

Everything in float64, outputs and gradients (input, shortcut, every parameter), BN
running statistics and dropout masks, so any reordering of the sums that changed the
numbers beyond rounding would show. (The mask-form check of both paths is in test_layers.py.)
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from seqlite import fast
from seqlite.layers import SeqConv2d, SeqConvSpec, set_fast
from seqlite.seqresnet import seqresnet_cifar


def _fast_kernel(layer: SeqConv2d, x: torch.Tensor, shortcut: torch.Tensor | None, plan: fast.Plan):
    """The fast kernel on ``layer``'s shape, transforms and dropout, with ``plan``."""
    dropout = layer.dropout if layer.training and layer.drop_rate > 0 else None
    return fast.seqconv_forward(layer.spec, layer.transforms, x, shortcut, plan=plan, dropout=dropout)


def _run(
    layer: SeqConv2d, x: torch.Tensor, shortcut: torch.Tensor | None, seed: int = 0, plan: fast.Plan | None = None
):
    """Outputs, then gradients of a random loss of both outputs w.r.t. input, shortcut, parameters.

    ``plan``: run the fast kernel with this plan instead of the layer's own.
    """
    x = x.detach().clone().requires_grad_()
    shortcut = None if shortcut is None else shortcut.detach().clone().requires_grad_()
    layer.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the dropout masks, when there are any
    out = layer.forward_residual(x, shortcut) if plan is None else _fast_kernel(layer, x, shortcut, plan)
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in out]
    sum((o * w).sum() for o, w in zip(out, weights)).backward()
    grads = {"input": x.grad}
    if shortcut is not None:
        grads["shortcut"] = shortcut.grad
    grads.update({name: p.grad for name, p in layer.named_parameters()})
    return out, grads


def _assert_same_as_written(
    layer: SeqConv2d, x: torch.Tensor, shortcut: torch.Tensor | None, plan: fast.Plan | None = None
) -> None:
    """``layer`` (fast) and a copy of it switched to the per-group loop give the same numbers."""
    assert layer.fast
    baseline = set_fast(copy.deepcopy(layer), False)
    (raw, act), grads = _run(layer, x, shortcut, plan=plan)
    (raw_ref, act_ref), grads_ref = _run(baseline, x, shortcut)
    torch.testing.assert_close(raw, raw_ref)
    torch.testing.assert_close(act, act_ref)
    assert grads.keys() == grads_ref.keys()
    for name in grads:
        assert grads[name] is not None, name
        torch.testing.assert_close(grads[name], grads_ref[name], msg=lambda m, n=name: f"{n}: {m}")
    # Training-mode BN statistics are updated identically.
    for (name, b), b_ref in zip(layer.named_buffers(), baseline.buffers()):
        torch.testing.assert_close(b, b_ref, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("with_shortcut", [True, False], ids=["shortcut", "plain"])
def test_fast_path_equals_per_group_loop(layer_config, with_shortcut, train, randomised):
    torch.manual_seed(0)
    spec = layer_config
    layer = randomised(SeqConv2d.from_spec(spec, drop_rate=0.3).double())
    layer.train(train)
    x = torch.randn(3, spec.in_channels, 5, 6, dtype=torch.float64)
    shortcut = torch.randn(3, spec.out_channels, 5, 6, dtype=torch.float64) if with_shortcut else None
    _assert_same_as_written(layer, x, shortcut)


def test_forward_without_raw_equals_forward_residual(layer_config, randomised):
    """``layer(x)`` skips the raw outputs on the fast path: still the loop's activated output and gradients."""
    torch.manual_seed(1)
    layer = randomised(SeqConv2d.from_spec(layer_config).double()).train()
    baseline = set_fast(copy.deepcopy(layer), False)
    x = torch.randn(2, layer_config.in_channels, 4, 5, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, out_ref = layer(x), baseline(x_ref)
    torch.testing.assert_close(out, out_ref)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (out_ref * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    for (name, p), p_ref in zip(layer.named_parameters(), baseline.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, msg=lambda m, n=name: f"{n}: {m}")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cin=st.integers(1, 12),
    k=st.sampled_from([1, 2, 3, 4]),
    g=st.integers(1, 9),
    window=st.one_of(st.none(), st.integers(1, 20)),
    bottleneck=st.booleans(),
    block=st.integers(1, 5),
    chunks=st.integers(1, 6),
    with_shortcut=st.booleans(),
    train=st.booleans(),
)
def test_any_plan_equals_per_group_loop(
    cin, k, g, window, bottleneck, block, chunks, with_shortcut, train, randomised
):
    """Whatever the block size and x_0 chunking, the reordered sums give the loop's numbers."""
    torch.manual_seed(2)
    spec = SeqConvSpec(cin, g * k, k, window, bottleneck)
    layer = randomised(SeqConv2d.from_spec(spec, drop_rate=0.25).double()).train(train)
    x = torch.randn(2, cin, 4, 3, dtype=torch.float64)
    shortcut = torch.randn(2, g * k, 4, 3, dtype=torch.float64) if with_shortcut else None
    _assert_same_as_written(layer, x, shortcut, plan=fast.make_plan(spec, block=block, x0_chunks=chunks))


@settings(max_examples=200, deadline=None)
@given(
    cin=st.integers(1, 40),
    k=st.integers(1, 8),
    g=st.integers(1, 30),
    window=st.one_of(st.none(), st.integers(1, 80)),
    block=st.one_of(st.none(), st.integers(1, 8)),
    chunks=st.one_of(st.none(), st.integers(1, 10)),
)
def test_plan_covers_every_view_channel_once(cin, k, g, window, block, chunks):
    """Each (group, channel of its view) pair is summed by exactly one convolution of the plan."""
    spec = SeqConvSpec(cin, g * k, k, window)
    plan = fast.make_plan(spec, block=block, x0_chunks=chunks)
    covered = [[0] * (cin + g * k) for _ in range(g)]
    sources = [p for p in plan.x0_pushes + plan.block_pushes if p is not None and p[1] is not None]
    for (a, b), (t0, t1) in sources:
        for i in range(t0, t1):
            for c in range(a, b):
                covered[i][c] += 1
    for i, (lo, hi) in enumerate(plan.intra):
        for c in range(lo, hi):
            covered[i][c] += 1
    for i, (start, stop) in enumerate(spec.views):
        for c, n in enumerate(covered[i]):
            # A push may cover channels outside a target's view (its weights there are 0),
            # but never a view channel twice or not at all.
            if start <= c < stop:
                assert n == 1, (i, c, n)
            else:
                assert n <= 1
    # Pushes only feed groups after their source: nothing reads a group not yet computed.
    for (_, g1), push in zip(plan.blocks, plan.block_pushes):
        assert push is None or push[1][0] >= g1


@pytest.mark.parametrize("bottleneck", [False, True])
@pytest.mark.parametrize("window", [None, 12])
def test_dropout_draws_what_the_per_group_loop_draws(window, bottleneck, randomised):
    """Same seed, same masks: each group's view has its own Dropout2d mask, as in the loop.

    The fast path draws every group's mask with the same Dropout2d call (same shape, same
    order) as the loop before any other random number, so with one seed the two must agree
    exactly; a fast path sharing one mask between groups would not.
    """
    torch.manual_seed(3)
    layer = randomised(SeqConv2d(12, 24, 4, window=window, bottleneck=bottleneck, drop_rate=0.4).double())
    x = torch.randn(4, 12, 5, 5, dtype=torch.float64)
    _assert_same_as_written(layer, x, torch.randn(4, 24, 5, 5, dtype=torch.float64))


def test_dropout_masks_differ_between_groups_and_keep_the_rate():
    """Statistically: masks are independent per group view and keep 1 - p of the channels."""
    torch.manual_seed(4)
    layer = SeqConv2d(16, 64, 8, window=16, drop_rate=0.25)
    masks = fast.dropout_masks(layer.spec, layer.dropout, torch.zeros(2000, 16, 1, 1))  # (N, g, in + out - k)
    x0_part = masks[:, :, :16]  # every group sees x_0 channels 8i..16: group 0 and 1 share 8..16
    kept = (x0_part[:, 1, 8:] > 0).float().mean()
    assert abs(kept.item() - 0.75) < 0.02
    same = (x0_part[:, 0, 8:] > 0) == (x0_part[:, 1, 8:] > 0)
    # Independent masks agree with probability 0.75^2 + 0.25^2 = 0.625; shared ones always.
    assert abs(same.float().mean().item() - 0.625) < 0.02
    values = masks.unique()
    assert len(values) == 2 and values[0] == 0 and torch.isclose(values[1], torch.tensor(1 / 0.75))


def _saved_bytes(layer: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for backward (the activation memory)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.requires_grad and t.grad_fn is None:  # parameters and the input are not activations
            return t
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(storages.values())


@pytest.mark.parametrize("bottleneck", [False, True])
def test_dense_activation_memory_grows_linearly_with_groups(bottleneck):
    """Dense layer, 32 and 64 groups: the memory kept for backward doubles (the loop's ~quadruples).

    Activation memory is what grows with the batch: saved bytes at batch 2 minus batch 1
    (the stacked weights the convolutions keep do not depend on the batch).
    """
    saved = {}
    for g in (32, 64):
        layer_fast = SeqConv2d(8, 4 * g, 4, bottleneck=bottleneck)
        loop = set_fast(copy.deepcopy(layer_fast), False)
        for name, layer in (("fast", layer_fast), ("baseline", loop)):
            batch4, batch2 = (_saved_bytes(layer, torch.randn(n, 8, 4, 4, requires_grad=True)) for n in (2, 1))
            saved[name, g] = batch4 - batch2
    assert saved["fast", 64] / saved["fast", 32] < 2.2
    # The check can fail: the per-group loop keeps every concatenated view.
    assert saved["baseline", 64] / saved["baseline", 32] > 3.0
    assert saved["fast", 64] < saved["baseline", 64] / 4


def test_seqresnet_fast_equals_per_group_loop_with_dropout():
    """A whole network (train mode, dropout on): same loss, same gradient for every parameter."""
    torch.manual_seed(5)
    model = seqresnet_cifar(k=4, r=1, n=1, num_classes=5, drop_rate=0.2).double()
    for block in model.modules():  # the zero-initialised convs would hide half of the gradients
        if hasattr(block, "layer_b"):
            for t in block.layer_b.transforms:
                nn.init.normal_(t.conv3x3.weight, std=0.1)
    baseline = set_fast(copy.deepcopy(model), False)
    layers = [m for m in baseline.modules() if isinstance(m, SeqConv2d)]
    assert layers and not any(m.fast for m in layers)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    losses, grads = [], []
    for net in (model, baseline):
        torch.manual_seed(6)
        loss = net(x).logsumexp(1).sum()
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad for n, p in net.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1])
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], msg=lambda m, n=name: f"{n}: {m}")


def test_channels_last_input_gives_the_same_numbers(randomised):
    torch.manual_seed(7)
    layer = randomised(SeqConv2d(16, 32, 4, window=16).double())
    x = torch.randn(2, 16, 6, 6, dtype=torch.float64)
    expected = layer(x)
    torch.testing.assert_close(layer(x.to(memory_format=torch.channels_last)), expected)
