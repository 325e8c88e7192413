"""A run killed with SIGKILL after its first checkpoint and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqlite.checkpoint import load_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")]

EPOCHS = 3
COMMAND = [
    sys.executable, "-m", "seqlite", "train", "--model", "seqresnet_k8_r4_n1", "--model-args", "k=4,r=1,n=1",
    "--dataset", "digits", "--subset", "192", "--batch-size", "32", "--epochs", str(EPOCHS), "--seed", "7",
    "--device", "cpu", "--no-progress",
]
# One thread: the same arithmetic in every process, so equal inputs give equal bits.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(out: Path, *extra: str) -> None:
    done = subprocess.run([*COMMAND, "--out", str(out), *extra], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# workers=1: the data order must not depend on where a run with (persistent) worker processes started.
@pytest.mark.parametrize("workers", ["0", "1"])
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, workers):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run(whole, "--workers", workers)

    proc = subprocess.Popen([*COMMAND, "--workers", workers, "--out", str(killed)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (killed / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: whatever is on disk now is what we get
    assert proc.wait() == -signal.SIGKILL, "the run finished or failed before it could be killed"
    epoch_at_kill = load_checkpoint(killed / "last.pt")["epoch"]
    assert 1 <= epoch_at_kill < EPOCHS

    _run(killed, "--workers", workers, "--resume")

    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == EPOCHS
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for index, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][index]["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])

    def rows(run: Path) -> list[dict]:
        with open(run / "metrics.csv") as f:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]

    assert rows(killed) == rows(whole)  # one row per epoch, none lost or repeated by the kill
