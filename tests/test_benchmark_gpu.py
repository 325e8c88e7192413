"""``python -m benchmarks.gpu --device cpu --tiny`` runs every section (toy sizes: not timings)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import torch

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


def _printed(text: str) -> tuple[float, float]:
    """The interval a printed number stands for: +- half a unit of its last digit."""
    number = Decimal(text)
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)
    return float(number - half), float(number + half)


def _check_recipe_row(row: list[str]) -> None:
    """Section (c)'s projections follow from its images/s, within what the printed digits allow."""
    epochs = int(row[1])
    (rate_lo, rate_hi), (epoch_lo, epoch_hi), (hours_lo, hours_hi) = (_printed(row[i]) for i in (3, 4, 5))
    assert rate_lo > 0, f"images/s printed as {row[3]!r}: too few digits to project anything from"
    assert epoch_lo <= 50_000 / rate_lo and 50_000 / rate_hi <= epoch_hi, row
    assert hours_lo <= epochs * epoch_hi / 3600 and epochs * epoch_lo / 3600 <= hours_hi, row


def test_recipe_projections_hold_on_a_slow_or_loaded_machine(monkeypatch):
    # A loaded CPU: 40 s per step of 8 images is 0.2 images/s, which a whole number prints as 0.
    bench = gpu.Bench(torch.device("cpu"), rounds=1, warmup=0)
    monkeypatch.setattr(bench, "medians", lambda variants: dict.fromkeys(variants, 40.0))
    rows = _tables(gpu.recipes_section(bench, "off", 1 / 16, ""))["c"]
    assert {r[0] for r in rows} == {"short", "paper"}
    for row in rows:
        _check_recipe_row(row)
    assert gpu.per_second(0.2) == "0.2" and gpu.per_second(1234.4) == "1234" and gpu.per_second(99.96) == "100"


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
        _check_recipe_row(row)
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
