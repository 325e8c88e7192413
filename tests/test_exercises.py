"""seqlite.exercises: checks print what is wrong with a hint, solutions fail loudly."""

from __future__ import annotations

import pytest
import torch

from seqlite.exercises import Check, ExerciseError, unanswered


def test_unanswered_names_the_missing_answers(capsys):
    assert unanswered(a=None, b=3)
    assert "fill in a" in capsys.readouterr().out
    assert not unanswered(a=1)


def test_a_wrong_answer_prints_expected_got_and_hint(capsys):
    check = Check("groups")
    assert not check.equal(5, 6, "number of groups", "g = out / k")
    assert not check.result("fine")
    out = capsys.readouterr().out
    assert "expected 6, got 5" in out and "hint: g = out / k" in out and "Correct" not in out


def test_strict_raises_and_quiet_success_prints_nothing(capsys):
    bad = Check("x")
    bad.equal(1, 2, "x", "hint")
    with pytest.raises(ExerciseError, match="expected 2, got 1"):
        bad.result("ok", strict=True)
    good = Check("x")
    good.equal(2, 2, "x", "hint")
    assert good.result("ok", strict=True, quiet=True)
    assert capsys.readouterr().out == ""


def test_close_reports_shape_nan_and_value_differences():
    want = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    check = Check("t")
    assert check.close(want.clone(), want, "t", "h")
    assert not check.close(torch.zeros(3), want, "t", "h")
    assert not check.close(want.nan_to_num(0.0), want, "t", "h")
    off = want.clone()
    off[1, 1] = 3.5
    assert not check.close(off, want, "t", "h")
    assert [w.split(":")[1].strip().split(" ")[0] for w, _ in check.problems] == ["expected", "NaN", "values"]


def test_call_marks_not_implemented_as_unanswered_and_reports_other_errors(capsys):
    def stub():
        raise NotImplementedError

    check = Check("f")
    assert check.call(stub) == (False, None)
    assert not check.result("ok")
    assert "Not answered yet" in capsys.readouterr().out
    broken = Check("f")
    ok, _ = broken.call(lambda: torch.zeros(2) + torch.zeros(3), what="my_layer")
    assert not ok and "my_layer raised RuntimeError" in broken.problems[0][0]
