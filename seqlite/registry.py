"""Model registry in timm's style: ``@register_model``, ``list_models``, ``create_model``.

Every model name is a builder function of that name, registered with the
:func:`register_model` decorator (the paper's networks are in :mod:`seqlite.seqresnet`);
``create_model(name, **overrides)`` calls it. Register your own builders the same way::

    @register_model
    def my_net(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
        ...

    model = create_model("my_net", num_classes=100)

``seqlite train --model my_net`` then finds it too (it passes ``num_classes`` and ``in_chans``).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from .checkpoint import load_checkpoint

__all__ = ["create_model", "is_model", "list_models", "register_model", "unregister_model"]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# Names whose pretrained weights seqlite can load. None yet: no SeqConv network has been
# trained to the paper's accuracy for this library, and no weights are made up.
_PRETRAINED: dict[str, str] = {}


def register_model(fn: Builder | None = None, *, name: str | None = None) -> Builder | Callable[[Builder], Builder]:
    """Register a model builder under its function name (or ``name``); returns it unchanged.

    Use it as ``@register_model`` or ``@register_model(name="other")``, or call it as
    ``register_model(builder, name="other")``. Registering a name twice is an error,
    except that re-running the same definition (a notebook cell run again, same module and
    qualified name) replaces the earlier one.
    """
    if fn is None:
        return lambda f: register_model(f, name=name)
    if not callable(fn):
        raise ValueError(f"register_model expects a builder function, got {fn!r}")
    key = name if name is not None else getattr(fn, "__name__", None)
    if not key or key == "<lambda>":
        raise ValueError(f"cannot tell the model name of {fn!r}; pass name=...")
    old = _MODELS.get(key)
    if old is not None and _origin(old) != _origin(fn):
        raise ValueError(f"model name {key!r} is already registered (by {_origin(old)})")
    _MODELS[key] = fn
    return fn


def unregister_model(name: str) -> Callable[..., nn.Module]:
    """Remove ``name`` from the registry (a builder registered for an experiment); returns its builder."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS.pop(name)


def _origin(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered model names matching ``pattern`` (``fnmatch`` wildcards), sorted.

    ``list_models("seqresnet_b*")`` gives the bottleneck networks; ``pretrained=True``
    only those with pretrained weights (none yet).
    """
    names = fnmatch.filter(sorted(_MODELS), pattern)
    return [n for n in names if n in _PRETRAINED] if pretrained else names


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _MODELS


def create_model(
    name: str,
    pretrained: bool = False,
    checkpoint_path: str | os.PathLike | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered model ``name``; keyword ``overrides`` go to its builder.

    ``checkpoint_path``: a checkpoint written by ``seqlite train`` (``last.pt`` or
    ``best.pt``); its ``"model"`` weights are loaded (``weights_only`` loading, which runs
    no code). The model is built for the checkpoint's ``num_classes`` and ``in_chans``
    unless you pass them; if they disagree, a ``ValueError`` names both.
    ``pretrained=True`` asks for published weights, which no model has yet.

    >>> model = create_model("seqresnet_k8_r4_n1", num_classes=100)
    >>> custom = create_model("seqresnet_cifar", k=8, r=2, n=(1, 2, 1))
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"unknown model {name!r}; {hint}known models: {', '.join(list_models())}")
    if pretrained:
        have = ", ".join(sorted(_PRETRAINED)) or "none yet"
        raise ValueError(
            f"pretrained=True: no pretrained weights for {name!r} (models with weights: {have}). "
            f"Train one with `seqlite train --model {name} ...` and load it with "
            f"create_model({name!r}, checkpoint_path='runs/.../best.pt')"
        )
    builder = _MODELS[name]
    ckpt = None
    if checkpoint_path is not None:
        ckpt = load_checkpoint(checkpoint_path, required=("model",))
        for key in ("num_classes", "in_chans"):
            if key in ckpt:
                overrides.setdefault(key, ckpt[key])
    _check_required_arguments(name, builder, overrides)
    model = builder(**overrides)
    if ckpt is not None:
        _load_weights(model, ckpt, name, checkpoint_path, overrides)
    return model


def _check_required_arguments(name: str, builder: Callable, overrides: dict[str, Any]) -> None:
    """A builder's arguments without defaults (``seqresnet_cifar``'s k, r, n) must be given."""
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in overrides
    ]
    if missing:
        example = ", ".join(f"{m}=..." for m in missing)
        raise ValueError(f"model {name!r} needs {', '.join(missing)}: create_model({name!r}, {example})")


def _load_weights(model: nn.Module, ckpt: dict, name: str, path: str | os.PathLike, overrides: dict) -> None:
    for key in ("num_classes", "in_chans"):
        built = getattr(model, key, None)
        if key in ckpt and built is not None and built != ckpt[key]:
            raise ValueError(
                f"checkpoint {path} was trained with {key}={ckpt[key]}, but the model built has {key}={built}"
            )
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        trained = ckpt.get("config") or {}
        how = ""
        if isinstance(trained, dict) and "model" in trained:
            how = f" It was trained as {trained['model']!r} with model_args {trained.get('model_args', {})!r}."
        raise ValueError(
            f"checkpoint {path} does not fit create_model({name!r}) with {overrides!r}.{how}\n{err}"
        ) from err
