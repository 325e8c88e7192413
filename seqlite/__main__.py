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
import warnings
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


def _typed(convert, check=None, name: str = "value"):
    """An argparse ``type``: ``convert`` the text, then apply the field's ``check`` (:mod:`seqlite.checks`)."""
    from .checks import InvalidValue

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {convert.__name__ if convert is not int else 'an integer'}, "
                                             f"got {text!r}") from None
        try:
            return check(name, value) if check is not None else value
        except InvalidValue as err:  # the rule, with the text as it was typed
            raise argparse.ArgumentTypeError(f"{err.rule}, got {text!r}") from None

    parse.__name__ = convert.__name__  # what argparse names in "invalid ... value"
    return parse


_CONVERT = {"int": int, "float": float, "str": str}


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`~seqlite.train.TrainConfig` field, with the field's default, help and check."""
    from .train import TrainConfig

    for f in fields(TrainConfig):
        meta = dict(f.metadata)
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
            kwargs.update(type=_typed(_CONVERT[base], meta.get("check"), f.name), default=default)
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
            if "metavar" in meta:
                kwargs["metavar"] = meta["metavar"]
        parser.add_argument(TrainConfig.flag(f.name), **kwargs)


def _config_help(name: str) -> str:
    from .train import TrainConfig

    return TrainConfig.field_metadata(name)["help"].replace("%", "%%")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (the paper's recipe by default)",
                       description="Train a SeqResNet; checkpoints, metrics.csv and config.json go to --out.")
    _add_config_options(p)


def _field_type(name: str, convert=int):
    """The argparse ``type`` of the field ``name``'s option: its conversion and check."""
    from .train import TrainConfig

    return _typed(convert, TrainConfig.field_metadata(name).get("check"), name)


def _eval_parser(sub) -> None:
    from .data import DATASETS

    p = sub.add_parser("eval", help="top-1 / top-5 error of a checkpoint",
                       description="Print the top-1 and top-5 error of a checkpoint written by `seqlite train`.")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--dataset", choices=DATASETS, help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir", default=os.environ.get("SEQLITE_DATA_DIR", "data"), help=_config_help("data_dir"))
    p.add_argument("--no-download", dest="download", action="store_false", help=_config_help("download"))
    p.add_argument("--no-verify-data", dest="verify_data", action="store_false", help=_config_help("verify_data"))
    p.add_argument("--holdout", type=_field_type("holdout"), default=0, metavar="N",
                   help="evaluate on the N training images the checkpoint's run held out (N must be that run's "
                        "--holdout) instead of the test set")
    p.add_argument("--batch-size", type=_field_type("batch_size"), default=256,
                   help="(default: %(default)s)")
    p.add_argument("--device", type=_field_type("device", str), default="auto", help=_config_help("device"))
    p.add_argument("--workers", type=_field_type("workers"), help=_config_help("workers"))


def _demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a small SeqResNet on the embedded digits (CPU, about a minute)",
                       description="Offline demo: seqresnet_k8_r4_n1 on the 1,797 embedded 8x8 digits. It replaces "
                                   "only a run that a demo made in --out, never another run.")
    p.add_argument("--out", type=_field_type("out", str), default="runs/demo", help="(default: %(default)s)")
    p.add_argument("--epochs", type=_field_type("epochs"), default=3, help="(default: %(default)s)")
    p.add_argument("--device", type=_field_type("device", str), default="cpu", help="(default: %(default)s)")
    p.add_argument("--seed", type=_field_type("seed"), default=0, help="(default: %(default)s)")


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


# The demo's own options; the other settings that make a run what it is (TrainConfig's identity
# fields) tell a demo's run from another.
_DEMO_OPTIONS = ("epochs", "seed")


def _run_demo(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from . import train as training
    from .train import RunFolder, TrainConfig
    from .train.config import IDENTITY

    cfg = TrainConfig(
        model="seqresnet_k8_r4_n1", dataset="digits", recipe="quick", epochs=args.epochs, seed=args.seed,
        device=args.device, out=args.out, amp="off",  # float32 on any device: a demo run compares as its own
    )
    folder = RunFolder(Path(args.out))
    if folder.files():
        saved, ours = folder.read_config(), asdict(cfg.resolved())
        if saved is None or any(saved.get(k) != ours[k] for k in IDENTITY if k not in _DEMO_OPTIONS):
            raise FileExistsError(f"{folder.path} holds a run that `seqlite demo` did not make "
                                  f"({', '.join(folder.files())}); the demo replaces only its own runs: choose "
                                  "another --out")
        cfg.overwrite = True  # an earlier demo's run, which the demo remakes in a minute
    print(f"seqlite demo: training {cfg.model} on the embedded 8x8 digits for {cfg.epochs} epochs on {cfg.device}")
    result = training.train(cfg)
    folder, epochs = RunFolder(result.out), result.final["epoch"]
    print(
        f"\nfinal test error {result.final['test_error']:.2f}% (best {result.best_error:.2f}%) after "
        f"{epochs} epoch{'s' * (epochs != 1)}.\nmetrics: {folder.metrics}\n"
        f"checkpoints: {folder.last}, {folder.best}\n"
        f"plot the curves with seqlite.viz.plot_training_curves({str(folder.metrics)!r}); "
        f"evaluate with: seqlite eval --checkpoint {folder.best}"
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
        flag = TrainConfig.flag(err.option) if err.option in {f.name for f in fields(TrainConfig)} \
            else "--" + err.option.replace("_", "-")
        if flag not in text:
            text = f"argument {flag}: {text}"
    return text


def _interrupted(args: argparse.Namespace) -> str:
    """What a Ctrl-C left: the epoch in ``last.pt`` when there is one, and how to go on (true as said)."""
    from .checkpoint import CheckpointError, load_checkpoint
    from .train import RunFolder

    if args.command == "eval":
        return "interrupted"
    try:
        folder = RunFolder(Path(args.out if args.command == "demo" else train_config(args).resolved().out))
    except ValueError:  # interrupted before the options were understood
        return "interrupted"
    try:
        epoch = load_checkpoint(folder.last, required=("epoch",))["epoch"]
    except CheckpointError:
        epoch = None
    again = "run `seqlite demo` again" if args.command == "demo" else "continue with --resume"
    if epoch:
        return f"interrupted; epoch {epoch} is in {folder.last} ({again})"
    if not folder.files():
        return f"interrupted before anything was written to {folder.path}"
    return f"interrupted before the first epoch ended: {folder.path} holds no checkpoint yet ({again} to start it)"


def main(argv: list[str] | None = None) -> int:
    """Run a ``seqlite`` command; bad input ends with one line on stderr and exit code 2, never a traceback."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from .checkpoint import CheckpointError
    from .train import NonFiniteLossError, OutputError

    run = {"train": _run_train, "eval": _run_eval, "demo": _run_demo}[args.command]

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"seqlite {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line_warning  # (restored when the command ends)
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
        print(f"seqlite {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
