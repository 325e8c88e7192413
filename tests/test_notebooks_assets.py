"""assets/: the shipped checkpoint is what its recorded command makes, and assets stay small."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from seqlite.__main__ import train_config
from seqlite.checkpoint import load_checkpoint
from seqlite.registry import create_model

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def make_figures_module():
    spec = importlib.util.spec_from_file_location("make_figures", ASSETS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_assets_stay_under_5_mb() -> None:
    files = [p for p in ASSETS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    total = sum(p.stat().st_size for p in files)
    assert total < 5 * 2**20, f"assets/ holds {total / 2**20:.1f} MB; the course ships at most 5 MB"


def test_checkpoint_was_made_by_the_recorded_command() -> None:
    figures = make_figures_module()
    assert figures.TRAIN_COMMAND[:2] == ["seqlite", "train"]
    expected = train_config(figures.TRAIN_COMMAND[2:]).resolved()
    ckpt = load_checkpoint(figures.RUN / "last.pt", required=("model", "config", "epoch", "history"))
    saved = ckpt["config"]
    for field in ("model", "model_args", "dataset", "recipe", "epochs", "batch_size", "lr", "seed", "out"):
        wanted = getattr(expected, field)
        assert saved[field] == wanted, f"{field}: checkpoint {saved[field]!r}, command {wanted!r}"
    assert ckpt["epoch"] == expected.epochs, "the run finished every epoch"
    # The weights in the file fit the model the command builds (strict loading checks every shape).
    args = {"num_classes": ckpt["num_classes"], "in_chans": ckpt["in_chans"], **saved["model_args"]}
    create_model(saved["model"], **args).load_state_dict(ckpt["model"])


@pytest.mark.parametrize("name", ["seqconv_exploded_view.png", "window_masks.png", "param_growth.png",
                                  "weight_heatmaps.png", "training_curves.png"])
def test_every_figure_is_listed_and_present(name: str) -> None:
    assert (ASSETS / name).is_file(), f"run python assets/make_figures.py to draw {name}"
    assert name in (ASSETS / "README.md").read_text(), f"{name} is not described in assets/README.md"
    assert f'"{name}"' in (ASSETS / "make_figures.py").read_text(), f"make_figures.py does not draw {name}"
