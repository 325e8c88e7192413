"""Networks of Tables 1-3 and 5 and the registry."""

from __future__ import annotations

import pytest
import torch
import torchvision

import seqlite
from seqlite import count_flops, count_params, create_model, list_models, seqresnet_cifar

# Paper, in millions, printed to 0.1M. The counts must agree to that precision: within 0.1M.
# (B22 counts 11.86M, printed 11.8M by the paper; every other count rounds to the printed value.)
PAPER_PARAMS = {
    "seqresnet_k8_r4_n1": 1.2,
    "seqresnet_k16_r10_n1": 7.6,
    "seqresnet_b_k16_r7_n1": 0.8,
    "seqresnet_b_k32_r12_n3": 6.0,
    "seqresnet_b22": 11.8,
    "seqresnet_b42": 25.6,
    "seqresnext24": 26.2,
}
TABLE5 = {  # S2: all layers dense, S3: larger k, S4: narrower and deeper
    "S2": (dict(k=8, r=3, n=(1, 2, 1), windowed=False), 1.2),
    "S3": (dict(k=16, r=4, n=1), 1.3),
    "S4": (dict(k=16, r=3, n=(1, 2, 2)), 1.3),
}
# FLOP ratios to ResNet-50 from Table 2 / Table 4 (5.33 / 3.86 and so on).
PAPER_FLOP_RATIOS = {"seqresnet_b22": 2.73 / 3.86, "seqresnet_b42": 5.33 / 3.86, "seqresnext24": 4.32 / 3.86}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_counts_match_tables_2_and_3(name):
    millions = count_params(create_model(name)) / 1e6
    assert abs(millions - PAPER_PARAMS[name]) < 0.1, f"{name}: {millions:.3f}M vs paper {PAPER_PARAMS[name]}M"


@pytest.mark.parametrize("setting", sorted(TABLE5))
def test_parameter_counts_match_table_5(setting):
    kwargs, paper = TABLE5[setting]
    millions = count_params(seqresnet_cifar(**kwargs)) / 1e6
    assert abs(millions - paper) < 0.1, f"{setting}: {millions:.3f}M vs paper {paper}M"


def test_table5_s2_is_dense_everywhere():
    model = seqresnet_cifar(k=8, r=3, n=(1, 2, 1), windowed=False)
    windows = {m.window for m in model.modules() if isinstance(m, seqlite.SeqConv2d)}
    assert windows == {None}
    s1 = {m.window for m in create_model("seqresnet_k8_r4_n1").modules() if isinstance(m, seqlite.SeqConv2d)}
    assert None in s1 and {64, 128, 192} <= s1  # only the first SeqConv is dense


@pytest.fixture(scope="module")
def resnet50_macs():
    return count_flops(torchvision.models.resnet50(), (3, 224, 224))


@pytest.mark.parametrize("name", sorted(PAPER_FLOP_RATIOS))
def test_flop_ratios_to_resnet50(name, resnet50_macs):
    ratio = count_flops(create_model(name), (3, 224, 224)) / resnet50_macs
    paper = PAPER_FLOP_RATIOS[name]
    assert abs(ratio / paper - 1) < 0.02, f"{name}: {ratio:.3f} vs paper {paper:.3f}"


def test_registry():
    assert set(PAPER_PARAMS) <= set(list_models())
    model = create_model("seqresnet_k8_r4_n1", k=16, r=3, n=(1, 2, 2), num_classes=100)
    assert model.cfg.widths == (48, 96, 144) and model.cfg.k == (16, 16, 16) and model.cfg.blocks == (1, 2, 2)
    assert model.fc.out_features == 100
    with pytest.raises(ValueError, match="unknown model 'resnet50'.*seqresnet_b22.*seqresnext24"):
        create_model("resnet50")


def test_cifar_template_layout():
    """Table 1: widths 16r, 32r, 48r; first SeqConv dense without dropout; grouped downsizing."""
    model = seqresnet_cifar(8, 4, 1)
    assert model.cfg.widths == (64, 128, 192)
    assert model.seqconv1.window is None and model.seqconv1.drop_rate == 0
    downs = [m for m in model.modules() if isinstance(m, seqlite.DownsamplingBlock)]
    assert [(d.extension.in_channels, d.extension.out_channels) for d in downs] == [(64, 64), (128, 64)]
    assert [d.downsize.groups for d in downs] == [128 // 8, 192 // 8]
    layers = [m for m in model.modules() if isinstance(m, seqlite.SeqConv2d) and m is not model.seqconv1]
    assert layers and all(m.drop_rate == 0.1 for m in layers)


def test_imagenet_table2_layout():
    model = create_model("seqresnext24")
    assert model.cfg.widths == (256, 512, 1024, 2048) and model.cfg.subgroups == (8, 8, 4, 4)
    downs = [m for m in model.modules() if isinstance(m, seqlite.DownsamplingBlock)]
    assert [d.downsize.groups for d in downs] == [64, 64, 64, 64]  # Table 2's "64 groups" in every stage
    b42 = create_model("seqresnet_b42")
    assert [d.downsize.groups for d in b42.modules() if isinstance(d, seqlite.DownsamplingBlock)] == [4, 4, 8, 8]


@pytest.mark.parametrize("size", [8, 17, 32, 224])
def test_cifar_template_on_any_input_size(size):
    model = create_model("seqresnet_k8_r4_n1").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 10)


def test_forward_features_and_head():
    model = create_model("seqresnet_b_k16_r7_n1", in_chans=1, num_classes=7).eval()
    x = torch.randn(2, 1, 32, 32)
    features = model.forward_features(x)
    assert features.shape == (2, 7 * 48, 8, 8)
    assert model.forward_head(features, pre_logits=True).shape == (2, 7 * 48)
    torch.testing.assert_close(model.forward_head(features), model(x))
    assert model.default_cfg["input_size"] == (1, 32, 32) and model.default_cfg["num_classes"] == 7


def test_imagenet_model_forward_backward_small_input():
    model = create_model("seqresnet_b22", num_classes=5)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5)
    out.logsumexp(1).mean().backward()
    assert model.fc.weight.grad is not None and model.stem[0].weight.grad is not None
    assert model.default_cfg["input_size"] == (3, 224, 224)


def test_eval_is_deterministic_and_backward_works():
    torch.manual_seed(0)
    model = create_model("seqresnet_k8_r4_n1", r=1)
    x = torch.randn(4, 3, 16, 16)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_initialisation_follows_paper():
    model = create_model("seqresnet_k8_r4_n1", r=1)
    torch.testing.assert_close(model.fc.bias, torch.zeros_like(model.fc.bias))
    bound = (6 / (model.fc.in_features + model.fc.out_features)) ** 0.5  # Xavier uniform
    assert model.fc.weight.abs().max() <= bound and model.fc.weight.abs().max() > bound / 2
    for block in (m for m in model.modules() if isinstance(m, seqlite.ResidualBlock)):
        assert all(t.conv3x3.weight.abs().sum() == 0 for t in block.layer_b.transforms)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(k=8, r=4, n=(1, 2)), "n must be an int or one value per stage"),
        (dict(k=8, r=4, n=(1, 2, 3, 4)), "n must be an int or one value per stage"),
        (dict(k=8, r=0, n=1), "r must be a positive integer"),
        (dict(k=0, r=4, n=1), "k must be a positive integer"),
        (dict(k=24, r=1, n=1), "out_channels must be divisible by k"),
        (dict(k=8, r=1, n=1, num_classes=0), "num_classes must be a positive integer"),
        (dict(k=8, r=1, n=1, drop_rate=-0.1), "drop_rate must be in"),
    ],
)
def test_bad_network_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        seqresnet_cifar(**kwargs)


def test_wrong_input_channels():
    model = create_model("seqresnet_k8_r4_n1", r=1)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), got \(1, 1, 32, 32\)"):
        model(torch.randn(1, 1, 32, 32))
