"""The timm model interface, checked for every registered model (``list_models()``).

Every entry must build, give logits of the right shape, split into ``forward_features`` and
``forward_head`` (with ``pre_logits``), swap its classifier, load a checkpoint written the way
``seqlite train`` writes one through ``create_model(name, checkpoint_path=...)``, and compute the
same forward pass with gradient checkpointing on. Inputs are small (16x16 for the CIFAR
networks, 64x64 for the ImageNet ones) to keep the big networks quick.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict

import pytest
import torch

from seqlite import CheckpointError, create_model, list_models, save_checkpoint
from seqlite.train import TrainConfig

NUM_CLASSES = 7
# Entries that need arguments (the template); every other entry must build from its name alone.
ARGS = {"seqresnet_cifar": dict(k=4, r=1, n=(1, 2, 1))}


@functools.cache
def _built(name: str) -> torch.nn.Module:
    """One model per name for the whole file (tests that change it take a copy)."""
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, **ARGS.get(name, {})).eval()


def _input(model: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    channels, size, _ = model.pretrained_cfg["input_size"]
    return torch.randn(batch, channels, 64 if size == 224 else 16, 64 if size == 224 else 16)


@pytest.mark.parametrize("name", list_models())
def test_builds_with_data_config_and_forward_splits(name):
    model = _built(name)
    assert model.num_classes == NUM_CLASSES and model.pretrained_cfg["num_classes"] == NUM_CLASSES
    assert model.pretrained_cfg["architecture"] == name
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct"):
        assert model.pretrained_cfg[key] is not None, key
    assert model.get_classifier() is model.fc and model.fc.out_features == NUM_CLASSES
    x = _input(model)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        assert logits.shape == (2, NUM_CLASSES)
        assert features.shape[:2] == (2, model.num_features) and pooled.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(features), logits, rtol=0, atol=0)
        torch.testing.assert_close(model.get_classifier()(pooled), logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", list_models())
def test_reset_classifier(name):
    model = copy.deepcopy(_built(name))
    x = _input(model)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)  # no classifier: the model gives its pre-logits
        assert model.num_classes == 0 and model.pretrained_cfg["num_classes"] == 0
        torch.testing.assert_close(model(x), pooled, rtol=0, atol=0)
        model.reset_classifier(3)
        assert model.get_classifier().out_features == 3 and model.num_classes == 3
        assert model(x).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes must be a non-negative integer"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_round_trip_through_create_model(name, tmp_path):
    model = copy.deepcopy(_built(name)).train()
    with torch.no_grad():  # a training-mode pass: BatchNorm statistics no fresh model has, so
        model(_input(model))  # a checkpoint that is not loaded fails the comparison below
    state = {  # the entries seqlite.train writes that create_model reads
        "model": model.state_dict(),
        "config": asdict(TrainConfig(model=name, model_args=ARGS.get(name, {}))),
        "num_classes": NUM_CLASSES,
        "in_chans": 3,
        "epoch": 1,
    }
    path = save_checkpoint(state, tmp_path / "last.pt")
    torch.manual_seed(1)  # another initialisation than the saved model's
    loaded = create_model(name, checkpoint_path=path, **ARGS.get(name, {}))
    assert loaded.num_classes == NUM_CLASSES  # taken from the checkpoint
    expected = model.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize("name", list_models())
def test_grad_checkpointing_gives_the_same_forward(name):
    model = copy.deepcopy(_built(name))  # eval mode: deterministic, buffers untouched
    x = _input(model, batch=1)
    expected = model(x)
    model.set_grad_checkpointing()
    assert model.grad_checkpointing
    out = model(x)  # grad enabled: the checkpointed path
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    out.sum().backward()
    assert model.stem[0].weight.grad is not None and model.get_classifier().weight.grad is not None


def test_checkpoint_that_does_not_fit(tmp_path):
    torch.manual_seed(0)
    model = create_model("seqresnet_cifar", k=4, r=1, n=1, in_chans=1)
    config = asdict(TrainConfig(model="seqresnet_cifar", model_args=dict(k=4, r=1, n=1)))
    path = save_checkpoint({"model": model.state_dict(), "config": config, "num_classes": 10, "in_chans": 1},
                           tmp_path / "best.pt")
    assert create_model("seqresnet_cifar", checkpoint_path=path, k=4, r=1, n=1).in_chans == 1
    with pytest.raises(ValueError, match="trained with num_classes=10, but the model built has num_classes=5"):
        create_model("seqresnet_cifar", checkpoint_path=path, k=4, r=1, n=1, num_classes=5)
    with pytest.raises(ValueError, match="trained with in_chans=1, but the model built has in_chans=3"):
        create_model("seqresnet_cifar", checkpoint_path=path, k=4, r=1, n=1, in_chans=3)
    with pytest.raises(ValueError, match=r"does not fit .*trained as 'seqresnet_cifar' with model_args .*'r': 1"):
        create_model("seqresnet_cifar", checkpoint_path=path, k=4, r=2, n=1)
    with pytest.raises(CheckpointError, match="file not found"):
        create_model("seqresnet_cifar", checkpoint_path=tmp_path / "missing.pt", k=4, r=1, n=1)
