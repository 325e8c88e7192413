"""Command line: ``seqlite {train,eval,demo}`` (also ``python -m seqlite ...``).

    seqlite train --model seqresnet_k8_r4_n1 --dataset digits --epochs 5 --device cpu --out runs/digits
    seqlite train --model seqresnet_k16_r10_n1 --dataset cifar10 --data-dir data --out runs/c10   # paper recipe
    torchrun --nproc_per_node=2 -m seqlite train --dataset cifar10 ...                       # several GPUs
    seqlite eval --checkpoint runs/c10/best.pt
    seqlite demo                                # a minute on a CPU, no download
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
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


def _train_parser(sub) -> None:
    from .data import DATASETS
    from .train import AMP_MODES, RECIPES

    p = sub.add_parser("train", help="train a model (the paper's recipe by default)",
                       description="Train a SeqResNet; checkpoints and metrics.csv go to --out.")
    p.add_argument("--model", default="seqresnet_k8_r4_n1", help="a registered model name (seqlite.list_models())")
    p.add_argument("--model-args", default="", type=_model_args, metavar="K=V,...",
                   help="overrides for the model builder, e.g. k=16,r=3 or n=(1,2,1)")
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-dir", default=os.environ.get("SEQLITE_DATA_DIR", "data"),
                   help="where datasets are read from / downloaded to (default: $SEQLITE_DATA_DIR or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="never download; stop if the dataset is not in --data-dir")
    p.add_argument("--no-verify-data", dest="verify_data", action="store_false",
                   help="accept CIFAR files whose MD5 sums differ from the official ones")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="hold out N training images and evaluate on them (paper 4.1: 5000)")
    p.add_argument("--subset", type=int, metavar="N", help="train on N training images only (quick experiments)")
    p.add_argument("--recipe", default="paper", choices=RECIPES,
                   help="paper: SGD Nesterov 0.9, wd 1e-4, lr 0.1, CIFAR 300 epochs batch 64 lr/10 at 50%% and 75%%, "
                        "ImageNet 100 epochs batch 256 lr/10 every 30; quick: same optimiser, short cosine schedule")
    p.add_argument("--epochs", type=int, help="default: the recipe's")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the recipe's)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: the recipe's, 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", default="off", choices=AMP_MODES, help="mixed precision (fp16 needs CUDA)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster on GPUs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (for GPUs; slow to compile on CPU)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across torchrun processes (CUDA only)")
    p.add_argument("--workers", type=int, help="data loader processes (default: 0 for digits, else up to 8)")
    p.add_argument("--out", help="output folder (default: runs/MODEL-DATASET)")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt (start afresh if there is none)")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if OUT holds a run")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _eval_parser(sub) -> None:
    from .data import DATASETS

    p = sub.add_parser("eval", help="top-1 / top-5 error of a checkpoint",
                       description="Print the top-1 and top-5 error of a checkpoint written by `seqlite train`.")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--dataset", choices=DATASETS, help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-dir", default=os.environ.get("SEQLITE_DATA_DIR", "data"))
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--no-verify-data", dest="verify_data", action="store_false")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="evaluate on the N held-out training images instead of the test set")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int)


def _demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a small SeqResNet on the embedded digits (CPU, about a minute)",
                       description="Offline demo: seqresnet_k8_r4_n1 on the 1,797 embedded 8x8 digits.")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)


def train_config(args: argparse.Namespace | list[str]):
    """The :class:`~seqlite.train.TrainConfig` that ``seqlite train ARGS`` runs."""
    from .train import TrainConfig

    if isinstance(args, list):
        args = build_parser().parse_args(["train", *args])
    options = {k: v for k, v in vars(args).items() if k != "command"}
    options["out"] = options["out"] or f"runs/{args.model}-{args.dataset}"
    return TrainConfig(**options)


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


def _run_demo(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        model="seqresnet_k8_r4_n1", dataset="digits", recipe="quick", epochs=args.epochs, seed=args.seed,
        device=args.device, out=args.out, overwrite=True,
    )
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqlite", description="Sequentially Aggregated Convolutional Networks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,demo}")
    _train_parser(sub)
    _eval_parser(sub)
    _demo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from .checkpoint import CheckpointError
    from .data import DatasetNotFoundError
    from .train import NonFiniteLossError

    run = {"train": _run_train, "eval": _run_eval, "demo": _run_demo}[args.command]
    try:
        return run(args)
    except (CheckpointError, DatasetNotFoundError, NonFiniteLossError, FileExistsError, ValueError) as err:
        print(f"seqlite {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"seqlite {args.command}: interrupted; the last completed epoch is in its checkpoint "
              "(continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
