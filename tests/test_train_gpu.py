"""GPU-oriented training options, exercised on the CPU: recipes, AMP with a loss scaler, the time
projection, the on-device CIFAR pipeline, determinism and process checks (CUDA queries mocked)."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
from test_data import write_tiny_cifar
from torch import nn

from seqlite.__main__ import build_parser, main, train_config
from seqlite.checkpoint import load_checkpoint
from seqlite.train import Callback, TrainConfig, build_optimizer, project_time, recipe_for, train
from seqlite.train.devices import Process, start_processes
from seqlite.train.loaders import build_data, build_loaders
from seqlite.train.loop import train_step

TINY = dict(model="seqresnet_k8_r4_n1", model_args={"k": 4, "r": 1, "n": 1}, dataset="digits", batch_size=32,
            subset=96, device="cpu", progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_short_recipe_warms_up_then_decays_by_cosine(lr_per_epoch):
    recipe = recipe_for("short", "cifar10")
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.weight_decay, recipe.warmup_epochs) == \
        (40, 128, 0.2, 5e-4, 3)
    assert recipe.momentum == 0.9 and recipe.nesterov  # the paper's optimiser
    cfg = TrainConfig(dataset="cifar10", recipe="short").resolved()
    _, lrs = lr_per_epoch(cfg)
    assert lrs[:4] == pytest.approx([0.05, 0.1, 0.15, 0.2])  # linear warm-up to the full lr
    assert all(a > b for a, b in zip(lrs[3:], lrs[4:])) and lrs[-1] < 0.002  # cosine down towards 0
    optimizer = build_optimizer(nn.Linear(2, 2), cfg)
    assert optimizer.param_groups[0]["weight_decay"] == 5e-4 and optimizer.param_groups[0]["nesterov"]
    _, two_epochs = lr_per_epoch(TrainConfig(dataset="cifar10", recipe="short", epochs=2).resolved())
    assert two_epochs == pytest.approx([0.2, 0.1])
    with pytest.raises(ValueError, match="'short' is a CIFAR recipe"):
        recipe_for("short", "imagenet")
    assert "not yet measured on a gpu" in " ".join(recipe_for.__doc__.lower().split())


def test_command_line_has_the_gpu_options_with_their_defaults():
    cfg = train_config([])
    assert (cfg.amp, cfg.deterministic, cfg.gpu_data, cfg.time_steps) == ("auto", False, False, 10)
    cfg = train_config(["--amp", "fp16", "--deterministic", "--gpu-data", "--time-steps", "0", "--recipe", "short"])
    assert (cfg.amp, cfg.deterministic, cfg.gpu_data, cfg.time_steps, cfg.recipe) == ("fp16", True, True, 0, "short")
    train_help = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "first epoch pays the compilation" in train_help and "smaller last batch" in train_help
    assert "auto = bf16 on GPUs of compute capability >= 8.0" in train_help


# --- fp16 with a loss scaler, on the CPU ---------------------------------------------------------------


def test_the_scaler_skips_a_step_whose_gradients_overflow():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # far beyond fp16's range: gradients become inf
    images, targets = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in model.parameters()]
    loss, _ = train_step(model, images, targets, optimizer, scaler, "fp16", torch.device("cpu"))
    assert torch.isfinite(loss)  # the loss itself is fine; only its scaled gradients overflowed
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the step was skipped
    assert scaler.get_scale() == 2.0**39  # and the scale halved
    scaler.update(2.0**8)
    train_step(model, images, targets, optimizer, scaler, "fp16", torch.device("cpu"))
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # a normal step updates


class _Interrupt(Exception):
    pass


class _LargeInitialScale(Callback):
    """fp16 runs start with a loss scale of 2**18: the first steps overflow and are skipped."""

    def on_run_start(self, run):
        if run.progress.epoch == 0:  # a resumed run keeps the scale its checkpoint holds
            run.scaler.load_state_dict({**run.scaler.state_dict(), "scale": 2.0**18})


class _StopAfterFirstEpoch(Callback):
    def on_epoch_end(self, run, row):
        raise _Interrupt  # the process "dies" right after its first checkpoint and metrics row


@pytest.mark.slow
def test_fp16_run_with_skipped_steps_resumes_bit_for_bit(tmp_path):
    # A large initial scale: the first step overflows and is skipped; the checkpoint must carry the
    # reduced scale (and growth tracker) to the resumed run.
    cfg = dict(TINY, amp="fp16", epochs=3, time_steps=3)
    train(TrainConfig(**cfg, out=str(tmp_path / "whole")), callbacks=[_LargeInitialScale()])
    with pytest.raises(_Interrupt):
        train(TrainConfig(**cfg, out=str(tmp_path / "killed")),
              callbacks=[_LargeInitialScale(), _StopAfterFirstEpoch()])
    first = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert first["epoch"] == 1 and first["config"]["amp"] == "fp16"
    assert first["scaler"]["scale"] < 2.0**18  # a step of epoch 1 was skipped, and the checkpoint knows
    torch.rand(7)  # the resumed run must not depend on the RNG state it starts in
    train(TrainConfig(**cfg, out=str(tmp_path / "killed"), resume=True), callbacks=[_LargeInitialScale()])

    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "killed" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["scaler"] == b["scaler"]
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for index, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][index]["momentum_buffer"])


def test_amp_auto_is_float32_on_a_cpu_and_bf16_is_refused_on_a_t4(tmp_path, monkeypatch, capsys):
    train(TrainConfig(**TINY, epochs=1, time_steps=0, out=str(tmp_path / "a")))
    assert load_checkpoint(tmp_path / "a" / "last.pt")["config"]["amp"] == "off"
    assert load_checkpoint(tmp_path / "a" / "last.pt")["scaler"] is None
    # A T4 (CUDA queries answered as one would), asked for bf16 on the command line.
    for name, answer in (("is_available", lambda: True), ("device_count", lambda: 1), ("current_device", lambda: 0),
                         ("set_device", lambda device: None), ("get_device_capability", lambda device=None: (7, 5)),
                         ("get_device_name", lambda device=None: "Tesla T4")):
        monkeypatch.setattr(torch.cuda, name, answer)
    out = tmp_path / "t4"
    argv = ["train", "--model-args", "k=4,r=1,n=1", "--device", "cuda", "--amp", "bf16", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--amp" in err and "use --amp fp16" in err and not out.exists()


# --- the time projection ------------------------------------------------------------------------------


def test_projection_line_is_printed_logged_and_changes_nothing(tmp_path, capsys):
    common = ["train", "--model", "seqresnet_k8_r4_n1", "--model-args", "k=4,r=1,n=1", "--dataset", "digits",
              "--subset", "192", "--batch-size", "32", "--epochs", "2", "--device", "cpu", "--no-progress"]
    assert main([*common, "--time-steps", "3", "--out", str(tmp_path / "timed")]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("time projection:"))
    # 192 images / batch 32 = 6 steps per epoch; 2 untimed warm-up steps, then 3 timed ones.
    match = re.fullmatch(r"time projection: ([\d.]+) ms per training step \(3 warm steps timed\) x 6 steps = "
                         r"([\d.]+) s per epoch, ([\d.]+) s for 2 epochs \(training steps only; .*\)", line)
    assert match, line
    per_step, per_epoch, total = (float(g) for g in match.groups())
    # (Durations are printed rounded: 0.1 s below 10 s, whole seconds above.)
    slack = 0.06 if per_epoch < 10 else 0.6
    assert per_epoch == pytest.approx(per_step * 6 / 1000, abs=slack)
    assert total == pytest.approx(2 * per_epoch, abs=3 * slack)
    assert out.index("time projection:") < out.index("epoch 1/2")  # before the first epoch
    logged = json.loads((tmp_path / "timed" / "projection.json").read_text())
    assert logged["steps_per_epoch"] == 6 and logged["timed_steps"] == 3 and logged["epochs"] == 2
    assert logged["seconds_total"] == pytest.approx(2 * 6 * logged["seconds_per_step"])
    # The timed steps are undone: the run ends exactly as one without the projection.
    assert main([*common, "--time-steps", "0", "--out", str(tmp_path / "untimed")]) == 0
    assert "time projection" not in capsys.readouterr().out
    assert not (tmp_path / "untimed" / "projection.json").exists()
    a, b = load_checkpoint(tmp_path / "timed" / "last.pt"), load_checkpoint(tmp_path / "untimed" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_project_time_alone_times_the_run_and_writes_nothing(tmp_path):
    projection = project_time(TrainConfig(**TINY, epochs=5, time_steps=1, out=str(tmp_path / "never")))
    # 96 images / batch 32 = 3 steps: 2 untimed warm-up steps leave 1 to time.
    assert (projection.steps_per_epoch, projection.timed_steps, projection.epochs) == (3, 1, 5)
    assert projection.seconds_total == pytest.approx(15 * projection.seconds_per_step)
    assert not (tmp_path / "never").exists()
    assert project_time(TrainConfig(**{**TINY, "subset": 64}, time_steps=1)) is None  # 2 batches: nothing to time


# --- on-device CIFAR, determinism, process checks ------------------------------------------------------


@pytest.mark.slow
def test_gpu_data_trains_on_cifar_and_is_refused_for_the_digits(tmp_path, capsys):
    write_tiny_cifar(tmp_path / "data", "cifar10", per_file=4)
    common = ["train", "--model", "seqresnet_k8_r4_n1", "--model-args", "k=4,r=1,n=1", "--dataset", "cifar10",
              "--data-dir", str(tmp_path / "data"), "--no-verify-data", "--no-download", "--batch-size", "8",
              "--epochs", "2", "--device", "cpu", "--no-progress", "--gpu-data", "--time-steps", "1"]
    assert main([*common, "--out", str(tmp_path / "run")]) == 0
    rows = load_checkpoint(tmp_path / "run" / "last.pt")["history"]
    assert [r["epoch"] for r in rows] == [1, 2] and all(0 <= r["test_error"] <= 100 for r in rows)
    assert main([*common, "--out", str(tmp_path / "again")]) == 0
    a, b = load_checkpoint(tmp_path / "run" / "last.pt"), load_checkpoint(tmp_path / "again" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # seeded: same run twice
    assert main(["train", "--dataset", "digits", "--gpu-data", "--device", "cpu", "--out", str(tmp_path / "d")]) == 2
    assert "gpu_data is for CIFAR-10/100" in capsys.readouterr().err


def test_deterministic_run_sets_the_switches(tmp_path, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # (restored, or removed, after the test)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    seen = []

    class Switches(Callback):
        def on_run_start(self, run):
            seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                         os.environ.get("CUBLAS_WORKSPACE_CONFIG")))

    was = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    try:
        train(TrainConfig(**TINY, epochs=1, time_steps=0, deterministic=True, out=str(tmp_path / "a")),
              callbacks=[Switches()])
    finally:
        torch.use_deterministic_algorithms(was[0])
        torch.backends.cudnn.deterministic = was[1]
    train(TrainConfig(**TINY, epochs=1, time_steps=0, out=str(tmp_path / "b")), callbacks=[Switches()])
    assert seen[0] == (True, True, ":4096:8") and seen[1][:2] == was


def test_more_processes_than_gpus_stop_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: pytest.fail("set_device before the check"))
    with pytest.raises(ValueError, match=r"LOCAL_RANK 1 has no GPU: this machine has 1 visible CUDA device"):
        start_processes("cuda")


def test_one_process_on_cuda_1_makes_it_the_current_device(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: chosen.append(torch.device(device)))
    proc, device = start_processes("cuda:1")
    assert device == torch.device("cuda:1") and chosen == [torch.device("cuda:1")] and proc.world_size == 1


def test_test_loader_workers_do_not_persist_and_workers_follow_the_affinity(tmp_path, monkeypatch):
    write_tiny_cifar(tmp_path, "cifar10", per_file=4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    cfg = TrainConfig(dataset="cifar10", data_dir=str(tmp_path), verify_data=False, download=False,
                      batch_size=8, device="cpu").resolved()
    assert cfg.workers == 2  # Colab's two CPUs, whatever os.cpu_count() says
    spec = build_data(cfg, Process())
    loaders = build_loaders(spec, cfg, Process(), torch.device("cpu"))
    assert loaders.train.num_workers == loaders.test.num_workers == 2
    # Training workers live across epochs; test workers would sit idle through every training epoch.
    assert loaders.train.persistent_workers and not loaders.test.persistent_workers
