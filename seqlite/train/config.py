"""Everything about one run, in one dataclass: :class:`TrainConfig`, its command line and its checks.

Each field carries its command-line help and its check in its metadata (:func:`option`), so
``seqlite train`` builds one option per field and the two cannot disagree on a default. A field
marked ``identity=True`` is part of what a run *is*: a resumed run must repeat it, and it is
what tells a demo's run from another. Adding an option is adding a field here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .. import checks
from ..checks import InvalidValue
from ..data import DATASETS
from ..registry import list_models
from .devices import AMP_MODES, default_workers, device_name
from .errors import ConfigError
from .recipe import RECIPES, run_recipe

__all__ = ["IDENTITY", "TrainConfig", "option"]


def _registered_model(name: str, value: Any) -> str:
    if value not in list_models():
        raise InvalidValue(name, value, f"must be a registered model name (seqlite.list_models(): "
                                        f"{', '.join(list_models())})")
    return value


def _folder_name(name: str, value: Any) -> str:
    if not str(value).strip():
        raise InvalidValue(name, value, "must name a folder (the current folder would take the run's files)")
    return str(value)


def option(default: Any = None, help: str = "", *, factory=None, identity: bool = False, **cli: Any) -> Any:
    """A :class:`TrainConfig` field with its command-line help and check (``seqlite train`` reads them).

    ``cli`` may hold ``check`` (``check(name, value)`` returns the value or raises
    :class:`~seqlite.checks.InvalidValue`, see :mod:`seqlite.checks`), ``choices``, ``metavar`` and
    ``flag`` (the option's name when it is not ``--field-name``). ``identity``: the field is part of
    what the run is (a resume must repeat it).
    """
    metadata = {"help": help, "identity": identity, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Everything about one run. ``None`` means "the recipe's value".

    Each field's metadata holds the help text and the check of the ``seqlite train`` option
    built from it, so the command line and this class cannot disagree on defaults.
    """

    model: str = option("seqresnet_k8_r4_n1", "a registered model name (seqlite.list_models())",
                        check=_registered_model, identity=True)
    model_args: dict[str, Any] = option(
        factory=dict, help="overrides for the model builder, e.g. k=16,r=3 or n=(1,2,1)", metavar="K=V,...",
        identity=True)
    dataset: str = option("digits", "digits: the embedded 8x8 digits (no download)", choices=DATASETS, identity=True)
    data_dir: str = option(
        factory=lambda: os.environ.get("SEQLITE_DATA_DIR", "data"),
        help="where datasets are read from / downloaded to (default: $SEQLITE_DATA_DIR or ./data)")
    download: bool = option(True, "never download; stop if the dataset is not in --data-dir", flag="--no-download")
    verify_data: bool = option(
        True, "skip the MD5 check of the CIFAR files (for subsets or re-packed copies). The files are still read by "
        "a restricted loader that builds only arrays, lists, strings and numbers, so they cannot run code, and "
        "labels must be class numbers; the images themselves are not checked", flag="--no-verify-data")
    holdout: int = option(0, "hold out N training images and evaluate on them (paper 4.1: 5000)",
                          check=checks.non_negative_int, metavar="N", identity=True)
    subset: int | None = option(None, "train on N training images only, a fixed random choice (quick experiments)",
                                check=checks.positive_int, metavar="N", identity=True)
    recipe: str = option(
        "paper",
        "paper: SGD Nesterov 0.9, wd 1e-4, lr 0.1, CIFAR 300 epochs batch 64 lr/10 at 50% and 75%, ImageNet 100 "
        "epochs batch 256 lr/10 every 30; short (CIFAR, meant to fit a Colab session): 40 epochs batch 128, "
        "lr 0.2 after 3 warm-up epochs, cosine, wd 5e-4; quick: paper optimiser, short cosine schedule",
        choices=RECIPES,
        identity=True)
    epochs: int | None = option(None, "default: the recipe's", check=checks.positive_int, identity=True)
    batch_size: int | None = option(None, "global batch size, split over torchrun processes (default: the recipe's)",
                                    check=checks.positive_int, identity=True)
    lr: float | None = option(None, "initial learning rate (default: the recipe's, 0.1)", check=checks.positive_finite,
                              identity=True)
    seed: int = option(0, "seeds the weights, data order, dropout and augmentation", check=checks.seed, identity=True)
    device: str = option("auto", "auto (CUDA when available), cpu, cuda, cuda:1, mps, ...", check=device_name)
    amp: str = option(
        "auto", "mixed precision: auto = bf16 on GPUs of compute capability >= 8.0 (A100, H100, RTX 30xx+), fp16 "
        "with a loss scaler on older ones (T4, V100), off (float32; TF32 on CUDA) on CPUs", choices=AMP_MODES,
        identity=True)
    channels_last: bool = option(False, "channels_last memory format (faster on GPUs)")
    compile: bool = option(
        False, "torch.compile the model. The first epoch pays the compilation: about a minute on a GPU, several "
        "minutes on a CPU; the smaller last batch of an epoch compiles once more (a second, shorter pause)")
    deterministic: bool = option(
        False, "deterministic GPU kernels (cuDNN deterministic, no autotuning, deterministic algorithms, cuBLAS "
        "workspace): a resumed GPU run then matches an uninterrupted one; slower. CPU runs are exact anyway")
    gpu_data: bool = option(
        False, "CIFAR only: keep the images on the device as one uint8 tensor and crop, flip and normalise there "
        "in batches (no loader processes; for GPUs fed by few CPU cores, as on Colab)")
    time_steps: int = option(10, "time this many warm training steps before the first epoch and print the "
                                 "projected time per epoch and for the run (0: skip)", check=checks.non_negative_int,
                             metavar="N")
    sync_bn: bool = option(False, "SyncBatchNorm across torchrun processes (CUDA only)")
    workers: int | None = option(None, "data loader processes (default: 0 for the in-memory digits, else one per "
                                       "CPU this process may use, up to 8)", check=checks.non_negative_int)
    out: str | None = option(None, "output folder (default: runs/MODEL-DATASET)", check=_folder_name)
    resume: bool = option(False, "continue the run in OUT from its last.pt (start afresh if OUT holds no run)")
    overwrite: bool = option(False, "start afresh even if OUT holds a run (its checkpoints and metrics are deleted)")
    progress: bool = option(True, "no progress bars", flag="--no-progress")

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's values filled in and every field checked."""
        for f in fields(self):
            value = getattr(self, f.name)
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                raise ConfigError(f.name, f"{f.name} must be one of {', '.join(f.metadata['choices'])}; got {value!r}")
        recipe = run_recipe(self)
        cfg = replace(
            self,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            workers=default_workers(self.dataset) if self.workers is None else self.workers,
            model_args=dict(self.model_args),
            out=f"runs/{self.model}-{self.dataset}" if self.out is None else str(self.out),
        )
        for f in fields(cfg):
            value, check = getattr(cfg, f.name), f.metadata.get("check")
            if check is not None and value is not None:
                try:
                    setattr(cfg, f.name, check(f.name, value))
                except InvalidValue as err:
                    raise ConfigError(f.name, str(err)) from None
        if cfg.resume and cfg.overwrite:
            raise ConfigError("overwrite", "--resume and --overwrite exclude each other: continue the run in out, "
                                           "or replace it")
        return cfg

    @classmethod
    def field_metadata(cls, name: str) -> dict[str, Any]:
        """The help, check, flag... of the field ``name`` (the command line reads them)."""
        return dict(next(f.metadata for f in fields(cls) if f.name == name))

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line option of the field ``name``: ``--batch-size``, ``--no-progress``..."""
        return cls.field_metadata(name).get("flag", "--" + name.replace("_", "-"))


# The fields a resumed run must repeat, and that tell one run from another.
IDENTITY = tuple(f.name for f in fields(TrainConfig) if f.metadata["identity"])
