"""plain_twin: every SeqConv replaced by Conv3x3-BN-ReLU of the same widths, checked against closed forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqlite import (
    PlainConv2d,
    SeqConv2d,
    count_flops,
    count_flops_by_module,
    count_params,
    create_model,
    plain_twin,
    seqconv_param_count,
    seqresnet_cifar,
)
from seqlite.layers import HadamardSeqConv2d

INPUT = (3, 16, 16)


def small_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "windowed": seqresnet_cifar(k=4, r=1, n=1),
        "dense": seqresnet_cifar(k=4, r=1, n=(1, 2, 1), windowed=False),
        "bottleneck": seqresnet_cifar(k=8, r=1, n=1, bottleneck=True),
        "sequential": nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), SeqConv2d(8, 16, 4, window=8), nn.MaxPool2d(2), SeqConv2d(16, 24, 8)
        ),
    }


def seqconv_layers(model: nn.Module) -> dict[str, SeqConv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, SeqConv2d)}


def spatial_sizes(twin: nn.Module, names: list[str]) -> dict[str, int]:
    """H * W each replaced layer runs at, read from the twin's convolution inputs."""
    sizes: dict[str, int] = {}
    hooks = [
        twin.get_submodule(name).conv.register_forward_pre_hook(
            lambda _m, args, name=name: sizes.__setitem__(name, args[0].shape[-2] * args[0].shape[-1])
        )
        for name in names
    ]
    twin.eval()
    with torch.no_grad():
        twin(torch.zeros(1, *INPUT))
    for hook in hooks:
        hook.remove()
    return sizes


@pytest.mark.parametrize("kind", ["windowed", "dense", "bottleneck", "sequential"])
def test_twin_parameters_and_macs_follow_the_closed_forms(kind: str) -> None:
    model = small_models()[kind]
    layers = seqconv_layers(model)
    twin = plain_twin(model)
    assert set(layers) == {n for n, m in twin.named_modules() if isinstance(m, PlainConv2d)}
    assert not any(isinstance(m, SeqConv2d) for m in twin.modules())

    # Parameters: each SeqConv (its closed form) swapped for 9 in out + 2 out.
    seq_params = sum(
        seqconv_param_count(m.in_channels, m.out_channels, m.k, m.window, m.bottleneck, m.subgroups)
        for m in layers.values()
    )
    assert seq_params == sum(count_params(m) for m in layers.values())
    plain_params = sum(9 * m.in_channels * m.out_channels + 2 * m.out_channels for m in layers.values())
    assert count_params(twin) == count_params(model) - seq_params + plain_params
    for name, m in layers.items():
        assert count_params(twin.get_submodule(name)) == 9 * m.in_channels * m.out_channels + 2 * m.out_channels

    # MACs: each replaced layer costs 9 in out H W; the rest of the network is unchanged.
    sizes = spatial_sizes(twin, list(layers))
    model_macs = count_flops_by_module(model, INPUT)
    twin_macs = count_flops_by_module(twin, INPUT)
    for name, m in layers.items():
        assert twin_macs[name] == 9 * m.in_channels * m.out_channels * sizes[name], name
    expected = model_macs[""] - sum(model_macs[n] for n in layers) + sum(twin_macs[n] for n in layers)
    assert twin_macs[""] == expected


def test_the_twin_of_windowed_layers_costs_the_same() -> None:
    # Paper 3.1: a WSeqConv with window = in has the parameters and cost of the regular layer.
    model = nn.Sequential(SeqConv2d(8, 16, 4, window=8), SeqConv2d(16, 32, 8, window=16))
    twin = plain_twin(model)
    assert count_params(twin) == count_params(model)
    assert count_flops(twin, (8, 6, 6)) == count_flops(model, (8, 6, 6))
    # ...and a dense layer costs more than its twin.
    dense = SeqConv2d(8, 16, 4)
    assert count_params(dense) > count_params(plain_twin(dense))


@pytest.mark.parametrize("kind", ["windowed", "dense", "bottleneck", "sequential"])
def test_twin_forward_shapes_and_backward(kind: str) -> None:
    model = small_models()[kind]
    twin = plain_twin(model)
    x = torch.randn(2, *INPUT)
    for mode in (True, False):
        model.train(mode)
        twin.train(mode)
        out = twin(x)
        assert out.shape == model(x).shape
    twin.train()
    twin(x).sum().backward()
    grads = [p.grad for p in twin.parameters()]
    assert all(g is not None for g in grads)


def test_original_untouched_and_other_weights_copied() -> None:
    model = small_models()["windowed"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = {n: type(m) for n, m in model.named_modules()}
    twin = plain_twin(model)
    twin(torch.randn(2, *INPUT)).sum().backward()
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(1.0)
    assert {n: type(m) for n, m in model.named_modules()} == types
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    # The twin starts from the model's weights wherever nothing was replaced.
    fresh = plain_twin(model)
    assert torch.equal(fresh.stem[0].weight, model.stem[0].weight)
    assert fresh.stem[0].weight.data_ptr() != model.stem[0].weight.data_ptr()
    assert torch.equal(fresh.fc.weight, model.fc.weight)


def test_twin_keeps_the_zero_init_of_residual_blocks() -> None:
    # Paper 4.2: layer B of every residual block starts at zero, so a new block is the identity.
    model = seqresnet_cifar(k=4, r=1, n=2)
    twin = plain_twin(model)
    blocks = [m for m in twin.modules() if type(m).__name__ == "ResidualBlock"]
    assert len(blocks) == 6
    for block in blocks:
        assert not block.layer_b.conv.weight.any()
        assert block.layer_a.conv.weight.abs().sum() > 0
        raw = torch.randn(2, block.layer_a.in_channels, 4, 4)
        out = block((raw, torch.relu(raw)))
        assert torch.equal(out.raw, raw)


def test_plain_layer_adds_the_shortcut_before_bn() -> None:
    torch.manual_seed(0)
    layer = PlainConv2d(6, 8)
    x, shortcut = torch.randn(2, 6, 5, 5), torch.randn(2, 8, 5, 5)
    raw, activated = layer.forward_residual(x, shortcut)
    torch.testing.assert_close(raw, layer.conv(x) + shortcut)
    torch.testing.assert_close(activated, torch.relu(layer.bn(raw)))
    torch.testing.assert_close(layer(x), layer.forward_residual(x).activated)


def test_twin_keeps_dropout_device_and_dtype() -> None:
    model = nn.Sequential(SeqConv2d(4, 8, 4, window=4, drop_rate=0.2)).double()
    twin = plain_twin(model)
    assert twin[0].drop_rate == 0.2 and isinstance(twin[0].dropout, nn.Dropout2d)
    assert twin[0].conv.weight.dtype == torch.float64


def test_a_single_layer_and_the_mask_form_become_plain_layers() -> None:
    layer = SeqConv2d(4, 8, 2)
    assert isinstance(plain_twin(layer), PlainConv2d)
    model = nn.Sequential(HadamardSeqConv2d(4, 8, 2, window=4))
    twin = plain_twin(model)
    assert isinstance(twin[0], PlainConv2d) and (twin[0].in_channels, twin[0].out_channels) == (4, 8)


def test_imagenet_template_twin_runs() -> None:
    model = create_model("seqresnet_b22", num_classes=10)
    twin = plain_twin(model)
    # Bottleneck layers are cheaper than their regular twin.
    assert count_params(twin) > count_params(model)
    twin.eval()
    with torch.no_grad():
        assert twin(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_twin_of_a_network_without_seqconv_is_an_error() -> None:
    with pytest.raises(ValueError, match="SeqConv2d"):
        plain_twin(nn.Sequential(nn.Conv2d(3, 4, 3)))
    with pytest.raises(ValueError, match="out_channels"):
        PlainConv2d(3, 0)
    with pytest.raises(ValueError, match="drop_rate"):
        PlainConv2d(3, 4, drop_rate=1.0)
