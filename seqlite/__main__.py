"""Command line: ``seqlite {train,eval,demo}`` (also ``python -m seqlite ...``).

    seqlite train --model seqresnet_k8_r4_n1 --dataset digits --epochs 5 --device cpu --out runs/digits
    seqlite train --model seqresnet_k16_r10_n1 --dataset cifar10 --data-dir data --out runs/c10   # paper recipe
    torchrun --nproc_per_node=2 -m seqlite train --dataset cifar10 ...                       # several GPUs
    seqlite eval --checkpoint runs/c10/best.pt
    seqlite demo                                # a minute on a CPU, no download

The options of ``seqlite train`` are built from :class:`~seqlite.train.TrainConfig`'s fields (their
defaults, help and checks). Bad input (an option, a dataset or checkpoint file, an ``--out`` that
cannot be written, a full disk) ends with one line on stderr and exit code 2; a run whose loss
became NaN or infinite ends with exit code 1.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main", "parse_model_args", "train_config"]


def parse_model_args(text: str) -> dict[str, Any]:
    """``"k=16,r=3,n=(1,2,1),bottleneck=True"`` -> ``{"k": 16, "r": 3, "n": (1, 2, 1), "bottleneck": True}``.

    Values are Python literals; anything else is kept as a string. Commas inside brackets
    belong to the value.
    """
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    args: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in parts)):
        key, sep, value = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--model-args expects name=value pairs separated by commas (k=16,r=3); got {part!r}")
        if key.strip() in args:
            raise ValueError(f"{key.strip()} is given twice in {text!r}; give each name once")
        value = value.strip()
        if value.lower() in {"true", "false"}:  # shell habit; "false" as a string would be truthy
            args[key.strip()] = value.lower() == "true"
            continue
        try:
            args[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            args[key.strip()] = value
    return args


def _model_args(text: str) -> dict[str, Any]:
    try:
        return parse_model_args(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _typed(convert, check=None):
    """An argparse ``type``: ``convert`` the text, then apply the field's ``check``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {convert.__name__ if convert is not int else 'an integer'}, "
                                             f"got {text!r}") from None
        problem = check(value) if check is not None else None
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text!r}")
        return value

    parse.__name__ = convert.__name__  # what argparse names in "invalid ... value"
    return parse


_CONVERT = {"int": int, "float": float, "str": str}


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`~seqlite.train.TrainConfig` field, with the field's default, help and check."""
    from .train import TrainConfig

    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"].replace("%", "%%")}
        default = f.default if f.default is not MISSING else f.default_factory()
        if default not in (None, True, False, {}) and "default" not in meta["help"]:
            kwargs["help"] += " (default: %(default)s)"
        base = str(f.type).replace(" | None", "")
        if base == "bool":
            kwargs["action"] = "store_false" if default else "store_true"
        elif base.startswith("dict"):
            kwargs.update(type=_model_args, default={}, metavar=meta.get("metavar"))
        else:
            kwargs.update(type=_typed(_CONVERT[base], meta.get("check")), default=default)
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
            if "metavar" in meta:
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(flag, **kwargs)


def _config_help(name: str) -> str:
    from .train import TrainConfig

    return next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name).replace("%", "%%")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (the paper's recipe by default)",
                       description="Train a SeqResNet; checkpoints, metrics.csv and config.json go to --out.")
    _add_config_options(p)


def _field_check(name: str):
    from .train import TrainConfig

    return next(f.metadata.get("check") for f in fields(TrainConfig) if f.name == name)


def _eval_parser(sub) -> None:
    from .data import DATASETS

    p = sub.add_parser("eval", help="top-1 / top-5 error of a checkpoint",
                       description="Print the top-1 and top-5 error of a checkpoint written by `seqlite train`.")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--dataset", choices=DATASETS, help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir", default=os.environ.get("SEQLITE_DATA_DIR", "data"), help=_config_help("data_dir"))
    p.add_argument("--no-download", dest="download", action="store_false", help=_config_help("download"))
    p.add_argument("--no-verify-data", dest="verify_data", action="store_false", help=_config_help("verify_data"))
    p.add_argument("--holdout", type=_typed(int, _field_check("holdout")), default=0, metavar="N",
                   help="evaluate on the N training images the checkpoint's run held out (N must be that run's "
                        "--holdout) instead of the test set")
    p.add_argument("--batch-size", type=_typed(int, _field_check("batch_size")), default=256,
                   help="(default: %(default)s)")
    p.add_argument("--device", type=_typed(str, _field_check("device")), default="auto", help=_config_help("device"))
    p.add_argument("--workers", type=_typed(int, _field_check("workers")), help=_config_help("workers"))


def _demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a small SeqResNet on the embedded digits (CPU, about a minute)",
                       description="Offline demo: seqresnet_k8_r4_n1 on the 1,797 embedded 8x8 digits. It replaces "
                                   "only a run that a demo made in --out, never another run.")
    p.add_argument("--out", default="runs/demo", help="(default: %(default)s)")
    p.add_argument("--epochs", type=_typed(int, _field_check("epochs")), default=3, help="(default: %(default)s)")
    p.add_argument("--device", type=_typed(str, _field_check("device")), default="cpu", help="(default: %(default)s)")
    p.add_argument("--seed", type=_typed(int, _field_check("seed")), default=0, help="(default: %(default)s)")


def train_config(args: argparse.Namespace | list[str]):
    """The :class:`~seqlite.train.TrainConfig` that ``seqlite train ARGS`` runs."""
    from .train import TrainConfig

    if isinstance(args, list):
        args = build_parser().parse_args(["train", *args])
    return TrainConfig(**{k: v for k, v in vars(args).items() if k != "command"})


def _run_train(args: argparse.Namespace) -> int:
    from .train import train

    train(train_config(args))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from .train import evaluate_checkpoint

    stats = evaluate_checkpoint(
        args.checkpoint, args.dataset, args.data_dir, device=args.device, batch_size=args.batch_size,
        workers=args.workers, download=args.download, verify_data=args.verify_data, holdout=args.holdout,
    )
    print(
        f"{args.checkpoint}: top-1 error {stats['top1_error']:.2f}%, top-5 error {stats['top5_error']:.2f}% "
        f"on {stats['images']} {stats['split']} images (loss {stats['loss']:.4f})"
    )
    return 0


# What makes a run a demo run; epochs, seed and device are the demo's own options.
_DEMO_SETTINGS = ("model", "model_args", "dataset", "recipe", "holdout", "subset", "batch_size", "lr", "amp")


def _saved_config(out: Path) -> dict[str, Any] | None:
    """The settings of the run in ``out``: config.json, else those stored in its checkpoints."""
    import json

    from .checkpoint import CheckpointError, load_checkpoint

    try:
        return json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        pass
    for name in ("last.pt", "best.pt"):
        try:
            return load_checkpoint(out / name, required=("config",))["config"]
        except CheckpointError:
            continue
    return None


def _run_demo(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .train import TrainConfig, run_files, train

    cfg = TrainConfig(
        model="seqresnet_k8_r4_n1", dataset="digits", recipe="quick", epochs=args.epochs, seed=args.seed,
        device=args.device, out=args.out, amp="off",  # float32 on any device: a demo run compares as its own
    )
    out = Path(args.out)
    if run_files(out):
        saved, ours = _saved_config(out), asdict(cfg.resolved())
        if not isinstance(saved, dict) or any(saved.get(k) != ours[k] for k in _DEMO_SETTINGS):
            raise FileExistsError(f"{out} holds a run that `seqlite demo` did not make ({', '.join(run_files(out))}); "
                                  "the demo replaces only its own runs: choose another --out")
        cfg.overwrite = True  # an earlier demo's run, which the demo remakes in a minute
    print(f"seqlite demo: training {cfg.model} on the embedded 8x8 digits for {cfg.epochs} epochs on {cfg.device}")
    result = train(cfg)
    out, epochs = result.out, result.final["epoch"]
    print(
        f"\nfinal test error {result.final['test_error']:.2f}% (best {result.best_error:.2f}%) after "
        f"{epochs} epoch{'s' * (epochs != 1)}.\nmetrics: {out / 'metrics.csv'}\n"
        f"checkpoints: {out / 'last.pt'}, {out / 'best.pt'}\n"
        f"plot the curves with seqlite.viz.plot_training_curves({str(out / 'metrics.csv')!r}); "
        f"evaluate with: seqlite eval --checkpoint {out / 'best.pt'}"
    )
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error ("seqlite train: error: argument --epochs: ...") and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="seqlite", description="Sequentially Aggregated Convolutional Networks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,demo}")
    _train_parser(sub)
    _eval_parser(sub)
    _demo_parser(sub)
    return parser


def _message(err: BaseException) -> str:
    """``err`` as one line; a ConfigError also names the command-line option."""
    from .train import ConfigError, TrainConfig

    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    if isinstance(err, ConfigError):
        meta = next((f.metadata for f in fields(TrainConfig) if f.name == err.option), {})
        flag = meta.get("flag", "--" + err.option.replace("_", "-"))
        if flag not in text:
            text = f"argument {flag}: {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Run a ``seqlite`` command; bad input ends with one line on stderr and exit code 2, never a traceback."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from .checkpoint import CheckpointError
    from .train import NonFiniteLossError, OutputError

    run = {"train": _run_train, "eval": _run_eval, "demo": _run_demo}[args.command]
    try:
        return run(args)
    except NonFiniteLossError as err:  # the run diverged: not bad input, but a failed run
        print(f"seqlite {args.command}: error: {_message(err)}", file=sys.stderr)
        return 1
    except (CheckpointError, OutputError, OSError, ValueError) as err:
        # OSError: a dataset not found, a run already in --out, unreadable files; ValueError: bad
        # settings and corrupt data files.
        print(f"seqlite {args.command}: error: {_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqlite {args.command}: interrupted; the last completed epoch is in its checkpoint "
              "(continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
