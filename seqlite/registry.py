"""Model registry: ``create_model(name, **overrides)`` and ``list_models()`` (timm style)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from .seqresnet import seqresnet_b22, seqresnet_b42, seqresnet_cifar, seqresnext24

__all__ = ["create_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register ``builder`` under ``name``; ``create_model`` passes overrides to it."""
    if name in _MODELS:
        raise ValueError(f"model name {name!r} is already registered")
    _MODELS[name] = builder


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; keyword overrides go to the family's builder.

    >>> model = create_model("seqresnet_k8_r4_n1", k=16, r=3, n=(1, 2, 2), num_classes=100)
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name](**overrides)


def _cifar(k: int, r: int, n: int, bottleneck: bool = False) -> Callable[..., nn.Module]:
    def build(**overrides) -> nn.Module:
        args = dict(k=k, r=r, n=n, bottleneck=bottleneck)
        args.update(overrides)
        return seqresnet_cifar(**args)

    return build


# Table 3 (CIFAR) and Table 2 (ImageNet).
register_model("seqresnet_k8_r4_n1", _cifar(8, 4, 1))
register_model("seqresnet_k16_r10_n1", _cifar(16, 10, 1))
register_model("seqresnet_b_k16_r7_n1", _cifar(16, 7, 1, bottleneck=True))
register_model("seqresnet_b_k32_r12_n3", _cifar(32, 12, 3, bottleneck=True))
register_model("seqresnet_b22", partial(seqresnet_b22))
register_model("seqresnet_b42", partial(seqresnet_b42))
register_model("seqresnext24", partial(seqresnext24))
