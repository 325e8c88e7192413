"""seqlite: Sequentially Aggregated Convolutional Networks (Huang et al., 2019) in PyTorch."""

from . import paper, viz  # viz: plotting helpers; matplotlib is imported on first use
from .blocks import DownsamplingBlock, ResidualBlock, init_weights
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .complexity import count_flops, count_flops_by_module, count_params
from .data import DatasetNotFoundError, build_datasets
from .depths import ReceptiveFields, path_length_counts, path_length_summary, receptive_fields
from .layers import (
    GroupTransform,
    HadamardSeqConv2d,
    SeqConv2d,
    SeqConvOutput,
    SeqConvSpec,
    group_views,
    seqconv_param_count,
    set_fast,
    window_mask,
)
from .registry import create_model, is_model, list_models, register_model
from .seqresnet import (
    SeqResNet,
    SeqResNetConfig,
    seqresnet_b22,
    seqresnet_b42,
    seqresnet_cifar,
    seqresnet_imagenet,
    seqresnext24,
)
from .train import TrainConfig, evaluate_checkpoint
from .twin import PlainConv2d, plain_twin

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DatasetNotFoundError",
    "TrainConfig",
    "build_datasets",
    "evaluate_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "DownsamplingBlock",
    "GroupTransform",
    "HadamardSeqConv2d",
    "PlainConv2d",
    "ReceptiveFields",
    "ResidualBlock",
    "SeqConv2d",
    "SeqConvOutput",
    "SeqConvSpec",
    "SeqResNet",
    "SeqResNetConfig",
    "count_flops",
    "count_flops_by_module",
    "count_params",
    "create_model",
    "group_views",
    "init_weights",
    "is_model",
    "list_models",
    "paper",
    "path_length_counts",
    "path_length_summary",
    "plain_twin",
    "receptive_fields",
    "register_model",
    "seqconv_param_count",
    "seqresnet_b22",
    "seqresnet_b42",
    "seqresnet_cifar",
    "seqresnet_imagenet",
    "seqresnext24",
    "set_fast",
    "viz",
    "window_mask",
]
