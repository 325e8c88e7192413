"""The paper's reported numbers (Tables 2-5) as data, and a run's results beside them.

Every row is a :class:`PaperResult` that cites its table. The values are the paper's, as
printed: parameters in millions, FLOPs in G (the paper's convention; see notebook 06 for how
our multiply-accumulate counts relate to them), errors in percent. C10+ / C100+ are CIFAR-10
/ CIFAR-100 with the standard mirror + shift augmentation (paper 4.1). A ``None`` is a value
the paper does not give ("-" in its tables, or a column the table does not have).

Rows of the paper's own models name the registered ``seqlite`` model that builds them
(:attr:`PaperResult.registry_name` and :attr:`PaperResult.model_args`, or the whole call as
text: :meth:`PaperResult.create_model_call`); :func:`lookup` finds a row by those names, and
:func:`compare_run` puts a training run's ``metrics.csv``
(final and best test error) beside the row of the model and dataset it trained::

    >>> from seqlite import paper
    >>> paper.lookup("seqresnet_k8_r4_n1", dataset="cifar10").c10_error
    4.78
    >>> paper.lookup("seqresnet_k8_r4_n1", {"r": 3, "n": (1, 2, 1), "windowed": False}).label
    'S2 k=8, r=3, N={1, 2, 1}, dense (Table 5)'
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .train.run_folder import RunFolder, read_metrics

__all__ = [
    "DATASETS",
    "RESULTS",
    "PaperResult",
    "RunComparison",
    "compare_run",
    "lookup",
    "markdown_table",
    "results",
]

# The paper's datasets, keyed by seqlite's dataset names.
DATASETS = {"cifar10": "C10+", "cifar100": "C100+", "imagenet": "ImageNet"}
_CIFAR_EPOCHS = 300  # paper 4.2: every CIFAR model
# Builder arguments that do not change the architecture a row describes.
_NOT_ARCHITECTURE = frozenset({"num_classes", "in_chans", "drop_rate", "memory_efficient", "pretrained",
                               "checkpoint_path"})


@dataclass(frozen=True)
class PaperResult:
    """One row of one of the paper's tables, as printed.

    ``model`` and ``setting`` are the table's words (``setting`` rewritten in plain text
    where the text extraction garbled it). ``epochs``: CIFAR models were all trained for 300
    epochs (paper 4.2); on ImageNet the paper reports its models' best error in the first 90
    epochs and, in rows marked ``*``, after 100 epochs (Table 4); ``None`` where the paper
    does not say (a baseline's own report). ``source``: the reference a baseline's number
    comes from (the table cites it at the first row of each family).
    """

    table: str
    model: str
    setting: str = ""
    params: float | None = None  # millions
    gflops: float | None = None
    c10_error: float | None = None
    c100_error: float | None = None
    top1_error: float | None = None
    top5_error: float | None = None
    epochs: int | None = None
    source: str = ""
    ours: bool = False
    registry_name: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def label(self) -> str:
        """``model setting (table)``, e.g. ``SeqResNet k=8, r=4, N=1 (Table 3)``."""
        return f"{f'{self.model} {self.setting}'.strip()} ({self.table})"

    def error(self, dataset: str) -> float | None:
        """Top-1 error (%) on ``dataset`` ("cifar10", "cifar100" or "imagenet"), or ``None``."""
        return getattr(self, _error_field(dataset))

    def create_model(self, **overrides: Any):
        """Build this row's model with ``seqlite.create_model`` (``overrides`` win)."""
        if self.registry_name is None:
            raise ValueError(f"{self.label} is not one of the paper's models; seqlite does not build it")
        from .registry import create_model

        return create_model(self.registry_name, **{**self.model_args, **overrides})

    def create_model_call(self, **overrides: Any) -> str:
        """The ``create_model(...)`` call that builds this row's network, as source text.

        E.g. ``create_model("seqresnet_k8_r4_n1", k=16, r=3, n=(1, 2, 2))`` for Table 5's S4
        (paper 4.5): the registered name with the row's :attr:`model_args` and ``overrides``
        (which win, as in :meth:`create_model`), each value written with ``repr``, so that
        evaluating the text with ``seqlite.create_model`` in scope builds what
        :meth:`create_model` builds.
        """
        if self.registry_name is None:
            raise ValueError(f"{self.label} is not one of the paper's models; seqlite does not build it")
        args = {**self.model_args, **overrides}
        arguments = "".join(f", {key}={value!r}" for key, value in args.items())
        return f'create_model("{self.registry_name}"{arguments})'


def _error_field(dataset: str) -> str:
    fields = {"cifar10": "c10_error", "cifar100": "c100_error", "imagenet": "top1_error"}
    if dataset not in fields:
        raise ValueError(f"dataset must be one of {', '.join(fields)} (the paper's datasets); got {dataset!r}")
    return fields[dataset]


def _t3(model, setting, params, c10, c100, *, source="", registry_name=None) -> PaperResult:
    ours = model.startswith("Seq")
    return PaperResult("Table 3", model, setting, params, None, c10, c100, source=source, ours=ours,
                       epochs=_CIFAR_EPOCHS if ours else None, registry_name=registry_name)


def _t4(model, params, gflops, top1, top5, *, epochs=None, source="", registry_name=None) -> PaperResult:
    ours = model.startswith("Seq")
    if ours and epochs is None:
        epochs = 90  # "the best validation error of the first 90 epochs" (4.2)
    return PaperResult("Table 4", model, "", params, gflops, top1_error=top1, top5_error=top5, epochs=epochs,
                       source=source, ours=ours, registry_name=registry_name)


def _t5(name, k, r, n, windowed, params, c10) -> PaperResult:
    n_text = str(n) if isinstance(n, int) else "{" + ", ".join(map(str, n)) + "}"
    args: dict[str, Any] = {}
    if (k, r, n) != (8, 4, 1):
        args.update(k=k, r=r, n=n)
    if not windowed:
        args["windowed"] = False
    return PaperResult("Table 5", name, f"k={k}, r={r}, N={n_text}" + ("" if windowed else ", dense"),
                       params, c10_error=c10, epochs=_CIFAR_EPOCHS, ours=True,
                       registry_name="seqresnet_k8_r4_n1", model_args=args)


RESULTS: tuple[PaperResult, ...] = (
    # Table 2: the ImageNet models' complexity (224x224 input).
    PaperResult("Table 2", "SeqResNeXt-24", "", 26.2, 4.32, ours=True, registry_name="seqresnext24"),
    PaperResult("Table 2", "SeqResNet-B42", "", 25.6, 5.33, ours=True, registry_name="seqresnet_b42"),
    PaperResult("Table 2", "SeqResNet-B22", "", 11.8, 2.73, ours=True, registry_name="seqresnet_b22"),
    # Table 3: error rates (%) and model sizes on CIFAR, in the table's order.
    _t3("ResNet-110", "", 1.7, 6.61, None, source="[10]"),
    _t3("ResNet-110", "", 1.7, 6.41, 27.22, source="reported by [15]"),
    _t3("Wide ResNet-16", "8x width", 11.0, 4.81, 22.07, source="[40]"),
    _t3("Wide ResNet-28", "10x width", 36.5, 4.17, 20.5, source="[40]"),
    _t3("ResNet-164 (pre-activation)", "", 1.7, 5.46, 24.33, source="[11]"),
    _t3("ResNet-1001 (pre-activation)", "", 10.2, 4.62, 22.71, source="[11]"),
    _t3("DenseNet", "L=40, k=12", 1.1, 5.24, 24.42, source="[14]"),
    _t3("SparseNet", "L=40, k=12", 0.8, 5.47, 24.48, source="[43]"),
    _t3("SeqResNet", "k=8, r=4, N=1", 1.2, 4.78, 22.65, registry_name="seqresnet_k8_r4_n1"),
    _t3("DenseNet", "L=100, k=12", 7.2, 4.1, 20.2, source="[14]"),
    _t3("SparseNet", "L=100, k=16, 32, 64", 7.2, 4.21, 19.89, source="[43]"),
    _t3("SeqResNet", "k=16, r=10, N=1", 7.6, 3.97, 19.72, registry_name="seqresnet_k16_r10_n1"),
    _t3("DenseNet-BC", "L=100, k=12", 0.8, 4.51, 22.27, source="[14]"),
    _t3("SparseNet-BC", "L=100, k=24", 1.5, 4.49, 22.71, source="[43]"),
    _t3("SeqResNet-B", "k=16, r=7, N=1", 0.8, 4.3, 20.76, registry_name="seqresnet_b_k16_r7_n1"),
    _t3("DenseNet-BC", "L=100, k=16, 32, 64", 7.9, 4.02, 19.55, source="[43]"),  # marked *: reported by [43]
    _t3("SparseNet-BC", "L=100, k=16, 32, 64", 4.4, 4.34, 19.9, source="[43]"),
    _t3("SeqResNet-B", "k=32, r=12, N=3", 6.0, 3.72, 18.51, registry_name="seqresnet_b_k32_r12_n3"),
    # Table 4: validation error on ImageNet (single 224 crop); rows marked * trained 100 epochs.
    _t4("ResNet-101", 44.5, 7.34, 22.44, 6.21, source="[10]"),
    _t4("DenseNet-264", 33.3, 5.52, 22.15, 6.12, source="[14]"),
    _t4("ResNet-152", 60.2, 10.82, 22.16, 6.16, source="[10]"),
    _t4("SeqResNet-B42", 25.6, 5.33, 22.06, 5.98, registry_name="seqresnet_b42"),
    _t4("SeqResNeXt-24", 26.2, 4.32, 21.92, 5.82, registry_name="seqresnext24"),
    _t4("ResNet-50", 25.6, 3.86, 24.01, 7.02, source="[10]"),
    _t4("DenseNet-169", 14.1, 3.22, 23.80, 6.85, source="[14]"),
    _t4("SeqResNet-B22", 11.8, 2.73, 23.67, 6.78, registry_name="seqresnet_b22"),
    _t4("ResNet-50", 25.6, 3.86, 23.9, None, epochs=100, source="[10]"),
    _t4("SeqResNet-B22", 11.8, 2.73, 23.35, 6.68, epochs=100, registry_name="seqresnet_b22"),
    _t4("ResNeXt-50", 25.0, 4.00, 22.2, None, epochs=100, source="[38]"),
    _t4("ResNet-101", 44.5, 7.34, 22.0, None, epochs=100, source="[10]"),
    _t4("SeqResNet-B42", 25.6, 5.33, 21.75, 5.89, epochs=100, registry_name="seqresnet_b42"),
    _t4("SeqResNeXt-24", 26.2, 4.32, 21.50, 5.73, epochs=100, registry_name="seqresnext24"),
    # Table 5: hyperparameters on C10+. The "windowed aggregation" column: S2 alone is dense (4.5).
    _t5("S1", 8, 4, 1, True, 1.2, 4.78),
    _t5("S2", 8, 3, (1, 2, 1), False, 1.2, 4.90),
    _t5("S3", 16, 4, 1, True, 1.3, 4.99),
    _t5("S4", 16, 3, (1, 2, 2), True, 1.3, 5.15),
)


def results(table: int | str | None = None, *, ours: bool | None = None) -> list[PaperResult]:
    """The rows of ``table`` (2, 3, 4, 5 or "Table 3"; ``None``: all), optionally only ours / only baselines."""
    if table is not None:
        name = table if isinstance(table, str) else f"Table {table}"
        if name not in {r.table for r in RESULTS}:
            raise ValueError(f"table must be one of 2, 3, 4, 5 (the paper's results tables); got {table!r}")
    return [r for r in RESULTS if (table is None or r.table == name) and (ours is None or r.ours == ours)]


_CIFAR_NAME = re.compile(r"seqresnet(?P<b>_b)?_k(?P<k>\d+)_r(?P<r>\d+)_n(?P<n>\d+)")


def _architecture(name: str, model_args: Mapping[str, Any] | None) -> tuple:
    """What identifies an architecture: the registered name with its overrides applied.

    CIFAR models (``seqresnet[_b]_k{k}_r{r}_n{n}`` or ``seqresnet_cifar``) reduce to
    ``(bottleneck, k, r, n per stage, windowed)``, so ``n=1`` and ``n=(1, 1, 1)`` are the same
    and ``create_model("seqresnet_k8_r4_n1", k=16)`` is the k=16 network.
    """
    args = {k: v for k, v in dict(model_args or {}).items() if k not in _NOT_ARCHITECTURE}
    match = _CIFAR_NAME.fullmatch(name)
    if match or name == "seqresnet_cifar":
        cfg: dict[str, Any] = {"bottleneck": False, "windowed": True}
        if match:
            cfg.update(bottleneck=bool(match["b"]), k=int(match["k"]), r=int(match["r"]), n=int(match["n"]))
        cfg.update(args)
        n = cfg.get("n")
        cfg["n"] = (n,) * 3 if isinstance(n, int) else tuple(n) if n is not None else None
        return ("cifar", cfg["bottleneck"], cfg.get("k"), cfg.get("r"), cfg["n"], cfg["windowed"],
                tuple(sorted((k, repr(v)) for k, v in cfg.items()
                             if k not in {"bottleneck", "k", "r", "n", "windowed"})))
    return (name, tuple(sorted((k, repr(tuple(v) if isinstance(v, list) else v)) for k, v in args.items())))


def lookup(
    model: str,
    model_args: Mapping[str, Any] | None = None,
    *,
    dataset: str | None = None,
    table: int | str | None = None,
    epochs: int | None = None,
) -> PaperResult:
    """The paper's row for registered model ``model`` built with ``model_args``.

    ``dataset`` keeps rows that report an error on it; ``table`` and ``epochs`` (ImageNet: 90
    or 100) choose between rows of the same network. When several rows remain (Table 3's
    SeqResNet k=8, r=4, N=1 is also Table 5's S1), the first in table order is returned.
    Raises ``ValueError`` when the paper reports nothing for that network.
    """
    if dataset is not None:
        _error_field(dataset)
    key = _architecture(model, model_args)
    rows = [r for r in (results(table) if table is not None else RESULTS)
            if r.registry_name is not None and _architecture(r.registry_name, r.model_args) == key]
    if dataset is not None:
        rows = [r for r in rows if r.error(dataset) is not None]
    if epochs is not None:
        rows = [r for r in rows if r.epochs == epochs]
    if not rows:
        known = sorted({r.registry_name for r in RESULTS if r.registry_name})
        where = f" on {dataset}" if dataset else ""
        raise ValueError(
            f"the paper reports no results{where} for model {model!r} with model_args {dict(model_args or {})!r}"
            f"{f', table {table!r}' if table else ''}{f', {epochs} epochs' if epochs else ''}; "
            f"its models are {', '.join(known)} (Table 5's settings as model_args)"
        )
    return rows[0]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _paper_number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: Iterable[PaperResult] | None = None) -> str:
    """A markdown table of ``rows`` (default: all), with only the columns they fill.

    The "seqlite model" column holds :meth:`PaperResult.create_model_call`: the exact call
    that builds the row's network (Table 5's S2-S4 are the S1 model with overrides, paper 4.5).
    """
    rows = list(RESULTS if rows is None else rows)
    columns = [
        ("table", lambda r: r.table),
        ("model", lambda r: r.model + (f" {r.source}" if r.source else "")),
        ("setting", lambda r: r.setting),
        ("params (M)", lambda r: _paper_number(r.params, 1)),
        ("GFLOPs", lambda r: _paper_number(r.gflops)),
        ("C10+ error (%)", lambda r: _paper_number(r.c10_error)),
        ("C100+ error (%)", lambda r: _paper_number(r.c100_error)),
        ("top-1 error (%)", lambda r: _paper_number(r.top1_error)),
        ("top-5 error (%)", lambda r: _paper_number(r.top5_error)),
        ("epochs", lambda r: "" if r.epochs is None else str(r.epochs)),
        ("seqlite model", lambda r: f"`{r.create_model_call()}`" if r.registry_name else ""),
    ]
    cells = [[get(r) for _, get in columns] for r in rows]
    keep = [j for j in range(len(columns)) if any(row[j] for row in cells)]
    lines = ["| " + " | ".join(columns[j][0] for j in keep) + " |", "|" + "---|" * len(keep)]
    lines += ["| " + " | ".join(row[j] for j in keep) + " |" for row in cells]
    return "\n".join(lines)


@dataclass(frozen=True)
class RunComparison:
    """A training run's final and best test error beside the paper's row (:func:`compare_run`)."""

    row: PaperResult
    dataset: str  # the paper's dataset compared with
    run: str
    run_dataset: str | None  # what the run trained on, when its config.json says
    epochs: int
    final_error: float
    best_error: float
    best_epoch: int
    final_top5_error: float | None = None

    @property
    def paper_error(self) -> float | None:
        return self.row.error(self.dataset)

    @property
    def paper_top5_error(self) -> float | None:
        return self.row.top5_error if self.dataset == "imagenet" else None

    @property
    def same_task(self) -> bool:
        """Whether the run trained on the dataset of the paper's number (unknown counts as yes)."""
        return self.run_dataset in (None, self.dataset)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.row.label,
            "table": self.row.table,
            "dataset": self.dataset,
            "run": self.run,
            "run_dataset": self.run_dataset,
            "paper_error": self.paper_error,
            "paper_top5_error": self.paper_top5_error,
            "paper_epochs": self.row.epochs,
            "final_error": self.final_error,
            "final_top5_error": self.final_top5_error,
            "best_error": self.best_error,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
        }

    def to_markdown(self) -> str:
        top5 = self.dataset == "imagenet"
        trained_on = self.run_dataset or DATASETS[self.dataset]
        header = "| | dataset | epochs | error (%) |" + (" top-5 error (%) |" if top5 else "")
        lines = [header, "|---|---|---|---|" + ("---|" if top5 else "")]

        def line(name: str, data: str, epochs: object, err: str, err5: str = "") -> None:
            lines.append(f"| {name} | {data} | {epochs} | {err} |" + (f" {err5} |" if top5 else ""))

        line(f"paper, {self.row.label}", DATASETS[self.dataset], self.row.epochs or "",
             _fmt(self.paper_error), _fmt(self.paper_top5_error))
        line("this run, final epoch", trained_on, self.epochs, _fmt(self.final_error), _fmt(self.final_top5_error))
        line(f"this run, best epoch ({self.best_epoch}, chosen on the test set)", trained_on, self.best_epoch,
             _fmt(self.best_error))
        if not self.same_task:
            lines.append("")
            lines.append(f"The run trained on {self.run_dataset}, not {DATASETS[self.dataset]}: "
                         "the two errors are not comparable.")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        return self.to_markdown()


def compare_run(
    run: str | os.PathLike,
    model: str | None = None,
    dataset: str | None = None,
    *,
    model_args: Mapping[str, Any] | None = None,
    row: PaperResult | None = None,
    run_dataset: str | None = None,
) -> RunComparison:
    """Put a run's final and best test error beside the paper's row for its model and dataset.

    ``run`` is a run folder (holding ``metrics.csv``) or the ``metrics.csv`` itself. The
    model, its ``model_args`` and the dataset are read from the run's settings beside it
    (``config.json``, else its checkpoints) when there are any; arguments given here win.
    ``dataset`` names the paper's column (``cifar10``, ``cifar100``, ``imagenet``): give it to set
    a run on another dataset (e.g. the digits of quick mode) beside that column anyway; the comparison then says the two
    are not comparable. ``row`` picks the paper's row directly instead of :func:`lookup`.
    ``run_dataset`` says what the run trained on when no ``config.json`` says it.

    The *final* error is the last epoch's, as the paper reports for CIFAR (4.1); the *best*
    is chosen on the test set itself, so it flatters the run.
    """
    path = Path(run)
    metrics_path = RunFolder(path).metrics if path.is_dir() else path
    if not metrics_path.is_file():
        raise ValueError(f"run must be a run folder with a metrics.csv or a metrics.csv file; got {str(run)!r}")
    config = RunFolder(metrics_path.parent).read_config() or {}
    run_dataset = run_dataset if run_dataset is not None else config.get("dataset")
    model = model if model is not None else config.get("model")
    model_args = model_args if model_args is not None else config.get("model_args") or {}
    dataset = dataset if dataset is not None else run_dataset
    if dataset not in DATASETS:
        raise ValueError(
            f"dataset must be one of {', '.join(DATASETS)} (the paper reports no results on {dataset!r}); "
            "pass dataset= to set the run beside one of the paper's columns anyway"
        )
    if row is None:
        if model is None:
            raise ValueError("model must be given (no config.json beside the metrics names it), or a row")
        row = lookup(model, model_args, dataset=dataset)
    elif row.error(dataset) is None:
        raise ValueError(f"{row.label} has no {DATASETS[dataset]} error; pick a row that reports {dataset}")

    history = [r for r in read_metrics(metrics_path) if not math.isnan(r.get("test_error", math.nan))]
    if not history:
        raise ValueError(f"{metrics_path} has no epoch with a test error")
    best = min(history, key=lambda r: r["test_error"])
    top5 = history[-1].get("test_top5_error")
    return RunComparison(
        row=row,
        dataset=dataset,
        run=str(metrics_path.parent),
        run_dataset=run_dataset,
        epochs=int(history[-1]["epoch"]),
        final_error=history[-1]["test_error"],
        best_error=best["test_error"],
        best_epoch=int(best["epoch"]),
        final_top5_error=None if top5 is None or math.isnan(top5) else top5,
    )
