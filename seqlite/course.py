"""What every course notebook does first: pick a device, decide quick or full mode, fix seeds.

The notebooks call :func:`setup_notebook` right after their install cell. Quick mode
(no GPU, or the ``CI`` environment variable set, or ``SEQLITE_QUICK=1``) makes training
cells use the embedded digits data and a few epochs; the notebook says so when it
switches. ``SEQLITE_QUICK=0`` forces the full mode.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import torch

__all__ = [
    "COLAB_ROOT",
    "GITHUB_REPO",
    "INSTALL_SOURCE",
    "INSTALL_SOURCE_VARIABLE",
    "ClaimError",
    "NotebookContext",
    "check_claim",
    "quick_mode",
    "setup_notebook",
]

# The project's GitHub home: the "Open in Colab" badges and the notebooks' install cell point here.
GITHUB_REPO = "seqlite/seqlite"
COLAB_ROOT = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/notebooks"
# What the first cell of every notebook installs when seqlite is missing (as on Colab): a pip
# requirement. The cell cannot import this module before seqlite is installed, so it spells the
# same string out; tests keep the two equal. The environment variable overrides it (a local
# checkout, a fork, a wheel), which is how the install cell is tested end to end.
INSTALL_SOURCE = f"git+https://github.com/{GITHUB_REPO}"
INSTALL_SOURCE_VARIABLE = "SEQLITE_INSTALL_SOURCE"


def quick_mode() -> bool:
    """True without a GPU or under CI, unless ``SEQLITE_QUICK`` says otherwise."""
    forced = os.environ.get("SEQLITE_QUICK")
    if forced is not None and forced.strip() in {"0", "1"}:
        return forced.strip() == "1"
    return bool(os.environ.get("CI")) or not torch.cuda.is_available()


@dataclass(frozen=True)
class NotebookContext:
    device: torch.device
    quick: bool
    seed: int


def setup_notebook(seed: int = 0, announce: bool = True) -> NotebookContext:
    """Seed Python and torch, choose CUDA when available, and announce quick mode.

    The announcement is the same text whatever the reason for quick mode, so the
    stored notebook outputs match on a laptop and under CI alike.
    """
    random.seed(seed)
    torch.manual_seed(seed)
    quick = quick_mode()
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    if announce:
        if quick:
            print(
                "Quick mode: no GPU here (or running under CI), so training cells use the "
                "embedded digits data and a few epochs. On a GPU (e.g. Colab) the full runs start."
            )
        elif device.type == "cuda":
            print(f"Full mode on {torch.cuda.get_device_name(device)}.")
        else:  # SEQLITE_QUICK=0 without a GPU: full-length runs on the CPU, at the user's request
            print("Full mode on the CPU (SEQLITE_QUICK=0): full-length training runs will be slow.")
    return NotebookContext(device=device, quick=quick, seed=seed)


class ClaimError(AssertionError):
    """What a notebook's text says about a run does not hold for the run just made."""


def check_claim(claim: str, holds: bool, evidence: str = "") -> None:
    """State what a cell's words claim about a training or timing run, and assert it.

    The numbers of a training run differ from CPU to CPU and thread count to thread count
    (oneDNN picks other kernels), so such a cell's output is not compared by nbval
    (``# NBVAL_IGNORE_OUTPUT``). What the notebook *says* about the run is checked here
    instead, as a statement that holds on any machine: on success the printed line is the
    claim alone (the same text everywhere, so nbval compares it); on failure the run's own
    numbers (``evidence``) go into the error.
    """
    if not holds:
        raise ClaimError(f"CHECK failed: {claim}" + (f" ({evidence})" if evidence else ""))
    print(f"CHECK: {claim}")
