"""seqlite.paper: the paper's Tables 2-5 as data, checked against the paper's text; runs beside them."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

from seqlite import count_params, create_model, paper
from seqlite.paper import PaperResult, compare_run, lookup, results

REPO = Path(__file__).resolve().parents[1]


def _paper_text_path() -> Path | None:
    """The paper's text: ``<repo>/../shared/paper`` as CI lays it out (or $SEQLITE_PAPER_DIR)."""
    candidates = [REPO.parent / "shared" / "paper", REPO / "shared" / "paper"]
    if os.environ.get("SEQLITE_PAPER_DIR"):
        candidates.insert(0, Path(os.environ["SEQLITE_PAPER_DIR"]))
    for folder in candidates:
        if (folder / "seqconv-paper.txt").is_file():
            return folder / "seqconv-paper.txt"
    return None


@pytest.fixture(scope="module")
def paper_text() -> str:
    path = _paper_text_path()
    if path is None:
        pytest.skip("the paper's text (shared/paper/seqconv-paper.txt beside the repository) is not here")
    return path.read_text(encoding="utf-8").replace("\xa0", " ")  # the extraction's non-breaking spaces


def number(value: float) -> str:
    """A regex for ``value`` as the paper may print it (``4.3`` / ``4.30``, ``11`` / ``11.0``)."""
    text = re.escape(f"{value:g}")
    return r"(?<![\d.])" + text + (r"0*" if "." in text else r"(\.0+)?") + r"(?![\d.])"


def error(value: float | None) -> str:
    return "-" if value is None else number(value)


def table_line(text: str, starts: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(starts)]
    assert len(lines) == 1, f"expected one line starting {starts!r} in the paper"
    return lines[0]


@pytest.mark.parametrize("row", results(3), ids=lambda r: f"{r.model} {r.setting}".strip())
def test_table3_rows_are_the_papers(row: PaperResult, paper_text: str) -> None:
    line = table_line(paper_text, "settings # params. C10+ C100+")
    star = r"(\s*\*)?"
    pattern = (
        re.escape(row.model) + r"(?![-\w])"  # "DenseNet" must not match "DenseNet-BC"
        + r"(?P<setting>[^M]{0,120}?)\s"  # the setting (garbled by the text extraction) and citations
        + number(row.params) + r"M\s+" + error(row.c10_error) + star + r"\s+" + error(row.c100_error) + star
    )
    matches = [m for m in re.finditer(pattern, line)
               if all(tok in m["setting"] for tok in re.findall(r"\w=\d+", row.setting))]
    assert matches, f"{row.label}: {row.params}M {row.c10_error} / {row.c100_error} not found in Table 3"
    if row.source:  # cited on this row, or on the first row of its family before it
        assert any(row.source in line[: m.end()] for m in matches), f"{row.label}: source {row.source}"


def test_table3_has_every_row(paper_text: str) -> None:
    line = table_line(paper_text, "settings # params. C10+ C100+")
    assert len(re.findall(r"\d\.\dM ", line)) == len(results(3)) == 18


@pytest.mark.parametrize("row", results(4), ids=lambda r: f"{r.model}{' *' if r.epochs == 100 else ''}")
def test_table4_rows_are_the_papers(row: PaperResult, paper_text: str) -> None:
    pattern = (
        "^" + re.escape(row.model) + r"( \[\d+\])?" + (r" \*" if row.epochs == 100 else "") + r"\s+"
        + number(row.params) + r"M\s+" + number(row.gflops) + r"G\s+"
        + error(row.top1_error) + r"\s+" + error(row.top5_error) + r"\s*$"
    )
    assert re.search(pattern, paper_text, re.M), f"{row.label} not found as a row of Table 4"


def test_table4_has_every_row(paper_text: str) -> None:
    block = paper_text.split("# params. FLOPs top-1 err top-5 err\n", 1)[1].split("Table 4:", 1)[0]
    assert len(block.strip().splitlines()) == len(results(4)) == 14
    # Unmarked SeqConv rows are the paper's 90-epoch results (4.2).
    assert re.search(r"best validation error of the first (90)+ epochs", paper_text)
    assert {r.epochs for r in results(4, ours=True)} == {90, 100}


def test_table2_complexity_is_the_papers(paper_text: str) -> None:
    line = table_line(paper_text, "stage output SeqResNeXt-24 SeqResNet B42 / B22")
    found = re.search(r"# params\. (\S+?)×.*? (\S+?)×.*? / (\S+?)×.*?GFLOPs (\S+) (\S+) / (\S+)", line)
    assert found, "Table 2's complexity row"
    params, gflops = [float(v) for v in found.groups()[:3]], [float(v) for v in found.groups()[3:]]
    rows = {r.model: r for r in results(2)}
    assert [rows[m].params for m in ("SeqResNeXt-24", "SeqResNet-B42", "SeqResNet-B22")] == params
    assert [rows[m].gflops for m in ("SeqResNeXt-24", "SeqResNet-B42", "SeqResNet-B22")] == gflops
    # Table 4 repeats the same complexity for the same networks.
    for row in results(4, ours=True):
        assert (row.params, row.gflops) == (rows[row.model].params, rows[row.model].gflops)


@pytest.mark.parametrize("row", results(5), ids=lambda r: r.model)
def test_table5_rows_are_the_papers(row: PaperResult, paper_text: str) -> None:
    k, r, n = (re.search(rf"\b{name}=([^,]+(?:, \d+, \d+\}})?)", row.setting)[1] for name in ("k", "r", "N"))
    pattern = (
        "^" + row.model + r"\S*\s+" + r + r"\s+" + k + r"\s+" + re.escape(n) + r"\s+"
        + number(row.params) + r"M\s+" + number(row.c10_error) + r"\s*$"
    )
    assert re.search(pattern, paper_text, re.M), f"{row.label} not found as a row of Table 5"
    # The table's check marks did not survive the text extraction; the discussion (4.5) says it.
    dense = re.search(row.model + r"\S*\s+disables windowed aggregation", paper_text) is not None
    assert ("dense" in row.setting) == dense == (row.model_args.get("windowed") is False)


CIFAR_ROWS = [r for r in results(3, ours=True) + results(5)]


@pytest.mark.parametrize("row", CIFAR_ROWS + results(2)[2:], ids=lambda r: r.label)
def test_rows_build_the_registered_network_of_that_size(row: PaperResult) -> None:
    # The paper prints parameters to 0.1M; our CIFAR networks round to the same figure. SeqResNet-B22
    # counts 11.86M against the paper's 11.8M (truncated, or counted slightly differently).
    params = count_params(row.create_model()) / 1e6
    tolerance = 0.1 if row.table == "Table 2" else 0.05
    assert abs(params - row.params) <= tolerance + 1e-9, f"{row.label}: {params:.3f}M built, paper {row.params}M"


CALL_ROWS = results(5) + [r for r in results(3, ours=True) if r.params < 2] + results(3, ours=True)[-1:]


@pytest.mark.parametrize("row", CALL_ROWS, ids=lambda r: r.label)
def test_create_model_call_builds_the_rows_network(row: PaperResult) -> None:
    # The text is a call a student can paste: evaluated with only create_model in scope, it builds
    # the row's network, whose parameter count rounds to the paper's (as the test above).
    call = row.create_model_call()
    assert call.startswith(f'create_model("{row.registry_name}"') and call.endswith(")")
    model = eval(call, {"__builtins__": {}}, {"create_model": create_model})  # noqa: S307 - our own text
    assert count_params(model) == count_params(row.create_model())
    assert abs(count_params(model) / 1e6 - row.params) <= 0.05 + 1e-9, f"{call}: {count_params(model)}"


def test_create_model_call_spells_table5_overrides_and_takes_more() -> None:
    s1, s2, s3, s4 = results(5)
    assert s1.create_model_call() == 'create_model("seqresnet_k8_r4_n1")'
    assert s2.create_model_call() == 'create_model("seqresnet_k8_r4_n1", k=8, r=3, n=(1, 2, 1), windowed=False)'
    assert s3.create_model_call() == 'create_model("seqresnet_k8_r4_n1", k=16, r=4, n=1)'
    assert s4.create_model_call() == 'create_model("seqresnet_k8_r4_n1", k=16, r=3, n=(1, 2, 2))'
    # Overrides win and come after the row's own arguments, as in create_model(**overrides).
    assert s4.create_model_call(r=1, drop_rate=0.0) == (
        'create_model("seqresnet_k8_r4_n1", k=16, r=1, n=(1, 2, 2), drop_rate=0.0)')
    small = eval(s4.create_model_call(r=1, in_chans=1), {"create_model": create_model})  # noqa: S307
    assert count_params(small) == count_params(s4.create_model(r=1, in_chans=1))
    with pytest.raises(ValueError, match="does not build it"):
        results(3)[0].create_model_call()


def test_lookup_by_registry_name_and_overrides() -> None:
    assert lookup("seqresnet_k8_r4_n1").table == "Table 3"
    assert lookup("seqresnet_k8_r4_n1", table=5).model == "S1"
    assert lookup("seqresnet_k8_r4_n1", {"num_classes": 100}, dataset="cifar100").c100_error == 22.65
    # The same architecture however its arguments are spelled.
    s2 = lookup("seqresnet_k8_r4_n1", {"r": 3, "n": [1, 2, 1], "windowed": False})
    assert (s2.model, s2.c10_error) == ("S2", 4.90)
    assert lookup("seqresnet_cifar", {"k": 16, "r": 3, "n": (1, 2, 2)}).model == "S4"
    assert lookup("seqresnet_k8_r4_n1", {"k": 16}).model == "S3"
    assert lookup("seqresnet_b_k32_r12_n3", {"n": (3, 3, 3)}).c10_error == 3.72
    # ImageNet: Table 2 has no errors; the 90-epoch row comes first, 100 epochs on request.
    assert lookup("seqresnet_b22").table == "Table 2"
    assert lookup("seqresnet_b22", dataset="imagenet").top1_error == 23.67
    assert lookup("seqresnet_b22", dataset="imagenet", epochs=100).top1_error == 23.35


def test_lookup_errors_say_what_the_paper_has() -> None:
    with pytest.raises(ValueError, match="seqresnet_k8_r4_n1"):
        lookup("seqresnet_k8_r4_n1", {"r": 2})
    with pytest.raises(ValueError, match="no results on imagenet"):
        lookup("seqresnet_k8_r4_n1", dataset="imagenet")
    with pytest.raises(ValueError, match="dataset must be one of"):
        lookup("seqresnet_k8_r4_n1", dataset="digits")
    with pytest.raises(ValueError, match="table must be one of"):
        results(6)


def test_rows_error_by_dataset_and_markdown() -> None:
    row = lookup("seqresnet_b_k16_r7_n1")
    assert (row.error("cifar10"), row.error("cifar100"), row.error("imagenet")) == (4.3, 20.76, None)
    table = paper.markdown_table(results(5))
    assert table.splitlines()[0].startswith("| table | model | setting | params (M) | C10+ error (%)")
    assert "| S2 | k=8, r=3, N={1, 2, 1}, dense | 1.2 | 4.90 |" in table
    assert "top-1" not in table  # only the columns the rows fill
    # The seqlite column is the exact call, overrides included (S2-S4 are the S1 model changed).
    assert '| `create_model("seqresnet_k8_r4_n1", k=16, r=3, n=(1, 2, 2))` |' in table
    assert '| `create_model("seqresnet_k8_r4_n1")` |' in table.splitlines()[2]


def write_run(folder: Path, errors: list[float], config: dict | None = None, top5: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "test_top5_error", "seconds"]
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for epoch, err in enumerate(errors, 1):
            writer.writerow({"epoch": epoch, "lr": 0.1, "train_loss": 1.0, "train_error": 10.0, "test_loss": 1.0,
                             "test_error": err, "test_top5_error": err / 4 if top5 else "", "seconds": 1.0})
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_compare_run_reads_final_and_best_beside_the_papers_row(tmp_path: Path) -> None:
    run = write_run(tmp_path / "c10", [30.0, 6.5, 4.2, 4.9],
                    {"model": "seqresnet_k8_r4_n1", "model_args": {}, "dataset": "cifar10"})
    result = compare_run(run)
    assert (result.final_error, result.best_error, result.best_epoch, result.epochs) == (4.9, 4.2, 3, 4)
    assert result.paper_error == 4.78 and result.row.table == "Table 3" and result.same_task
    assert result.as_dict()["paper_error"] == 4.78
    text = result.to_markdown()
    assert "| paper, SeqResNet k=8, r=4, N=1 (Table 3) | C10+ | 300 | 4.78 |" in text
    assert "| this run, final epoch | cifar10 | 4 | 4.90 |" in text
    assert "best epoch (3" in text and "4.20" in text
    # Arguments win over config.json; the metrics file itself is accepted too.
    s2 = compare_run(run / "metrics.csv", model_args={"r": 3, "n": (1, 2, 1), "windowed": False})
    assert s2.row.model == "S2" and s2.paper_error == 4.90


def test_compare_run_on_imagenet_has_top5(tmp_path: Path) -> None:
    run = write_run(tmp_path / "in", [40.0, 24.0], top5=True)
    result = compare_run(run, "seqresnext24", "imagenet")
    assert (result.paper_error, result.paper_top5_error, result.final_top5_error) == (21.92, 5.82, 6.0)
    assert "top-5 error (%)" in result.to_markdown()


def test_compare_run_on_another_dataset_says_not_comparable(tmp_path: Path) -> None:
    run = write_run(tmp_path / "digits", [10.0, 2.0],
                    {"model": "seqresnet_k8_r4_n1", "model_args": {"r": 2}, "dataset": "digits"})
    with pytest.raises(ValueError, match="no results on 'digits'"):
        compare_run(run)
    result = compare_run(run, dataset="cifar10", row=lookup("seqresnet_k8_r4_n1"))
    assert not result.same_task
    assert "not comparable" in result.to_markdown()
    bare = compare_run(write_run(tmp_path / "digits2", [4.0]), "seqresnet_k8_r4_n1", "cifar10", run_dataset="digits")
    assert not bare.same_task and "trained on digits" in bare.to_markdown()
    with pytest.raises(ValueError, match="model must be given"):
        compare_run(write_run(tmp_path / "bare", [3.0]), dataset="cifar10")
    with pytest.raises(ValueError, match="metrics.csv"):
        compare_run(tmp_path / "missing", "seqresnet_k8_r4_n1", "cifar10")
    with pytest.raises(ValueError, match="no C100"):
        compare_run(run, dataset="cifar100", row=results(5)[0])
