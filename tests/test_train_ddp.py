"""Two gloo processes under torchrun on CPU: the run completes and its checkpoint serves a single process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch.distributed as dist

from seqlite.checkpoint import load_checkpoint
from seqlite.registry import create_model
from seqlite.train import evaluate_checkpoint

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]


def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "seqlite", "train", "--model", "seqresnet_k8_r4_n1", "--model-args", "k=4,r=1,n=1",
        "--dataset", "digits", "--subset", "256", "--batch-size", "64", "--epochs", "2", "--device", "cpu",
        "--no-progress", "--out", str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # Only rank 0 speaks: one line per epoch, not two.
    assert done.stdout.count("epoch 2/2:") == 1, done.stdout
    assert "warn" not in done.stderr.lower(), done.stderr

    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    # The processes drew different random numbers (dropout masks); both states were kept.
    assert not (ckpt["rng"][0]["torch"] == ckpt["rng"][1]["torch"]).all()

    # The state dict is the bare model's (no "module." prefix).
    single = create_model("seqresnet_k8_r4_n1", k=4, r=1, n=1, in_chans=1)
    single.load_state_dict(ckpt["model"])
    # Each process evaluated its share of the test set; the summed error is the whole set's.
    stats = evaluate_checkpoint(out / "last.pt", device="cpu")
    assert stats["images"] == 359
    assert stats["top1_error"] == pytest.approx(ckpt["history"][-1]["test_error"])
