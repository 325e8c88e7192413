"""The benchmark scripts run and print their tables (tiny sizes: these are not timings)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

import seqlite
from benchmarks import breakdown, layers, memory, train_step  # the repository root is on sys.path
from benchmarks.common import seqlite_at

_ROOT = Path(__file__).resolve().parent.parent
_IN_GIT = subprocess.run(["git", "-C", str(_ROOT), "rev-parse", "--verify", "--quiet", "HEAD"],
                         capture_output=True).returncode == 0
needs_git = pytest.mark.skipif(not _IN_GIT, reason="--against-rev needs a git checkout with a commit")


def _table_rows(text: str) -> list[list[str]]:
    """Rows of the last Markdown table printed (progress lines come before it)."""
    lines = text.splitlines()
    last_rule = max(i for i, line in enumerate(lines) if line.startswith("|-"))
    rows = []
    for line in lines[last_rule + 1 :]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_layers_benchmark_prints_a_ratio_per_shape(capsys):
    layers.main(["--batch", "2", "--rounds", "1", "--formats", "nchw"])
    rows = _table_rows(capsys.readouterr().out)
    assert [r[1] for r in rows] == ["C=64 32x32", "C=128 16x16", "C=192 8x8"]
    assert all(r[4].endswith("x") and float(r[4][:-1]) > 0 for r in rows)


@needs_git
def test_layers_benchmark_against_a_git_revision(capsys):
    layers.main(["--batch", "2", "--rounds", "1", "--formats", "nchw", "--no-baseline", "--against-rev", "HEAD"])
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert "fast / fast@HEAD" in out and len(rows) == 3
    assert all(float(r[6][:-1]) > 0 for r in rows)
    with pytest.raises(SystemExit):
        layers.main(["--against-rev", "no-such-revision-anywhere"])


@needs_git
def test_seqlite_at_a_revision_is_a_separate_package():
    old = seqlite_at("HEAD")
    assert old is seqlite_at("HEAD")  # imported once per process
    assert old.__name__.startswith("seqlite_at_") and old.SeqConv2d is not seqlite.SeqConv2d
    assert not Path(old.__file__).is_relative_to(_ROOT)
    torch.manual_seed(0)
    new = seqlite.SeqConv2d(8, 16, 4, window=8).eval()
    previous = old.SeqConv2d(8, 16, 4, window=8).eval()
    previous.load_state_dict(new.state_dict())  # same parameter names: same weights
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(previous(x), new(x))


def test_train_step_benchmark_against_every_reference(capsys):
    train_step.main(["--batch", "2", "--rounds", "1", "--against", "baseline,plain,memory-efficient"])
    out = capsys.readouterr().out
    (row,) = _table_rows(out)
    assert row[0] == "seqresnet_k8_r4_n1" and "baseline / plain" in out
    with pytest.raises(SystemExit):
        train_step.main(["--against", "nonsense"])


@needs_git
def test_train_step_benchmark_against_a_git_revision(capsys):
    train_step.main(["--batch", "2", "--rounds", "1", "--against", "none", "--against-rev", "HEAD"])
    out = capsys.readouterr().out
    (row,) = _table_rows(out)
    assert "fast@HEAD / fast" in out and row[-1].endswith("x") and float(row[-1][:-1]) > 0


def test_breakdown_benchmark_splits_convolution_time(capsys):
    breakdown.main(["--batch", "2", "--rounds", "1"])
    rows = _table_rows(capsys.readouterr().out)
    assert len(rows) == 3
    for row in rows:
        conv, other = (float(v) for v in row[2].split(" + "))
        assert conv > 0 and other > 0


def test_memory_benchmark_measures_each_variant_in_its_own_process(capsys):
    memory.main(["--batch", "2", "--imagenet-batch", "1", "--cases", "dense_16_512,b22_224"])
    rows = _table_rows(capsys.readouterr().out)
    assert [(r[0], r[1]) for r in rows] == [
        ("dense_16_512", "fast"), ("dense_16_512", "baseline"), ("b22_224", "default"), ("b22_224", "memory_efficient")
    ]
    kept = {(r[0], r[1]): float(r[2]) for r in rows}
    peak = {(r[0], r[1]): float(r[3]) for r in rows}
    for smaller, larger in [("memory_efficient", "default"), ("fast", "baseline")]:
        case = "b22_224" if smaller == "memory_efficient" else "dense_16_512"
        assert kept[case, smaller] < kept[case, larger] and peak[case, smaller] < peak[case, larger]
