"""Training: the paper's recipe as built by the command, checkpoints, errors, eval."""

from __future__ import annotations

import csv
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from seqlite import seqresnet_cifar
from seqlite.__main__ import main, parse_model_args, train_config
from seqlite.checkpoint import CheckpointError, capture_rng_state, load_checkpoint, save_checkpoint
from seqlite.registry import create_model
from seqlite.train import (
    METRICS_COLUMNS,
    Callback,
    NonFiniteLossError,
    TrainConfig,
    evaluate_checkpoint,
    train,
)

TINY = dict(model="seqresnet_k8_r4_n1", model_args={"k": 4, "r": 1, "n": 1}, dataset="digits", batch_size=32,
            subset=96, device="cpu", progress=False)


RUN_WARNINGS: list[str] = []


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread) -> Path:
    """A finished two-epoch run of a tiny SeqResNet on 96 digits."""
    out = tmp_path_factory.mktemp("run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(TrainConfig(**TINY, epochs=2, out=str(out)))
    RUN_WARNINGS.extend(str(w.message) for w in caught)
    return out


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


# --- the paper's recipe (paper 4.2) -------------------------------------------------------


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_paper_recipe_cifar(dataset, lr_per_epoch):
    cfg = train_config(["--dataset", dataset]).resolved()
    assert (cfg.recipe, cfg.epochs, cfg.batch_size) == ("paper", 300, 64)
    optimizer, lrs = lr_per_epoch(cfg)
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, True, 1e-4)
    assert lrs[0] == 0.1
    expected = [0.1] * 150 + [0.01] * 75 + [0.001] * 75  # lr / 10 at epochs 150 and 225
    assert lrs == pytest.approx(expected, rel=1e-9)
    _, short = lr_per_epoch(train_config(["--dataset", dataset, "--epochs", "1"]).resolved())
    assert short == [0.1]  # 50% of one epoch rounds to 0: no cut before the first epoch


def test_paper_recipe_imagenet(lr_per_epoch):
    cfg = train_config(["--dataset", "imagenet"]).resolved()
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (100, 256, 0.1)
    optimizer, lrs = lr_per_epoch(cfg)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, True, 1e-4)
    expected = [0.1] * 30 + [0.01] * 30 + [0.001] * 30 + [0.0001] * 10  # lr / 10 every 30 epochs
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_command_line_options_reach_the_config(lr_per_epoch):
    cfg = train_config([
        "--model", "seqresnet_b_k16_r7_n1", "--model-args", "k=8,n=(1,2,1)", "--dataset", "cifar100",
        "--epochs", "20", "--batch-size", "128", "--lr", "0.05", "--recipe", "quick", "--seed", "3",
        "--amp", "bf16", "--channels-last", "--compile", "--workers", "2", "--out", "x", "--resume", "--sync-bn",
    ])
    assert cfg.model_args == {"k": 8, "n": (1, 2, 1)}
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.recipe, cfg.seed, cfg.amp) == (20, 128, 0.05, "quick", 3, "bf16")
    assert cfg.channels_last and cfg.compile and cfg.resume and cfg.sync_bn and (cfg.workers, cfg.out) == (2, "x")
    _, lrs = lr_per_epoch(cfg.resolved())
    assert lrs[0] == 0.05 and lrs[-1] < lrs[0] / 10  # the quick recipe's cosine schedule


def test_command_line_defaults_and_help_come_from_the_config_fields():
    from dataclasses import fields

    from seqlite.__main__ import build_parser

    assert train_config([]) == TrainConfig()  # one place for every default
    assert train_config([]).resolved().out == TrainConfig().resolved().out == "runs/seqresnet_k8_r4_n1-digits"
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {action.dest: action.help.replace("%%", "%") for action in train_parser._actions}
    for f in fields(TrainConfig):
        assert f.metadata["help"] and helps[f.name].startswith(f.metadata["help"]), f.name


def test_viz_and_paper_read_metrics_through_the_run_folder():
    import seqlite.paper
    import seqlite.viz
    from seqlite.train import run_folder

    # One reader of metrics.csv: the run folder's (paper and viz do not parse it themselves).
    assert seqlite.viz.read_metrics is seqlite.paper.read_metrics is run_folder.read_metrics


def test_parse_model_args():
    assert parse_model_args("k=16,r=3, n=(1,2,1),bottleneck=True,name=x") == {
        "k": 16, "r": 3, "n": (1, 2, 1), "bottleneck": True, "name": "x"}
    with pytest.raises(ValueError, match="name=value"):
        parse_model_args("k16")


def test_bad_options_name_the_parameter():
    with pytest.raises(ValueError, match="amp must be one of auto, off, bf16, fp16"):
        TrainConfig(amp="fp8").resolved()
    with pytest.raises(ValueError, match="recipe must be one of paper, short, quick"):
        TrainConfig(recipe="fast").resolved()
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=0).resolved()


# --- a real (tiny) run ----------------------------------------------------------------------


def test_run_writes_metrics_and_plain_data_checkpoints(run_dir):
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRICS_COLUMNS and [r["epoch"] for r in rows] == ["1", "2"]
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)  # never runs code
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "rng", "history", "config"):
        assert key in ckpt
    assert ckpt["epoch"] == 2 and set(ckpt["rng"][0]) == {"torch", "cuda", "numpy", "python"}
    assert [row["test_error"] for row in ckpt["history"]] == [float(r["test_error"]) for r in rows]
    best = load_checkpoint(run_dir / "best.pt")
    assert best["best_error"] == min(float(r["test_error"]) for r in rows)
    model = create_model("seqresnet_k8_r4_n1", k=4, r=1, n=1, in_chans=1)
    model.load_state_dict(ckpt["model"])


def test_run_writes_its_resolved_config_beside_the_metrics(run_dir):
    import json

    saved = json.loads((run_dir / "config.json").read_text())
    resolved = TrainConfig(**TINY, epochs=2, out=str(run_dir)).resolved()
    assert saved["epochs"] == 2 and saved["lr"] == 0.1 and saved["workers"] == 0 and saved["out"] == str(run_dir)
    assert saved == json.loads(json.dumps(load_checkpoint(run_dir / "last.pt")["config"]))
    assert TrainConfig(**saved).resolved() == replace(resolved, amp="off")  # what amp "auto" is on a CPU


def test_cpu_run_gives_no_warnings(run_dir):
    # No CUDA, pin_memory or GradScaler warnings on a CPU-only machine (or any other).
    assert RUN_WARNINGS == []


def test_eval_command_prints_top1_and_top5(run_dir, capsys):
    assert main(["eval", "--checkpoint", str(run_dir / "last.pt"), "--dataset", "digits", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    final = load_checkpoint(run_dir / "last.pt")["history"][-1]
    assert f"top-1 error {final['test_error']:.2f}%" in printed
    assert f"top-5 error {final['test_top5_error']:.2f}%" in printed
    stats = evaluate_checkpoint(run_dir / "last.pt", device="cpu")
    assert stats["top1_error"] == pytest.approx(final["test_error"])


def test_existing_run_is_not_overwritten(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path)
    before = (run / "last.pt").read_bytes()
    common = ["train", "--model-args", "k=4,r=1,n=1", "--subset", "96", "--batch-size", "32", "--device", "cpu",
              "--no-progress", "--out", str(run)]
    assert main([*common, "--epochs", "2"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*common, "--epochs", "3", "--resume"]) == 2
    assert "epochs: checkpoint 2, now 3" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before


def test_overwrite_starts_a_fresh_run(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    train(TrainConfig(**TINY, epochs=1, seed=5, out=str(run), overwrite=True))
    assert load_checkpoint(run / "last.pt")["config"]["seed"] == 5
    assert load_checkpoint(run / "best.pt")["config"]["seed"] == 5
    with open(run / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]


def test_cifar_format_end_to_end_with_worker_processes(tmp_path, capsys):
    from test_data import write_tiny_cifar

    write_tiny_cifar(tmp_path / "data", "cifar10", per_file=8)
    out = tmp_path / "out"
    common = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--no-download", "--no-verify-data",
              "--device", "cpu", "--workers", "2"]
    assert main(["train", *common, "--model-args", "k=4,r=1,n=1", "--holdout", "8", "--epochs", "2",
                 "--batch-size", "16", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "32 training, 8 validation images" in printed
    ckpt = load_checkpoint(out / "last.pt")
    assert (ckpt["epoch"], ckpt["num_classes"], ckpt["in_chans"]) == (2, 10, 3)
    assert main(["eval", "--checkpoint", str(out / "last.pt"), *common]) == 0
    assert "on 8 test images" in capsys.readouterr().out


def test_missing_dataset_stops_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nothing"), "--no-download",
                 "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nothing" / "cifar-10-batches-py") in err and "cifar-10-python.tar.gz" in err
    assert not out.exists()


# --- checkpoints: nothing lost --------------------------------------------------------------


def test_corrupt_checkpoint_names_the_file_and_keeps_it(run_dir, tmp_path, capsys):
    run = copy_run(run_dir, tmp_path)
    good = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(good[: len(good) // 2])  # a torn copy, as a crash mid-copy would leave
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_checkpoint(run / "last.pt")
    assert str(run / "last.pt") in str(err.value)
    argv = ["train", "--model-args", "k=4,r=1,n=1", "--subset", "96", "--batch-size", "32", "--epochs", "2",
            "--device", "cpu", "--no-progress", "--out", str(run), "--resume"]
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert str(run / "last.pt") in message and "truncated or corrupt" in message
    assert len((run / "last.pt").read_bytes()) == len(good) // 2  # left as it was, for inspection
    assert load_checkpoint(run / "best.pt")["epoch"] >= 1  # the last good checkpoint is intact
    (run / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(run / "empty.pt")


class NotPlainData:
    pass


def test_checkpoints_that_would_run_code_are_refused(tmp_path):
    torch.save({"model": {}, "payload": NotPlainData()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only") as err:
        load_checkpoint(tmp_path / "evil.pt")
    assert str(tmp_path / "evil.pt") in str(err.value)


def test_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1}, path)
    real_save = torch.save

    def save_then_die(obj, f):
        real_save(obj, f)
        f.truncate(10)  # half-written when the "kill" arrives
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left behind


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    from seqlite.checkpoint import restore_rng_state

    save_checkpoint({"model": {}, "rng": [capture_rng_state()]}, tmp_path / "rng.pt")  # one process's, as train does
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"][0])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def _poisoned(poison):
    """A builder: the tiny SeqResNet with ``poison()(module, inputs, output)`` hooked on its classifier."""

    def builder(**kwargs):
        model = seqresnet_cifar(**{"k": 4, "r": 1, "n": 1, **kwargs})
        model.fc.register_forward_hook(poison())
        return model

    return builder


def _nan_from_epoch_2_on():
    # Stands in for a run that diverges: from the first step of epoch 2 on, the logits are NaN.
    calls, steps_per_epoch = {"train": 0}, 96 // 32

    def poison(module, inputs, output):
        if not module.training:
            return output
        calls["train"] += 1
        return output * float("nan") if calls["train"] > steps_per_epoch else output

    return poison


def test_non_finite_loss_stops_with_last_good_checkpoint_intact(tmp_path, registered_model):
    model = registered_model(_poisoned(_nan_from_epoch_2_on), "tiny_diverging_in_epoch_2")
    with pytest.raises(NonFiniteLossError, match=r"became nan in epoch 2 .*--lr"):
        # (time_steps=0: the hook counts training forwards, and the projection's would count too)
        train(TrainConfig(**{**TINY, "model": model, "model_args": {}}, epochs=3, time_steps=0, out=str(tmp_path)))
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    with open(tmp_path / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]


def test_model_args_booleans_and_bad_values():
    # "false" kept as a string would be truthy and silently build the windowed model.
    assert parse_model_args("windowed=false,bottleneck=True") == {"windowed": False, "bottleneck": True}
    with pytest.raises(ValueError, match="windowed must be True or False"):
        seqresnet_cifar(k=8, r=1, n=1, windowed="no")


def test_bad_device_names_the_allowed_values(tmp_path):
    cfg = TrainConfig(**{**TINY, "device": "gpu"}, epochs=1, out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda'"):
        train(cfg)


# --- a kill between the two checkpoint writes ----------------------------------------------


def _best_epochs(history: list[dict]) -> list[int]:
    """The epochs after which an uninterrupted run writes best.pt."""
    epochs, best = [], float("inf")
    for row in history:
        if row["test_error"] < best:
            epochs.append(int(row["epoch"]))
            best = row["test_error"]
    return epochs


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def improving_run(tmp_path_factory, one_thread) -> Path:
    """Like ``run_dir`` with seed 1, whose epoch 2 beats epoch 1 (here): best.pt is written twice."""
    out = tmp_path_factory.mktemp("improving")
    train(TrainConfig(**TINY, epochs=2, seed=1, out=str(out)))
    return out


@pytest.mark.parametrize("kill", ["missing", "stale"])
def test_kill_between_last_and_best_then_resume_gives_a_consistent_pair(improving_run, tmp_path, kill):
    best_epochs = _best_epochs(load_checkpoint(improving_run / "last.pt")["history"])
    # missing: killed at epoch 1's best.pt (there is none yet); stale: at a later new best (an older best.pt).
    kill_epoch = best_epochs[0] if kill == "missing" else next((e for e in best_epochs if e > 1), None)
    if kill_epoch is None:
        pytest.skip("on this machine the reference run did not improve after epoch 1")

    class KilledBeforeBest(Callback):
        def on_checkpoint_saved(self, run, path):
            if path.name == "last.pt" and run.progress.epoch == kill_epoch and run.progress.best_epoch == kill_epoch:
                raise KeyboardInterrupt  # last.pt of this epoch is on disk, best.pt is not

    cfg = TrainConfig(**TINY, epochs=2, seed=1, out=str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[KilledBeforeBest()])
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == kill_epoch and last["best_epoch"] == kill_epoch
    if kill == "missing":
        assert not (tmp_path / "best.pt").exists()
    else:
        assert load_checkpoint(tmp_path / "best.pt")["epoch"] < kill_epoch

    train(replace_cfg(cfg, resume=True))
    best, reference = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(improving_run / "best.pt")
    last = load_checkpoint(tmp_path / "last.pt")
    assert best["epoch"] == last["best_epoch"] == reference["epoch"] == best_epochs[-1]
    assert best["best_error"] == min(row["test_error"] for row in last["history"])
    assert _same_weights(best["model"], reference["model"])


def test_resume_of_a_finished_run_repairs_its_best_checkpoint(improving_run, tmp_path, capsys):
    run = copy_run(improving_run, tmp_path)
    (run / "best.pt").unlink()  # as a kill after the last epoch's last.pt, before its best.pt, leaves it
    train(TrainConfig(**TINY, epochs=2, seed=1, out=str(run), resume=True))
    assert "repaired" in capsys.readouterr().out
    assert _same_weights(load_checkpoint(run / "best.pt")["model"], load_checkpoint(improving_run / "best.pt")["model"])


def replace_cfg(cfg: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


# --- run folders: nothing replaced unasked, no leftovers ------------------------------------


@pytest.mark.parametrize("kept", [("best.pt", "metrics.csv"), ("metrics.csv",), ("config.json",), ("best.pt",)])
@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_with_any_run_file_is_not_replaced(run_dir, tmp_path, capsys, kept, resume):
    run = copy_run(run_dir, tmp_path)
    for path in run.iterdir():
        if path.name not in kept:
            path.unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    argv = ["train", "--model-args", "k=4,r=1,n=1", "--subset", "96", "--batch-size", "32", "--epochs", "2",
            "--device", "cpu", "--no-progress", "--out", str(run)] + (["--resume"] if resume else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a run" in err and kept[0] in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_leftovers_of_killed_writes_are_removed_on_start_and_resume(run_dir, tmp_path):
    leftovers = [".last.pt.k2j4x_1a.tmp", ".best.pt.q8z.tmp", ".metrics.csv.tmp", ".config.json.tmp"]
    run = copy_run(run_dir, tmp_path)
    for name in leftovers:
        (run / name).write_bytes(b"half a checkpoint")
    (run / "notes.txt").write_text("mine")  # not the run's: kept
    train(TrainConfig(**TINY, epochs=2, out=str(run), resume=True))
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv", "notes.txt",
                                                     "projection.json"]

    fresh = tmp_path / "fresh"  # killed before its first checkpoint: only leftovers, no run
    fresh.mkdir()
    (fresh / leftovers[0]).write_bytes(b"half a checkpoint")
    train(TrainConfig(**TINY, epochs=1, out=str(fresh)))
    assert sorted(p.name for p in fresh.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv",
                                                       "projection.json"]


def _inf_on_test_images_from_epoch_2_on():
    steps, steps_per_epoch = {"train": 0}, 96 // 32

    def poison(module, inputs, output):
        if module.training:
            steps["train"] += 1
            return output
        # From epoch 2's evaluation on, the test logits are infinite (the training ones stay finite).
        return output * float("inf") if steps["train"] > steps_per_epoch else output

    return poison


def test_non_finite_test_loss_stops_the_run(tmp_path, capsys, registered_model):
    model = registered_model(_poisoned(_inf_on_test_images_from_epoch_2_on), "tiny_diverging_on_test_images")
    # (--time-steps 0: the hook counts training forwards, and the projection's would count too)
    argv = ["train", "--model", model, "--subset", "96", "--batch-size", "32", "--epochs", "3",
            "--device", "cpu", "--no-progress", "--time-steps", "0", "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "test loss became nan after epoch 2" in err and "--lr" in err
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    with open(tmp_path / "metrics.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]
