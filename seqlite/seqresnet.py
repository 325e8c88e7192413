"""SeqResNet, SeqResNet-B and SeqResNeXt (paper 3.2, Table 1 and Table 2).

One family, one class: :class:`SeqResNet` is built from a :class:`SeqResNetConfig` (the
architecture) and a data configuration (``pretrained_cfg``, :func:`data_config`). The CIFAR
template (Table 1) and the ImageNet networks (Table 2) are configurations of it;
:func:`seqresnet_cifar` and :func:`seqresnet_imagenet` build them. Each network of Tables 2
and 3 is a builder of its own registered with :func:`~seqlite.registry.register_model`, so
``create_model(name)`` and ``list_models()`` know them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .blocks import DownsamplingBlock, ResidualBlock, init_weights
from .checks import boolean, non_negative_int, positive_int, probability
from .data.constants import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD
from .layers import SeqConv2d, SeqConvOutput
from .recompute import recomputed
from .registry import register_model

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SeqResNet",
    "SeqResNetConfig",
    "data_config",
    "seqresnet_b22",
    "seqresnet_b42",
    "seqresnet_b_k16_r7_n1",
    "seqresnet_b_k32_r12_n3",
    "seqresnet_cifar",
    "seqresnet_imagenet",
    "seqresnet_k16_r10_n1",
    "seqresnet_k8_r4_n1",
    "seqresnext24",
]

@dataclass(frozen=True)
class SeqResNetConfig:
    """The architecture: everything that tells one SeqResNet's layers from another's.

    ``stem`` lists the plain Conv3x3-BN-ReLU layers before the first SeqConv as
    ``(out_channels, stride)``. ``widths``, ``k``, ``subgroups`` and ``blocks`` are per
    stage. ``stem_downsize`` adds the ImageNet stem's grouped stride-2 conv after the
    first (dense) SeqConv. How to prepare the input (mean, std, size) is not part of
    it: that is the model's ``pretrained_cfg``.
    """

    stem: tuple[tuple[int, int], ...]
    widths: tuple[int, ...]
    k: tuple[int, ...]
    blocks: tuple[int, ...]
    subgroups: tuple[int, ...] = ()
    bottleneck: bool = False
    windowed: bool = True
    stem_downsize: bool = False
    num_classes: int = 10
    in_chans: int = 3
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        stages = len(self.widths)
        subgroups = self.subgroups or (1,) * stages
        object.__setattr__(self, "subgroups", tuple(subgroups))
        for name in ("k", "blocks", "subgroups"):
            value = getattr(self, name)
            if len(value) != stages:
                raise ValueError(
                    f"{name} must have one entry per stage ({stages} stages), got {value!r}"
                )
        for name in ("num_classes", "in_chans"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        object.__setattr__(self, "blocks", tuple(non_negative_int("blocks (n)", b) for b in self.blocks))
        object.__setattr__(self, "drop_rate", probability("drop_rate", self.drop_rate))


def data_config(
    reference: str | None,
    *,
    architecture: str | None = None,
    num_classes: int,
    in_chans: int = 3,
    description: str = "",
) -> dict[str, Any]:
    """A model's data configuration (timm's ``pretrained_cfg`` keys) for a reference dataset.

    ``reference`` is ``"cifar10"`` (the CIFAR template, Tables 1, 3 and 5: 32x32 images,
    no resizing, CIFAR-10's per-channel statistics), ``"imagenet"`` (Table 2: resize to 256,
    centre crop 224, bilinear, ImageNet statistics; paper 4.2) or ``None`` (unknown).
    ``num_classes`` and the channel count of ``input_size`` are the model's own. Mean and
    std are the reference dataset's for 3-channel models and ``None`` for others (they
    depend on data the model cannot know about).
    """
    if reference not in _REFERENCE_DATA:
        raise ValueError(f"reference must be one of {sorted(_REFERENCE_DATA, key=str)}, got {reference!r}")
    data = dict(_REFERENCE_DATA[reference])
    size = data.pop("size")
    if in_chans != 3:
        data["mean"] = data["std"] = None
    return {
        "architecture": architecture,
        "description": description,
        "dataset": reference,
        "num_classes": num_classes,
        "input_size": (in_chans, size, size) if size else None,
        "fixed_input_size": False,  # global average pooling: any input of at least 8x8 works
        **data,
        "first_conv": "stem.0",
        "classifier": "fc",
    }


_REFERENCE_DATA: dict[str | None, dict[str, Any]] = {
    "cifar10": dict(size=32, interpolation="bilinear", crop_pct=1.0, mean=CIFAR_MEAN, std=CIFAR_STD),
    "imagenet": dict(size=224, interpolation="bilinear", crop_pct=224 / 256, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    None: dict(size=None, interpolation=None, crop_pct=None, mean=None, std=None),
}


class _Stem(nn.Sequential):
    def __init__(self, in_chans: int, layers: Sequence[tuple[int, int]]):
        modules: list[nn.Module] = []
        for out, stride in layers:
            modules += [nn.Conv2d(in_chans, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            in_chans = out
        super().__init__(*modules)


class _Stage(nn.Sequential):
    """One stage's blocks, run in order; with gradient checkpointing each is recomputed in backward."""

    grad_checkpointing = False  # SeqResNet.set_grad_checkpointing sets it on every stage

    def forward(self, features: SeqConvOutput) -> SeqConvOutput:
        recompute = self.grad_checkpointing and torch.is_grad_enabled()
        for block in self:
            features = _run_block(block, features, recompute)
        return features


class SeqResNet(nn.Module):
    """A residual network whose convolutions are SeqConv layers.

    Layout: stem convs -> dense SeqConv (no dropout) [-> grouped downsizing] ->
    stage 1 residual blocks -> (down-sampling block -> residual blocks) per further
    stage -> dropout, Conv1x1-BN-ReLU -> global average pool -> fc.

    The timm model interface: :meth:`forward_features` / :meth:`forward_head`,
    :meth:`get_classifier` / :meth:`reset_classifier`, :meth:`set_grad_checkpointing`,
    ``num_classes``, ``num_features`` and ``pretrained_cfg``.

    ``cfg`` is the architecture; ``pretrained_cfg`` how to prepare its input (mean, std,
    input size, interpolation, crop; see :func:`data_config`). A model does not know the
    data it is trained on: for the CIFAR-template networks ``pretrained_cfg`` describes
    CIFAR-10, the data of Table 3, whatever the model is later trained on (``seqlite
    train`` normalises each dataset with its own statistics: CIFAR-100's, or none for the
    1-channel 8x8 digits, for which mean and std here are ``None``).

    Gradient checkpointing (:meth:`set_grad_checkpointing`) keeps only each block's input
    for backward and recomputes the block's activations while the gradient passes
    through it (``torch.utils.checkpoint``, as the memory-efficient DenseNet
    implementations do; the stem and the first SeqConv are one segment). For B22 at
    224x224 that keeps 0.17x of the activations and needs 0.44x the peak tensor memory,
    for 1.2-1.3x the time per step (one more forward pass; benchmarks/RESULTS.md). The
    numbers are the same: dropout masks are redrawn from the saved random state and
    BatchNorm running statistics are updated once, not again by the recomputation; this
    holds under ``torch.compile`` too.
    """

    def __init__(self, cfg: SeqResNetConfig, pretrained_cfg: dict[str, Any] | None = None):
        super().__init__()
        self.cfg = cfg
        self.pretrained_cfg = dict(
            pretrained_cfg or data_config(None, num_classes=cfg.num_classes, in_chans=cfg.in_chans)
        )
        self.num_classes = cfg.num_classes
        self.in_chans = cfg.in_chans
        self.drop_rate = cfg.drop_rate
        widths, ks, cs = cfg.widths, cfg.k, cfg.subgroups
        common = dict(bottleneck=cfg.bottleneck, windowed=cfg.windowed)

        self.stem = _Stem(cfg.in_chans, cfg.stem)
        stem_out = cfg.stem[-1][0]
        # The network's first SeqConv is dense and has no dropout (Table 1, paper 4.2).
        self.seqconv1 = SeqConv2d(stem_out, widths[0], ks[0], subgroups=cs[0], bottleneck=cfg.bottleneck)
        self.stem_downsize = (
            DownsamplingBlock(widths[0], widths[0], ks[0], subgroups=cs[0], bottleneck=cfg.bottleneck)
            if cfg.stem_downsize
            else None
        )
        stages = []
        for s, (width, k, c, n) in enumerate(zip(widths, ks, cs, cfg.blocks)):
            blocks: list[nn.Module] = []
            if s > 0:
                blocks.append(
                    DownsamplingBlock(
                        widths[s - 1],
                        width,
                        ks[s - 1],
                        k_next=k,
                        subgroups=cs[s - 1],
                        subgroups_next=c,
                        drop_rate=cfg.drop_rate,
                        **common,
                    )
                )
            blocks += [
                ResidualBlock(width, k, subgroups=c, drop_rate=cfg.drop_rate, **common) for _ in range(n)
            ]
            stages.append(_Stage(*blocks))
        self.stages = nn.Sequential(*stages)
        self.grad_checkpointing = False
        self.num_features = widths[-1]
        self.head_drop = nn.Dropout2d(cfg.drop_rate) if cfg.drop_rate > 0 else nn.Identity()
        self.head_conv = nn.Conv2d(widths[-1], widths[-1], 1, bias=False)
        self.head_bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], cfg.num_classes)
        init_weights(self)  # once, for the whole network (paper 4.2); layer B of each block at zero

    @property
    def default_cfg(self) -> dict[str, Any]:
        """The older timm name of :attr:`pretrained_cfg`."""
        return self.pretrained_cfg

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in backward instead of keeping them (see the class docstring)."""
        self.grad_checkpointing = boolean("enable", enable)
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @property
    def memory_efficient(self) -> bool:
        """Another name for :attr:`grad_checkpointing` (the builders' ``memory_efficient=True``)."""
        return self.grad_checkpointing

    @memory_efficient.setter
    def memory_efficient(self, value: bool) -> None:
        self.set_grad_checkpointing(boolean("memory_efficient", value))

    def get_classifier(self) -> nn.Module:
        """The final fully connected layer."""
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` classes (Xavier init); 0 leaves none.

        With ``num_classes=0`` the model returns the pooled ``num_features`` features
        (the pre-logits), as timm models do.
        """
        num_classes = non_negative_int("num_classes", num_classes)
        self.num_classes = num_classes
        self.pretrained_cfg["num_classes"] = num_classes
        if num_classes == 0:
            self.fc = nn.Identity()
            return
        weight = self.head_bn.weight  # the new layer goes where the model is
        self.fc = nn.Linear(self.num_features, num_classes, device=weight.device, dtype=weight.dtype)
        init_weights(self.fc)

    def forward_features(self, x: Tensor) -> Tensor:
        """Image -> the activated ``widths[-1]`` feature map before pooling."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{type(self).__name__} expected input of shape (N, {self.in_chans}, H, W), "
                f"got {tuple(x.shape)}"
            )
        recompute = self.grad_checkpointing and torch.is_grad_enabled()
        if recompute:
            features = recomputed(self._stem_and_seqconv1, x, (self.stem, self.seqconv1))
        else:
            features = self._stem_and_seqconv1(x)
        if self.stem_downsize is not None:
            features = _run_block(self.stem_downsize, features, recompute)
        # Every block maps the pair (residual stream, activated features) to a new pair.
        features = self.stages(features)
        x = self.head_drop(features.activated)
        return torch.relu(self.head_bn(self.head_conv(x)))

    def _stem_and_seqconv1(self, x: Tensor) -> SeqConvOutput:
        return self.seqconv1.forward_residual(self.stem(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature map -> global average pool -> fc (or the pooled features)."""
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _run_block(block: nn.Module, features: SeqConvOutput, recompute: bool) -> SeqConvOutput:
    """``block(features)``, under checkpointing when ``recompute``.

    A down-sampling block reads only the activated features, so with recomputation
    only they are handed to it (and kept), not the residual stream too.
    """
    if not recompute:
        return block(features)
    return recomputed(block, features.activated if isinstance(block, DownsamplingBlock) else features)


def _per_stage(name: str, value: int | Sequence[int], stages: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * stages
    value = tuple(value)
    if len(value) != stages:
        raise ValueError(f"{name} must be an int or one value per stage ({stages} values), got {value!r}")
    return value


def _cifar_network(
    architecture: str,
    k: int,
    r: int,
    n: int | Sequence[int],
    *,
    bottleneck: bool = False,
    windowed: bool = True,
    num_classes: int = 10,
    in_chans: int = 3,
    drop_rate: float = 0.1,
    memory_efficient: bool = False,
) -> SeqResNet:
    """The CIFAR template of Table 1, with ``architecture`` as the name it reports."""
    k, r = positive_int("k", k), positive_int("r", r)
    for name, value in (("bottleneck", bottleneck), ("windowed", windowed), ("memory_efficient", memory_efficient)):
        boolean(name, value)
    blocks = _per_stage("n", n, 3)
    cfg = SeqResNetConfig(
        stem=((16, 1),),
        widths=(16 * r, 32 * r, 48 * r),
        k=(k, k, k),
        blocks=blocks,
        bottleneck=bottleneck,
        windowed=windowed,
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
    )
    kind = "SeqResNet-B" if bottleneck else "SeqResNet"
    dense = "" if windowed else ", every SeqConv dense"
    description = f"{kind} k={k}, r={r}, N={blocks}{dense}: the CIFAR template of Table 1"
    model = SeqResNet(cfg, data_config("cifar10", architecture=architecture, num_classes=num_classes,
                                       in_chans=in_chans, description=description))
    model.set_grad_checkpointing(memory_efficient)
    return model


@register_model
def seqresnet_cifar(
    k: int,
    r: int,
    n: int | Sequence[int],
    *,
    bottleneck: bool = False,
    windowed: bool = True,
    num_classes: int = 10,
    in_chans: int = 3,
    drop_rate: float = 0.1,
    memory_efficient: bool = False,
) -> SeqResNet:
    """Any network of the CIFAR template (Table 1): widths ``16r, 32r, 48r``, ``n`` blocks per stage.

    ``k``: channels per group; ``n``: an int or a per-stage triple (Table 5 uses
    ``(1, 2, 1)``); ``bottleneck=True``: SeqResNet-B; ``windowed=False``: every SeqConv
    dense (Table 5, S2); ``drop_rate``: 0.1 as in paper 4.2; ``memory_efficient=True``:
    gradient checkpointing (see :class:`SeqResNet`). The networks of Table 3 have names of
    their own (:func:`seqresnet_k8_r4_n1` and so on); this entry is for any other
    ``k``, ``r``, ``n``: ``create_model("seqresnet_cifar", k=8, r=2, n=1)``.
    """
    return _cifar_network(
        "seqresnet_cifar", k, r, n, bottleneck=bottleneck, windowed=windowed, num_classes=num_classes,
        in_chans=in_chans, drop_rate=drop_rate, memory_efficient=memory_efficient,
    )


def _table3(name: str, k: int, r: int, n: int, bottleneck: bool, kwargs: dict[str, Any]) -> SeqResNet:
    arch = dict(k=k, r=r, n=n, bottleneck=bottleneck)
    # Overriding k, r, n or bottleneck builds another network than the name says: it then
    # reports itself as seqresnet_cifar (create_model("seqresnet_cifar", ...) says so upfront).
    arch.update(kwargs)
    changed = (arch["k"], arch["r"], arch["bottleneck"]) != (k, r, bottleneck) or (
        _per_stage("n", arch["n"], 3) != (n, n, n)
    )
    return _cifar_network("seqresnet_cifar" if changed else name, **arch)


@register_model
def seqresnet_k8_r4_n1(**kwargs: Any) -> SeqResNet:
    """SeqResNet, k=8, r=4, N=1 (Table 3: 1.2M parameters on CIFAR-10; Table 5's S1)."""
    return _table3("seqresnet_k8_r4_n1", 8, 4, 1, False, kwargs)


@register_model
def seqresnet_k16_r10_n1(**kwargs: Any) -> SeqResNet:
    """SeqResNet, k=16, r=10, N=1 (Table 3: 7.6M parameters on CIFAR-10)."""
    return _table3("seqresnet_k16_r10_n1", 16, 10, 1, False, kwargs)


@register_model
def seqresnet_b_k16_r7_n1(**kwargs: Any) -> SeqResNet:
    """SeqResNet-B, k=16, r=7, N=1 (Table 3: 0.8M parameters on CIFAR-10)."""
    return _table3("seqresnet_b_k16_r7_n1", 16, 7, 1, True, kwargs)


@register_model
def seqresnet_b_k32_r12_n3(**kwargs: Any) -> SeqResNet:
    """SeqResNet-B, k=32, r=12, N=3 (Table 3: 6.0M parameters on CIFAR-10)."""
    return _table3("seqresnet_b_k32_r12_n3", 32, 12, 3, True, kwargs)


def seqresnet_imagenet(
    widths: Sequence[int],
    k: Sequence[int],
    blocks: Sequence[int],
    subgroups: Sequence[int] = (1, 1, 1, 1),
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float = 0.0,
    memory_efficient: bool = False,
    architecture: str | None = None,
) -> SeqResNet:
    """A four-stage bottleneck network of Table 2 on 224x224 inputs.

    Stem: Conv3x3 stride 2, Conv3x3, dense SeqConv-B to ``widths[0]``, grouped
    stride-2 downsizing (it replaces ResNet's 7x7 conv and max pool, paper 3.2).
    ``memory_efficient=True`` turns on gradient checkpointing (see :class:`SeqResNet`):
    otherwise B22 keeps about 3 GiB of activations per 32 images at 224x224 (0.5 GiB with it).
    """
    boolean("memory_efficient", memory_efficient)
    cfg = SeqResNetConfig(
        stem=((32, 2), (32, 1)),
        widths=tuple(widths),
        k=tuple(k),
        blocks=tuple(blocks),
        subgroups=tuple(subgroups),
        bottleneck=True,
        stem_downsize=True,
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
    )
    kind = "SeqResNeXt" if any(c > 1 for c in cfg.subgroups) else "SeqResNet-B"
    description = f"{kind}, widths {cfg.widths}, k {cfg.k}, c {cfg.subgroups}, blocks {cfg.blocks}: Table 2"
    model = SeqResNet(cfg, data_config("imagenet", architecture=architecture, num_classes=num_classes,
                                       in_chans=in_chans, description=description))
    model.set_grad_checkpointing(memory_efficient)
    return model


@register_model
def seqresnet_b22(**kwargs: Any) -> SeqResNet:
    """SeqResNet-B22 (Table 2): 11.8M parameters, 2.73 GFLOPs at 224x224."""
    return seqresnet_imagenet((128, 256, 512, 1024), (32, 64, 64, 128), (1, 1, 2, 1),
                              architecture="seqresnet_b22", **kwargs)


@register_model
def seqresnet_b42(**kwargs: Any) -> SeqResNet:
    """SeqResNet-B42 (Table 2): 25.6M parameters, 5.33 GFLOPs at 224x224."""
    return seqresnet_imagenet((128, 256, 512, 1024), (32, 64, 64, 128), (3, 4, 5, 3),
                              architecture="seqresnet_b42", **kwargs)


@register_model
def seqresnext24(**kwargs: Any) -> SeqResNet:
    """SeqResNeXt-24 (Table 2): 26.2M parameters, 4.32 GFLOPs at 224x224, cardinality 8, 8, 4, 4."""
    return seqresnet_imagenet((256, 512, 1024, 2048), (32, 64, 64, 128), (1, 1, 3, 1), (8, 8, 4, 4),
                              architecture="seqresnext24", **kwargs)
