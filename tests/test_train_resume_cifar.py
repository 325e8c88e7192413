"""CIFAR-format data with random crop + flip and 2 worker processes: killed with SIGKILL after its first
checkpoint and resumed, a run ends bit-identical to an uninterrupted one (the crops and flips of an
epoch come from (seed, epoch, image), not from the workers' random state)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_data import write_tiny_cifar

from seqlite.checkpoint import load_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")]

EPOCHS = 3
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _command(data: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "seqlite", "train", "--model", "seqresnet_k8_r4_n1", "--model-args", "k=4,r=1,n=1",
        "--dataset", "cifar10", "--data-dir", str(data), "--no-download", "--no-verify-data", "--batch-size", "16",
        "--epochs", str(EPOCHS), "--seed", "3", "--device", "cpu", "--workers", "2", "--time-steps", "1",
        "--no-progress", "--out", str(out),
    ]


def test_cifar_with_two_workers_killed_and_resumed_equals_the_uninterrupted_run(tmp_path):
    data = tmp_path / "data"
    write_tiny_cifar(data, "cifar10", per_file=8, seed=5)  # 40 random training images in CIFAR's pickles
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run(_command(data, whole), env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    proc = subprocess.Popen(_command(data, killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (killed / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # workers included: they die with their parent's pipes
    assert proc.wait() == -signal.SIGKILL, "the run finished or failed before it could be killed"
    assert 1 <= load_checkpoint(killed / "last.pt")["epoch"] < EPOCHS

    done = subprocess.run([*_command(data, killed), "--resume"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == EPOCHS
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
