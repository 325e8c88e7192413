"""The command line under bad input: exit code 2, one line naming the problem, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqlite.__main__ import main
from seqlite.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model-args", "k=4,r=1,n=1", "--subset", "64", "--batch-size", "32", "--epochs", "1", "--device", "cpu",
        "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``seqlite ARGV`` in this process: (exit code, stderr). Any escaping exception fails the test."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished one-epoch tiny run on 64 digits, 100 of the training images held out."""
    out = tmp_path_factory.mktemp("trained")
    assert main(["train", *TINY, "--holdout", "100", "--out", str(out)]) == 0
    return out


# (arguments after `seqlite train` + TINY, text the message must contain)
BAD_TRAIN = {
    "unknown model arg": (["--model-args", "k=4,r=1,n=1,foo=3"], ["--model-args", "foo"]),
    "duplicate model arg": (["--model-args", "k=4,k=8"], ["--model-args", "k is given twice"]),
    "malformed model args": (["--model-args", "k4"], ["--model-args", "'k4'"]),
    "model arg of a wrong type": (["--model-args", "k=abc"], ["--model-args", "abc"]),
    "num_classes not the dataset's": (["--model-args", "k=4,r=1,n=1,num_classes=5"],
                                      ["--model-args", "num_classes=5", "10 classes"]),
    "in_chans not the dataset's": (["--model-args", "k=4,r=1,n=1,in_chans=3"], ["--model-args", "in_chans=3"]),
    "zero epochs": (["--epochs", "0"], ["--epochs", "'0'"]),
    "negative epochs": (["--epochs", "-3"], ["--epochs", "'-3'"]),
    "epochs not a number": (["--epochs", "ten"], ["--epochs", "'ten'"]),
    "zero batch": (["--batch-size", "0"], ["--batch-size", "'0'"]),
    "negative lr": (["--lr", "-0.1"], ["--lr", "'-0.1'"]),
    "nan lr": (["--lr", "nan"], ["--lr", "'nan'"]),
    "infinite lr": (["--lr", "inf"], ["--lr", "'inf'"]),
    "zero subset": (["--subset", "0"], ["--subset", "'0'"]),
    "negative holdout": (["--holdout", "-1"], ["--holdout", "'-1'"]),
    "holdout of every image": (["--holdout", "5000"], ["--holdout", "5000"]),
    "negative workers": (["--workers", "-1"], ["--workers", "'-1'"]),
    "negative seed": (["--seed", "-1"], ["--seed", "'-1'"]),
    "unknown dataset": (["--dataset", "mnist"], ["--dataset", "'mnist'"]),
    "unknown recipe": (["--recipe", "fast"], ["--recipe", "'fast'"]),
    "unknown amp": (["--amp", "fp8"], ["--amp", "'fp8'"]),
    "unknown model": (["--model", "resnet50"], ["--model", "'resnet50'"]),
    "unknown device": (["--device", "gpu"], ["--device", "'gpu'"]),
    "unsupported device": (["--device", "meta"], ["--device", "'meta'"]),
    "resume and overwrite": (["--resume", "--overwrite"], ["--resume", "--overwrite"]),
    "missing dataset": (["--dataset", "cifar10", "--data-dir", "{tmp}/nothing", "--no-download"],
                        ["cifar-10-batches-py"]),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_bad_train_command_lines(case, tmp_path, capsys):
    extra, expected = BAD_TRAIN[case]
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    out = tmp_path / "out"
    code, err = run_cli(["train", *TINY, *extra, "--out", str(out)], capsys)
    assert_one_line_error(code, err, *expected)
    assert not out.exists()  # refused before the run folder was made


def test_cuda_device_without_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = run_cli(["train", *TINY, "--device", "cuda:0", "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, "--device", "'cuda:0'", "CUDA is not available")


def _blocked_out(tmp_path: Path, kind: str) -> str:
    if kind == "under a file":
        (tmp_path / "a_file").write_text("x")
        return str(tmp_path / "a_file" / "run")
    if kind == "is a file":
        (tmp_path / "a_file").write_text("x")
        return str(tmp_path / "a_file")
    if kind == "name too long":
        return str(tmp_path / ("r" * 300))
    if kind == "not writable":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o500)
        return str(folder / "run")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["under a file", "is a file", "name too long", "not writable"])
def test_out_that_cannot_be_written(kind, tmp_path, capsys):
    out = _blocked_out(tmp_path, kind)
    code, err = run_cli(["train", *TINY, "--out", out], capsys)
    assert_one_line_error(code, err, "out", out[:60])


def test_out_on_a_file_system_that_refuses_folders(capsys):
    # /proc refuses new folders even to root: the failure comes from mkdir itself.
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    code, err = run_cli(["train", *TINY, "--out", "/proc/seqlite-test-run"], capsys)
    assert_one_line_error(code, err, "/proc/seqlite-test-run")


def test_full_disk_names_the_file_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    import seqlite.checkpoint as checkpoint_module

    out = tmp_path / "out"
    real_save = torch.save

    def save_until_the_disk_is_full(obj, f):
        if obj["epoch"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_until_the_disk_is_full)
    code, err = run_cli(["train", *TINY[:-3], "--epochs", "2", "--device", "cpu", "--no-progress", "--out", str(out)],
                        capsys)
    monkeypatch.undo()
    assert_one_line_error(code, err, "no space left", str(out / "last.pt"), "--resume")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # the last good checkpoint
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv"]


def _write_cifar(root: Path) -> None:
    from test_data import write_tiny_cifar  # tests/ is on sys.path, as for test_train

    write_tiny_cifar(root, "cifar10", per_file=4)


CIFAR = ["--dataset", "cifar10", "--no-download", "--no-verify-data"]


def test_corrupt_cifar_batch_is_named(tmp_path, capsys):
    _write_cifar(tmp_path / "data")
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_4"
    batch.write_bytes(batch.read_bytes()[:100])
    code, err = run_cli(["train", *TINY, *CIFAR, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")],
                        capsys)
    assert_one_line_error(code, err, str(batch))
    assert not (tmp_path / "o").exists()


def test_a_crafted_cifar_batch_runs_no_code_from_the_command_line(tmp_path, capsys):
    import pickle

    from test_data import _WritesAMarker

    _write_cifar(tmp_path / "data")
    marker = tmp_path / "marker"
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _WritesAMarker(marker), "labels": [0]}))
    code, err = run_cli(["train", *TINY, *CIFAR, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")],
                        capsys)
    assert_one_line_error(code, err, str(batch), "refused")
    assert not marker.exists()


@pytest.mark.parametrize("command", ["train", "eval"])
def test_help_says_what_no_verify_data_checks(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-verify-data skip the MD5 check" in text and "cannot run code" in text
    assert "images themselves are not checked" in text


def test_corrupt_image_in_an_image_folder_is_named(tmp_path, capsys):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (32, 32)).save(tmp_path / split / cls / "0.png")
    bad = tmp_path / "train" / "b" / "torn.png"
    bad.write_bytes(b"\x89PNG\r\n torn")
    code, err = run_cli(["train", "--model-args", "k=4,r=1,n=1", "--dataset", "imagenet", "--data-dir", str(tmp_path),
                         "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--no-progress", "--workers", "1",
                         "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(code, err, str(bad))


# --- seqlite eval ---------------------------------------------------------------------------


def test_eval_uses_the_checkpoints_own_holdout_split(trained, capsys):
    code = main(["eval", "--checkpoint", str(trained / "last.pt"), "--device", "cpu", "--holdout", "100"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "on 100 validation images" in printed
    final = load_checkpoint(trained / "last.pt")["history"][-1]
    assert f"top-1 error {final['test_error']:.2f}%" in printed  # the same images the run validated on


def _checkpoint_without(trained: Path, tmp_path: Path, key: str) -> Path:
    ckpt = load_checkpoint(trained / "last.pt")
    del ckpt["config"][key]
    return save_checkpoint(ckpt, tmp_path / f"no_{key}.pt")


def _checkpoint_with_other_weights(trained: Path, tmp_path: Path) -> Path:
    ckpt = load_checkpoint(trained / "last.pt")
    ckpt["config"]["model_args"] = {"k": 8, "r": 1, "n": 1}
    return save_checkpoint(ckpt, tmp_path / "other_weights.pt")


BAD_EVAL = {
    "holdout not the run's": (["--holdout", "50"], ["--holdout", "50", "holdout 100"]),
    "holdout of a run without one": (None, ["--holdout", "every training image"]),
    "unknown device": (["--device", "gpu"], ["--device", "'gpu'"]),
    "zero batch": (["--batch-size", "0"], ["--batch-size", "'0'"]),
    "negative workers": (["--workers", "-1"], ["--workers", "'-1'"]),
    "unknown dataset": (["--dataset", "mnist"], ["--dataset", "'mnist'"]),
    "config without model": ("model", ["lacks model"]),
    "config without dataset": ("dataset", ["lacks dataset"]),
    "weights of another model": ("weights", ["weights do not fit"]),
    "missing checkpoint": ("missing", ["file not found"]),
    "corrupt checkpoint": ("corrupt", ["truncated or corrupt"]),
}


@pytest.mark.parametrize("case", list(BAD_EVAL))
def test_bad_eval_command_lines(case, trained, tmp_path, capsys):
    extra, expected = BAD_EVAL[case]
    checkpoint = trained / "last.pt"
    if extra is None:  # a run trained on every training image has no validation images
        plain = tmp_path / "plain"
        assert main(["train", *TINY, "--out", str(plain)]) == 0
        capsys.readouterr()
        checkpoint, extra = plain / "last.pt", ["--holdout", "100"]
    elif extra in ("model", "dataset"):
        checkpoint, extra = _checkpoint_without(trained, tmp_path, extra), []
    elif extra == "weights":
        checkpoint, extra = _checkpoint_with_other_weights(trained, tmp_path), []
    elif extra == "missing":
        checkpoint, extra = tmp_path / "nothing.pt", []
    elif extra == "corrupt":
        checkpoint = tmp_path / "torn.pt"
        checkpoint.write_bytes((trained / "last.pt").read_bytes()[:1000])
        extra = []
    code, err = run_cli(["eval", "--checkpoint", str(checkpoint), "--device", "cpu", *extra], capsys)
    assert_one_line_error(code, err, *expected)


# --- seqlite demo ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [["--epochs", "0"], ["--device", "gpu"], ["--seed", "x"]])
def test_bad_demo_options(bad, tmp_path, capsys):
    code, err = run_cli(["demo", "--out", str(tmp_path / "demo"), *bad], capsys)
    assert_one_line_error(code, err, bad[0])


def test_demo_never_replaces_a_run_it_did_not_make(trained, tmp_path, capsys, monkeypatch):
    import shutil

    import seqlite.train as train_module

    run = Path(shutil.copytree(trained, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, err = run_cli(["demo", "--out", str(run)], capsys)
    assert_one_line_error(code, err, str(run), "did not make")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before

    # An earlier demo's run (the demo's settings in config.json) is the demo's to replace.
    started = []

    class Started(Exception):
        pass

    def record(cfg):
        started.append(cfg)
        raise Started  # the decision is what is tested, not a minute of training

    monkeypatch.setattr(train_module, "train", record)
    demo = tmp_path / "demo"
    demo.mkdir()
    config = {"model": "seqresnet_k8_r4_n1", "model_args": {}, "dataset": "digits", "recipe": "quick", "holdout": 0,
              "subset": None, "batch_size": 64, "lr": 0.1, "amp": "off", "epochs": 3, "seed": 0}
    (demo / "config.json").write_text(json.dumps(config))
    with pytest.raises(Started):
        main(["demo", "--out", str(demo), "--epochs", "1"])
    assert started and started[0].overwrite


# --- end to end, as a shell runs it -------------------------------------------------------


@pytest.mark.slow
def test_python_m_seqlite_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "seqlite", "train", *TINY, "--model-args", "k=4,r=1,n=1,foo=3",
               "--out", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "foo" in done.stderr
