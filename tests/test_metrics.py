"""metrics.csv: written by training, read by the plots, a torn last row (a kill mid-write) skipped with a warning."""

from __future__ import annotations

import math

import pytest

from seqlite.train.run_folder import METRICS_COLUMNS, append_metrics, read_metrics, write_metrics


def _rows(n: int) -> list[dict[str, float]]:
    return [{"epoch": e, "lr": 0.1, "train_loss": 2.0 / e, "train_error": 50.0 / e, "test_loss": 2.5 / e,
             "test_error": 60.0 / e, "test_top5_error": 10.0 / e, "seconds": 1.5} for e in range(1, n + 1)]


def test_rows_round_trip(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics(path, _rows(2))
    append_metrics(path, _rows(3)[-1])
    assert path.read_text().splitlines()[0] == ",".join(METRICS_COLUMNS)
    assert read_metrics(path) == _rows(3)  # exact: csv writes repr(float)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary file left


@pytest.mark.parametrize("torn", ["3,0.1,0.6", "3", "1e", "3,0.1,0.6,16.6,0.8,20.0,3.3"])
def test_a_torn_last_row_is_skipped_with_a_warning(tmp_path, torn):
    path = tmp_path / "metrics.csv"
    write_metrics(path, _rows(2))
    with open(path, "a") as f:
        f.write(torn)  # a kill in the middle of append_metrics
    with pytest.warns(UserWarning, match="incomplete last line 4"):
        rows = read_metrics(path)
    assert rows == _rows(2)


def test_the_training_curves_plot_skips_a_torn_last_row(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from seqlite.viz import plot_training_curves

    path = tmp_path / "metrics.csv"
    write_metrics(path, _rows(3))
    with open(path, "a") as f:
        f.write("4,0.1,0.")
    with pytest.warns(UserWarning, match="incomplete last line"):
        fig = plot_training_curves(path)
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_xdata()) == [1, 2, 3]
    assert not any(math.isnan(y) for y in lines[0].get_ydata())


def test_a_torn_row_before_the_last_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics(path, _rows(1))
    with open(path, "a") as f:
        f.write("2,0.1\n")
    append_metrics(path, _rows(3)[-1])
    with pytest.raises(ValueError, match=r"line 3 has 2 of the 8 columns"):
        read_metrics(path)
