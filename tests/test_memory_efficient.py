"""Gradient checkpointing of SeqResNet (the memory-efficient mode): recomputation in backward,
the same numbers, far less kept; eager and under ``torch.compile``."""

from __future__ import annotations

import copy

import pytest
import torch

from benchmarks.memory import LiveStorages  # the repository root is on sys.path
from seqlite import create_model, seqresnet_cifar, seqresnet_imagenet


def _small_models():
    yield "cifar bottleneck, dropout", seqresnet_cifar(k=4, r=1, n=(1, 2, 1), bottleneck=True, drop_rate=0.2), 16
    yield "cifar basic, dense", seqresnet_cifar(k=4, r=1, n=1, windowed=False, drop_rate=0.2), 16
    # ImageNet template: two stem convs, dense SeqConv-B, stem downsizing, subgroups.
    yield "imagenet template", seqresnet_imagenet((16, 32, 32, 64), (4, 8, 8, 8), (1, 1, 2, 1), (1, 2, 2, 4),
                                                  num_classes=7, drop_rate=0.1), 64


def _train_steps(model, x, y, steps=2):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(1)
    outputs = []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        outputs.append(out.detach())
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        optimizer.step()
    return outputs, grads


@pytest.mark.parametrize("case", list(range(3)), ids=[name for name, _, _ in _small_models()])
def test_memory_efficient_training_gives_the_same_numbers(case):
    _, model, size = list(_small_models())[case]
    model = model.double().train()
    efficient = copy.deepcopy(model)
    efficient.set_grad_checkpointing()
    x = torch.randn(4, 3, size, size, dtype=torch.float64)
    y = torch.randint(0, model.num_classes, (4,))
    outputs, grads = _train_steps(model, x, y)
    outputs_e, grads_e = _train_steps(efficient, x, y)
    for out, out_e in zip(outputs, outputs_e):  # dropout masks redrawn identically, steps agree
        torch.testing.assert_close(out_e, out, rtol=1e-10, atol=1e-10)
    assert grads_e.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(grads_e[name], grads[name], rtol=1e-9, atol=1e-10, msg=name)
    # Recomputation must not update BatchNorm's running statistics a second time.
    buffers, buffers_e = dict(model.named_buffers()), dict(efficient.named_buffers())
    for name in buffers:
        torch.testing.assert_close(buffers_e[name], buffers[name], rtol=1e-12, atol=1e-12, msg=name)
    assert int(buffers_e["seqconv1.transforms.0.bn.num_batches_tracked"]) == 2


def _kept_for_backward(model, x) -> int:
    with LiveStorages() as live:
        loss = model(x).sum()
    kept = live.live_bytes()
    loss.backward()  # the recomputation runs and the gradient exists
    assert all(p.grad is not None for p in model.parameters())
    return kept


def test_memory_efficient_keeps_far_less_for_backward():
    torch.manual_seed(0)
    model = create_model("seqresnet_cifar", k=16, r=7, n=2, bottleneck=True).train()
    x = torch.randn(8, 3, 32, 32)
    plain = _kept_for_backward(model, x)
    model.set_grad_checkpointing(True)
    efficient = _kept_for_backward(model, x)
    assert efficient < plain / 3, (efficient, plain)


def test_memory_efficient_is_a_create_model_option_and_inference_is_unchanged():
    """``memory_efficient=True`` (also ``--model-args memory_efficient=true``) is set_grad_checkpointing()."""
    torch.manual_seed(0)
    model = create_model("seqresnet_cifar", k=8, r=1, n=1, memory_efficient=True)
    assert model.grad_checkpointing and model.memory_efficient
    assert all(stage.grad_checkpointing for stage in model.stages)
    assert create_model("seqresnet_b22", memory_efficient=True).grad_checkpointing
    reference = copy.deepcopy(model)
    reference.set_grad_checkpointing(False)
    assert not reference.memory_efficient
    x = torch.randn(2, 3, 16, 16)
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
    with pytest.raises(ValueError, match="memory_efficient must be True or False"):
        create_model("seqresnet_k8_r4_n1", memory_efficient="yes")
    with pytest.raises(ValueError, match="enable must be True or False"):
        model.set_grad_checkpointing("yes")


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_stage_and_stem_hooks_fire_in_both_modes(memory_efficient):
    """Hooks on model.stages[j] / model.stages / model.stem see every forward (notebook 06 uses them)."""
    torch.manual_seed(0)
    model = seqresnet_imagenet((16, 32, 32, 64), (4, 8, 8, 8), (1, 1, 1, 1), memory_efficient=memory_efficient)
    seen = []
    modules = [model.stem, model.stages, *model.stages]
    hooks = [m.register_forward_hook(lambda m, i, o, j=j: seen.append(j)) for j, m in enumerate(modules)]
    out = model(torch.randn(2, 3, 64, 64))
    assert sorted(seen) == list(range(len(modules)))
    out.sum().backward()
    for hook in hooks:
        hook.remove()
    assert all(stage.grad_checkpointing is memory_efficient for stage in model.stages)
