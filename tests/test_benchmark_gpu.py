"""``python -m benchmarks.gpu --device cpu --tiny`` runs every section (toy sizes: not timings)."""

from __future__ import annotations

import pytest

from benchmarks import gpu  # the repository root is on sys.path


def _tables(report: str) -> dict[str, list[list[str]]]:
    """The rows of each section's table, by the section's letter."""
    tables: dict[str, list[list[str]]] = {}
    section = None
    for line in report.splitlines():
        if line.startswith("## ("):
            section = line[4]
            tables[section] = []
        elif section and line.startswith("| ") and not line.startswith("|-"):
            tables[section].append([cell.strip() for cell in line.strip("|").split("|")])
    return {k: rows[1:] for k, rows in tables.items()}  # without the header rows


@pytest.mark.slow
def test_gpu_report_runs_every_section_on_the_cpu(tmp_path):
    out = tmp_path / "report.md"
    report = gpu.main(["--device", "cpu", "--tiny", "--out", str(out)])
    assert out.read_text() == report
    assert report.startswith("# GPU check: CPU (no GPU)") and "amp auto here means **off**" in report
    tables = _tables(report)
    assert sorted(tables) == ["a", "b", "c", "d"]
    layers = tables["a"]
    assert {(r[0], r[1]) for r in layers} == {(a, f) for a in ("bf16", "fp16") for f in ("NCHW", "channels_last")}
    assert len(layers) == 12 and all(float(r[5].rstrip("x")) > 0 for r in layers)
    variants = {(r[0], r[1]): r[2] for r in tables["b"]}
    # plain_twin replaces bottleneck layers too, so both models have their plain network.
    assert set(variants) == {(m, v) for m in ("seqresnet_k8_r4_n1", "seqresnet_b22")
                             for v in ("eager", "per-group reference", "plain network")}
    assert all(float(v) > 0 for v in variants.values())
    recipes = {r[0]: r for r in tables["c"]}
    assert set(recipes) == {"short", "paper"} and recipes["paper"][1] == "300" and recipes["short"][1] == "40"
    for row in recipes.values():
        epochs, images_s, epoch_s, hours = int(row[1]), float(row[3]), float(row[4]), float(row[5])
        # (images/s is printed as a whole number: at toy sizes that rounding is a few percent)
        assert epoch_s == pytest.approx(50_000 / images_s, rel=0.6 / images_s + 0.01)
        assert hours == pytest.approx(epochs * epoch_s / 3600, rel=0.01)
    amp_rows = {r[0]: r for r in tables["d"]}
    assert set(amp_rows) == {"off", "bf16", "fp16"}
    for row in amp_rows.values():
        assert row[1] == "ok" and float(row[3]) < float(row[2]) and row[4] == "yes"
    assert amp_rows["fp16"][5] != "-" and amp_rows["off"][5] == "-"  # fp16 trains with a loss scaler


def test_gpu_report_runs_only_the_sections_asked_for(tmp_path):
    out = tmp_path / "report.md"
    report = gpu.main(["--device", "cpu", "--tiny", "--sections", "d", "--out", str(out)])
    assert out.read_text() == report
    assert sorted(_tables(report)) == ["d"]
    with pytest.raises(SystemExit):
        gpu.main(["--device", "cpu", "--tiny", "--sections", "a,e"])
