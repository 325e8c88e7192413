"""SeqResNet, SeqResNet-B and SeqResNeXt (paper 3.2, Table 1 and Table 2).

One family, one class: :class:`SeqResNet` is built from a :class:`SeqResNetConfig`.
The CIFAR template (Table 1) and the ImageNet networks (Table 2) are configurations
of it; :func:`seqresnet_cifar` and :func:`seqresnet_imagenet` build them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .blocks import DownsamplingBlock, ResidualBlock, init_weights
from .layers import SeqConv2d, SeqConvOutput

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SeqResNet",
    "SeqResNetConfig",
    "seqresnet_cifar",
    "seqresnet_imagenet",
    "seqresnet_b22",
    "seqresnet_b42",
    "seqresnext24",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SeqResNetConfig:
    """Everything that tells one SeqResNet from another.

    ``stem`` lists the plain Conv3x3-BN-ReLU layers before the first SeqConv as
    ``(out_channels, stride)``. ``widths``, ``k``, ``subgroups`` and ``blocks`` are per
    stage. ``stem_downsize`` adds the ImageNet stem's grouped stride-2 conv after the
    first (dense) SeqConv.
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
    input_size: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = CIFAR_MEAN
    std: tuple[float, ...] = CIFAR_STD
    name: str = field(default="seqresnet", compare=False)
    memory_efficient: bool = field(default=False, compare=False)

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
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in self.blocks):
            raise ValueError(f"blocks (n) must be non-negative integers, got {self.blocks!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")
        if not isinstance(self.memory_efficient, bool):
            raise ValueError(f"memory_efficient must be True or False, got {self.memory_efficient!r}")

    @property
    def default_cfg(self) -> dict:
        return {
            "input_size": (self.in_chans, *self.input_size[1:]),
            "mean": self.mean,
            "std": self.std,
            "num_classes": self.num_classes,
        }


class _Stem(nn.Sequential):
    def __init__(self, in_chans: int, layers: Sequence[tuple[int, int]]):
        modules: list[nn.Module] = []
        for out, stride in layers:
            modules += [nn.Conv2d(in_chans, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            in_chans = out
        super().__init__(*modules)


class _Stage(nn.Sequential):
    """One stage's blocks, run in order; with ``memory_efficient`` each is recomputed in backward."""

    memory_efficient = False  # SeqResNet sets it on every stage

    def forward(self, features: SeqConvOutput) -> SeqConvOutput:
        recompute = self.memory_efficient and torch.is_grad_enabled()
        for block in self:
            features = _run_block(block, features, recompute)
        return features


class SeqResNet(nn.Module):
    """A residual network whose convolutions are SeqConv layers.

    Layout: stem convs -> dense SeqConv (no dropout) [-> grouped downsizing] ->
    stage 1 residual blocks -> (down-sampling block -> residual blocks) per further
    stage -> dropout, Conv1x1-BN-ReLU -> global average pool -> fc.

    ``cfg.memory_efficient`` (also settable later as the attribute of that name) keeps
    only each block's input for backward and recomputes the block's activations
    while the gradient passes through it (``torch.utils.checkpoint``, as the
    memory-efficient DenseNet implementations do; the stem and the first SeqConv are
    one segment). For B22 at 224x224 that keeps 0.17x of the activations and needs
    0.44x the peak tensor memory, for 1.2-1.3x the time per step (one more forward
    pass; benchmarks/RESULTS.md). The numbers are the same: dropout masks are redrawn
    from the saved random state and BatchNorm running statistics are updated once, not
    again by the recomputation.
    """

    def __init__(self, cfg: SeqResNetConfig):
        super().__init__()
        self.cfg = cfg
        self.default_cfg = cfg.default_cfg
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
        self.memory_efficient = cfg.memory_efficient
        self.num_features = widths[-1]
        self.head_drop = nn.Dropout2d(cfg.drop_rate) if cfg.drop_rate > 0 else nn.Identity()
        self.head_conv = nn.Conv2d(widths[-1], widths[-1], 1, bias=False)
        self.head_bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], cfg.num_classes)

        init_weights(self.stem)
        init_weights(self.seqconv1)
        init_weights(self.head_conv)
        init_weights(self.head_bn)
        init_weights(self.fc)
        for m in self.modules():
            if isinstance(m, ResidualBlock):
                m.reset_parameters()

    def forward_features(self, x: Tensor) -> Tensor:
        """Image -> the activated ``widths[-1]`` feature map before pooling."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{type(self).__name__} expected input of shape (N, {self.in_chans}, H, W), "
                f"got {tuple(x.shape)}"
            )
        recompute = self.memory_efficient and torch.is_grad_enabled()
        if recompute:
            features = _recomputed(self._stem_and_seqconv1, x, (self.stem, self.seqconv1))
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

    @property
    def memory_efficient(self) -> bool:
        """Recompute activations in backward instead of keeping them (see the class docstring)."""
        return self._memory_efficient

    @memory_efficient.setter
    def memory_efficient(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ValueError(f"memory_efficient must be True or False, got {value!r}")
        self._memory_efficient = value
        for stage in self.stages:
            stage.memory_efficient = value

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
    return _recomputed(block, features.activated if isinstance(block, DownsamplingBlock) else features)


def _recomputed(fn: Callable, features: Tensor | SeqConvOutput, modules: tuple[nn.Module, ...] | None = None):
    """``fn(features)`` under ``torch.utils.checkpoint``: only ``features`` is kept, the rest recomputed.

    ``modules``: those ``fn`` runs (default: ``fn`` itself), whose BatchNorm statistics
    the recomputation must leave as the forward pass left them.
    """
    modules = (fn,) if modules is None else modules
    return checkpoint(
        fn,
        features,
        use_reentrant=False,
        preserve_rng_state=True,
        context_fn=lambda: (nullcontext(), _batchnorm_statistics_kept(modules)),
    )


@contextmanager
def _batchnorm_statistics_kept(modules: tuple[nn.Module, ...]) -> Iterator[None]:
    """Undo what a recomputation does to BatchNorm running statistics (forward already updated them)."""
    norms = [
        m
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    kept = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, kept):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)


def _per_stage(name: str, value: int | Sequence[int], stages: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * stages
    value = tuple(value)
    if len(value) != stages:
        raise ValueError(f"{name} must be an int or one value per stage ({stages} values), got {value!r}")
    return value


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
    """The CIFAR template of Table 1: widths ``16r, 32r, 48r`` and ``n`` blocks per stage.

    ``n`` is an int or a per-stage triple (Table 5 uses ``(1, 2, 1)``);
    ``windowed=False`` makes every SeqConv dense (Table 5, S2);
    ``memory_efficient=True`` recomputes activations in backward (see :class:`SeqResNet`).
    """
    for name, value in (("k", k), ("r", r)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("bottleneck", bottleneck), ("windowed", windowed)):
        if not isinstance(value, bool):  # a string such as "false" would silently count as True
            raise ValueError(f"{name} must be True or False, got {value!r}")
    cfg = SeqResNetConfig(
        stem=((16, 1),),
        widths=(16 * r, 32 * r, 48 * r),
        k=(k, k, k),
        blocks=_per_stage("n", n, 3),
        bottleneck=bottleneck,
        windowed=windowed,
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        memory_efficient=memory_efficient,
        name=f"seqresnet{'_b' if bottleneck else ''}_k{k}_r{r}",
    )
    return SeqResNet(cfg)


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
) -> SeqResNet:
    """A four-stage bottleneck network of Table 2 on 224x224 inputs.

    Stem: Conv3x3 stride 2, Conv3x3, dense SeqConv-B to ``widths[0]``, grouped
    stride-2 downsizing (it replaces ResNet's 7x7 conv and max pool, paper 3.2).
    ``memory_efficient=True`` recomputes activations in backward (see :class:`SeqResNet`):
    otherwise B22 keeps about 3 GiB of activations per 32 images at 224x224 (0.5 GiB with it).
    """
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
        memory_efficient=memory_efficient,
        input_size=(3, 224, 224),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    return SeqResNet(cfg)


def seqresnet_b22(**overrides) -> SeqResNet:
    """SeqResNet-B22 (Table 2): 11.8M parameters."""
    return seqresnet_imagenet((128, 256, 512, 1024), (32, 64, 64, 128), (1, 1, 2, 1), **overrides)


def seqresnet_b42(**overrides) -> SeqResNet:
    """SeqResNet-B42 (Table 2): 25.6M parameters."""
    return seqresnet_imagenet((128, 256, 512, 1024), (32, 64, 64, 128), (3, 4, 5, 3), **overrides)


def seqresnext24(**overrides) -> SeqResNet:
    """SeqResNeXt-24 (Table 2): 26.2M parameters, cardinality 8, 8, 4, 4."""
    return seqresnet_imagenet(
        (256, 512, 1024, 2048), (32, 64, 64, 128), (1, 1, 3, 1), (8, 8, 4, 4), **overrides
    )
