"""Nothing lost, round two (issue 20), where a user meets it: the command line.

Interrupts (Ctrl-C before and after the first checkpoint), the loader workers (any number,
changed between a run and its resume), two runs on one folder, hand-edited checkpoints, an
empty ``--out``, a full disk, absurd ``--workers`` and empty CIFAR files. Bad input: one line,
exit code 2; nothing lost; resumed runs bit-identical to uninterrupted ones (on the CPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlite import CheckpointError, create_model, seqresnet_cifar
from seqlite.__main__ import main
from seqlite.checkpoint import load_checkpoint, save_checkpoint
from seqlite.registry import register_model, unregister_model
from seqlite.train import RunFolder

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
INTERRUPTIBLE = "tiny_interruptible"
# 64 digits in batches of 16: 4 steps per epoch; no time projection (its steps would count as forwards).
COMMON = ["--model", INTERRUPTIBLE, "--subset", "64", "--batch-size", "16", "--epochs", "2", "--device", "cpu",
          "--no-progress", "--time-steps", "0"]

pytestmark = pytest.mark.usefixtures("one_thread")

_INTERRUPT = {"at": None}  # the training forward (1, 2, ...) of the next model built that raises KeyboardInterrupt


def _tiny_interruptible(**kwargs):
    """The tiny SeqResNet; when armed, its n-th training forward is a Ctrl-C (as the user's, mid-epoch)."""
    model = seqresnet_cifar(**{"k": 4, "r": 1, "n": 1, **kwargs})
    at, _INTERRUPT["at"] = _INTERRUPT["at"], None
    forwards = [0]

    def ctrl_c(module, inputs):
        if module.training:
            forwards[0] += 1
            if forwards[0] == at:
                raise KeyboardInterrupt

    if at is not None:
        model.register_forward_pre_hook(ctrl_c)
    return model


@pytest.fixture(scope="module", autouse=True)
def _interruptible_model():
    register_model(_tiny_interruptible, name=INTERRUPTIBLE)
    yield
    unregister_model(INTERRUPTIBLE)


def run_cli(argv: list[str], capsys, interrupt_at: int | None = None) -> tuple[int, str]:
    """``seqlite ARGV`` in this process: (exit code, stderr)."""
    _INTERRUPT["at"] = interrupt_at
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    finally:
        _INTERRUPT["at"] = None
    return code, capsys.readouterr().err


def one_line(code: int, err: str, *expected: str, exit_code: int = 2) -> str:
    assert code == exit_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread) -> Path:
    """The uninterrupted run, in-process, without loader workers."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["train", *COMMON, "--out", str(out)]) == 0
    return out


# --- 1. Ctrl-C: the message says what is on disk, and --resume continues from there ---------------


def test_ctrl_c_in_the_first_epoch_leaves_a_run_that_resume_starts(reference, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(["train", *COMMON, "--out", str(out)], capsys, interrupt_at=2)  # epoch 1, step 2
    line = one_line(code, err, str(out), "no checkpoint", "--resume", exit_code=130)
    assert "is in" not in line  # no checkpoint is claimed that does not exist
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.csv"]  # lock released and gone
    code, err = run_cli(["train", *COMMON, "--out", str(out), "--resume"], capsys)
    assert code == 0, err
    assert same_weights(out / "last.pt", reference / "last.pt")


def test_ctrl_c_after_the_first_checkpoint_names_it_and_resume_is_exact(reference, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(["train", *COMMON, "--out", str(out)], capsys, interrupt_at=5)  # epoch 2, step 1
    one_line(code, err, f"epoch 1 is in {out / 'last.pt'}", "--resume", exit_code=130)
    assert run_cli(["train", *COMMON, "--out", str(out), "--resume"], capsys)[0] == 0
    assert same_weights(out / "last.pt", reference / "last.pt")


def test_resuming_a_run_that_never_finished_an_epoch_needs_its_own_options(tmp_path, capsys):
    out = tmp_path / "run"
    run_cli(["train", *COMMON, "--out", str(out)], capsys, interrupt_at=1)
    code, err = run_cli(["train", *COMMON, "--seed", "3", "--out", str(out), "--resume"], capsys)
    one_line(code, err, "seed: config.json 0, now 3")
    code, err = run_cli(["train", *COMMON, "--out", str(out)], capsys)  # neither --resume nor --overwrite
    one_line(code, err, "already holds a run", "--resume")


# --- 2. the data order is a function of (seed, epoch): loader workers change nothing --------------


@pytest.mark.slow
def test_any_number_of_workers_gives_the_same_run_and_a_resume_may_change_it(reference, tmp_path, capsys):
    for workers in ("1", "2"):
        out = tmp_path / f"workers{workers}"
        assert run_cli(["train", *COMMON, "--workers", workers, "--out", str(out)], capsys)[0] == 0
        assert same_weights(out / "last.pt", reference / "last.pt"), f"--workers {workers} differs from 0"
    out = tmp_path / "changed"
    code, err = run_cli(["train", *COMMON, "--workers", "2", "--out", str(out)], capsys, interrupt_at=6)
    assert code == 130, err
    assert run_cli(["train", *COMMON, "--workers", "1", "--out", str(out), "--resume"], capsys)[0] == 0
    assert same_weights(out / "last.pt", reference / "last.pt")


# --- 3. one run at a time per folder --------------------------------------------------------------


def test_a_folder_held_by_another_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    with RunFolder(out).lock():  # as a run in another process holds it
        code, err = run_cli(["train", *COMMON, "--out", str(out)], capsys)
        one_line(code, err, str(out), "in use by another seqlite run", f"process {os.getpid()}")
    assert sorted(p.name for p in out.iterdir()) == []  # refused before writing; the lock gone with its holder
    assert run_cli(["train", *COMMON, "--out", str(out)], capsys)[0] == 0


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "seqlite", "train", "--model-args", "k=4,r=1,n=1", "--subset", "64",
            "--batch-size", "16", "--device", "cpu", "--no-progress", "--time-steps", "0", "--out", str(out), *extra]


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_folder_one_is_refused(tmp_path):
    out = tmp_path / "run"
    runs = [subprocess.Popen(_command(out, "--epochs", "4"), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((run.wait(timeout=300), run.stderr.read()) for run in runs)
    (ok, _), (refused, err) = results
    assert (ok, refused) == (0, 2), results
    line = one_line(refused, err, str(out))
    assert "in use by another seqlite run" in line or "already holds a run" in line  # whichever came second
    with open(out / "metrics.csv") as f:
        assert [row.split(",")[0] for row in f.read().split()[1:]] == ["1", "2", "3", "4"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_the_lock_of_a_killed_run_does_not_block(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom seqlite.train import RunFolder\n"
                               f"with RunFolder({str(out)!r}).lock():\n    print('held', flush=True)\n"
                               "    time.sleep(300)"],
        env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    code, err = run_cli(["train", *COMMON, "--out", str(out)], capsys)
    one_line(code, err, "in use by another seqlite run", f"process {holder.pid}")
    holder.send_signal(signal.SIGKILL)  # no clean-up: its lock file stays, but no process holds it
    holder.wait()
    assert sorted(p.name for p in out.iterdir()) == [".seqlite-run.lock"]
    assert run_cli(["train", *COMMON, "--out", str(out)], capsys)[0] == 0


# --- 4. hand-edited checkpoints: one line naming the file and what is wrong -------------------------


def _edit(ckpt: dict, case: str) -> str:
    """Damage ``ckpt`` as a hand edit would; returns the entry the message must name."""
    if case == "rng=[]":
        ckpt["rng"] = []
    elif case == "optimizer={}":
        ckpt["optimizer"] = {}
    elif case == "epoch='1'":
        ckpt["epoch"] = "1"
    elif case == "numpy state a list":
        ckpt["rng"][0]["numpy"][1] = ckpt["rng"][0]["numpy"][1].tolist()
    elif case == "model_args a list":
        ckpt["config"]["model_args"] = [4, 1, 1]
        return "model_args"
    return case.split("=")[0].split(" ")[0].replace("numpy", "rng")


EDITS = ["rng=[]", "optimizer={}", "epoch='1'", "numpy state a list", "model_args a list"]


@pytest.mark.parametrize("case", EDITS)
def test_a_hand_edited_checkpoint_is_refused_by_every_reader(reference, tmp_path, capsys, case):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "metrics.csv", "best.pt"):
        (run / name).write_bytes((reference / name).read_bytes())
    ckpt = load_checkpoint(reference / "last.pt")
    entry = _edit(ckpt, case)
    save_checkpoint(ckpt, run / "last.pt")
    before = (run / "last.pt").read_bytes()

    code, err = run_cli(["train", *COMMON, "--epochs", "3", "--out", str(run), "--resume"], capsys)
    one_line(code, err, str(run / "last.pt"), entry)
    code, err = run_cli(["eval", "--checkpoint", str(run / "last.pt"), "--device", "cpu"], capsys)
    one_line(code, err, str(run / "last.pt"), entry)
    with pytest.raises(CheckpointError, match=entry):
        create_model(INTERRUPTIBLE, checkpoint_path=run / "last.pt")
    (run / "config.json").unlink()  # the demo then reads the run's settings from its checkpoints
    (run / "best.pt").unlink()
    code, err = run_cli(["demo", "--out", str(run)], capsys)
    one_line(code, err, str(run), "did not make")
    assert (run / "last.pt").read_bytes() == before  # refused, never rewritten


# --- 5. --out "" ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["train", *COMMON], ["demo"]])
def test_an_empty_out_is_refused(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli([*command, "--out", ""], capsys)
    one_line(code, err, "--out", "must name a folder")
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


# --- 6. a full disk -------------------------------------------------------------------------------


@contextlib.contextmanager
def _small_disk(path: Path, size: int):
    """A tmpfs of ``size`` bytes at ``path``, or a skip where this machine cannot mount one (needs root)."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or done.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_is_one_line_and_loses_nothing(reference, tmp_path):
    # On a real full disk torch's zip writer fails with RuntimeError "[enforce fail at inline_container.cc]
    # unexpected pos", not OSError. The disk holds the run files and one epoch's last.pt and best.pt, but not
    # the temporary file of the next last.pt.
    page = 4096
    checkpoint = -(-(reference / "last.pt").stat().st_size // page) * page  # tmpfs counts whole pages
    size = 2 * checkpoint + 32 * 1024  # + config.json, metrics.csv, the lock: about 12 KiB of it
    with _small_disk(tmp_path / "disk", size) as disk:
        out = disk / "run"
        done = subprocess.run(_command(out, "--epochs", "3"), env=ENV, capture_output=True, text=True, timeout=300)
        line = one_line(done.returncode, done.stderr, f"cannot write {out / 'last.pt'}", "no space left",
                        "is kept (continue with --resume)")
        assert "Traceback" not in done.stderr and "enforce" not in line
        assert load_checkpoint(out / "last.pt")["epoch"] == 1 and load_checkpoint(out / "best.pt")["epoch"] == 1
        assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv"]


@pytest.mark.slow
def test_a_file_size_limit_during_a_checkpoint_is_one_line_too(tmp_path):
    # Where no tmpfs can be mounted: the kernel refuses writes past RLIMIT_FSIZE (EFBIG), and torch's
    # zip writer turns that into the same RuntimeError as a full disk.
    out = tmp_path / "run"
    argv = _command(out, "--epochs", "1")[2:]  # ["seqlite", "train", ...]
    limited = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "  # EFBIG, no kill
               f"resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000)); sys.argv = {argv!r}; "
               "runpy.run_module('seqlite', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", limited], env=ENV, capture_output=True, text=True, timeout=300)
    one_line(done.returncode, done.stderr, f"cannot write {out / 'last.pt'}", "File too large")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.csv"]  # no half-written file


# --- 7. --workers beyond the CPUs ------------------------------------------------------------------


def test_absurd_workers_are_cut_to_the_cpus_with_one_warning(tmp_path, capsys):
    from seqlite.train.devices import available_cpus

    out = tmp_path / "run"
    code, err = run_cli(["train", *COMMON, "--epochs", "1", "--workers", "10000", "--out", str(out)], capsys)
    one_line(code, err, "warning: --workers 10000", f"using {available_cpus()}", exit_code=0)
    assert json.loads((out / "config.json").read_text())["workers"] == available_cpus()
    code, err = run_cli(["eval", "--checkpoint", str(out / "last.pt"), "--device", "cpu", "--workers", "10000"],
                        capsys)
    one_line(code, err, "warning: --workers 10000", exit_code=0)


# --- 8. CIFAR files without images -----------------------------------------------------------------


@pytest.mark.parametrize("batch", ["test_batch", "data_batch_2"])
def test_a_cifar_file_without_images_is_named_before_anything_is_written(batch, tmp_path, capsys):
    from test_data import write_tiny_cifar

    write_tiny_cifar(tmp_path / "data", "cifar10", per_file=4)
    path = tmp_path / "data" / "cifar-10-batches-py" / batch
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((0, 3072), np.uint8), "labels": []}, f)
    out = tmp_path / "out"
    code, err = run_cli(["train", "--model-args", "k=4,r=1,n=1", "--dataset", "cifar10", "--data-dir",
                         str(tmp_path / "data"), "--no-download", "--no-verify-data", "--epochs", "1", "--device",
                         "cpu", "--no-progress", "--out", str(out)], capsys)
    one_line(code, err, str(path), "no images")
    assert not out.exists()


# --- the real Ctrl-C --------------------------------------------------------------------------------


@pytest.mark.slow
def test_killing_a_run_with_sigint_mid_epoch_says_the_truth(tmp_path):
    # The real Ctrl-C: SIGINT to the process once it is training (it says so before its first step).
    out = tmp_path / "run"
    run = subprocess.Popen(_command(out, "--epochs", "50"), env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    for line in run.stdout:
        if f"writing to {out}" in line:
            break
    run.send_signal(signal.SIGINT)
    err = run.communicate(timeout=120)[1]
    line = one_line(run.returncode, err, str(out), "--resume", exit_code=130)
    epoch = load_checkpoint(out / "last.pt")["epoch"] if (out / "last.pt").exists() else None
    assert (f"epoch {epoch} is in" in line) if epoch else ("no checkpoint" in line)
