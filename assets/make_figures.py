"""Draw the README's figures with seqlite's own plotting code (seqlite.viz).

    python assets/make_figures.py              # redraw every figure into assets/
    python assets/make_figures.py --retrain    # first re-run the `seqlite train` command of the checkpoint

The layer figures are drawn from configurations alone. The Fig. 5 heatmaps and the training
curves come from the small checkpoint in ``assets/checkpoints/digits_k8_r2/`` that the project's
own command produced (see ``TRAIN_COMMAND`` and assets/README.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from seqlite.analysis import seqconv_layers  # noqa: E402
from seqlite.checkpoint import load_checkpoint  # noqa: E402
from seqlite.registry import create_model  # noqa: E402
from seqlite.viz import (  # noqa: E402
    plot_exploded_view,
    plot_param_growth,
    plot_training_curves,
    plot_weight_heatmap,
    plot_window_mask,
)

ASSETS = Path(__file__).resolve().parent
RUN = ASSETS / "checkpoints" / "digits_k8_r2"
# The command that made the shipped checkpoint (run from the repository root).
TRAIN_COMMAND = [
    "seqlite", "train", "--model", "seqresnet_k8_r4_n1", "--model-args", "r=2", "--dataset", "digits",
    "--recipe", "quick", "--epochs", "10", "--seed", "0", "--device", "cpu",
    "--out", "assets/checkpoints/digits_k8_r2", "--no-progress",
]
# Fig. 5 plots the second WSeqConv layer of a residual block in each stage.
HEATMAP_LAYERS = ("stages.0.0.layer_b", "stages.1.1.layer_b", "stages.2.1.layer_b")


def save(fig: Figure, name: str) -> Path:
    path = ASSETS / name
    # No software/version metadata: the same figure gives the same bytes on a rerun.
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    print(f"wrote {path.relative_to(ASSETS.parent)}")
    return path


def layer_figures() -> None:
    """Fig. 1 (exploded views), Eq. 4 (masks) and paper 3.1 (parameter growth), from configurations."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.2), layout="constrained")
    plot_exploded_view({"in_channels": 32, "out_channels": 48, "k": 16}, ax=axes[0])
    plot_exploded_view({"in_channels": 32, "out_channels": 48, "k": 16, "window": 32}, ax=axes[1])
    save(fig, "seqconv_exploded_view.png")

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), layout="constrained")
    plot_window_mask(32, 64, 8, None, ax=axes[0])
    plot_window_mask(32, 64, 8, 32, ax=axes[1])
    save(fig, "window_masks.png")

    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    plot_param_growth(64, 8, ax=ax)
    save(fig, "param_growth.png")


def trained_figures() -> None:
    """Fig. 5 heatmaps and the training curves of the shipped checkpoint."""
    ckpt = load_checkpoint(RUN / "last.pt", required=("model", "config", "num_classes", "in_chans"))
    cfg = ckpt["config"]
    model = create_model(cfg["model"], num_classes=ckpt["num_classes"], in_chans=ckpt["in_chans"], **cfg["model_args"])
    model.load_state_dict(ckpt["model"])
    layers = dict(seqconv_layers(model))
    fig, axes = plt.subplots(1, len(HEATMAP_LAYERS), figsize=(15, 4.2), layout="constrained")
    for ax, name in zip(axes, HEATMAP_LAYERS):
        # BN-folded (seqlite.analysis.weight_usage): each group's BN rescales its conv, so raw |w| of two rows
        # is not comparable; the checkpoint is trained, so its BN statistics are real.
        plot_weight_heatmap(layers[name], ax=ax, title=name, fold_bn=True)
    save(fig, "weight_heatmaps.png")

    save(plot_training_curves(RUN / "metrics.csv", title="SeqResNet k=8, r=2, N=1 on the embedded digits"),
         "training_curves.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="re-run TRAIN_COMMAND (overwrites the checkpoint)")
    args = parser.parse_args(argv)
    if args.retrain:
        command = [sys.executable, "-m", "seqlite", *TRAIN_COMMAND[1:], "--overwrite"]
        subprocess.run(command, check=True, cwd=ASSETS.parent)
        (RUN / "best.pt").unlink(missing_ok=True)  # only last.pt is shipped
    layer_figures()
    trained_figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
