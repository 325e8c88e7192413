"""setup_notebook: quick mode under CI or without a GPU, and an explicit override."""

from __future__ import annotations

import pytest
import torch

from seqlite.course import ClaimError, check_claim, quick_mode, setup_notebook


def test_quick_mode_under_ci(monkeypatch, capsys):
    monkeypatch.delenv("SEQLITE_QUICK", raising=False)
    monkeypatch.setenv("CI", "true")
    ctx = setup_notebook(seed=3)
    assert ctx.quick and ctx.device.type == "cpu"
    assert "Quick mode" in capsys.readouterr().out


def test_override_full_mode_without_gpu(monkeypatch, capsys):
    monkeypatch.setenv("SEQLITE_QUICK", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not quick_mode()
    ctx = setup_notebook()
    assert not ctx.quick and ctx.device.type == "cpu"
    assert "Full mode on the CPU" in capsys.readouterr().out


def test_seeds_are_fixed(monkeypatch):
    monkeypatch.setenv("SEQLITE_QUICK", "1")
    setup_notebook(seed=7, announce=False)
    a = torch.rand(3)
    setup_notebook(seed=7, announce=False)
    assert torch.equal(a, torch.rand(3))


def test_check_claim_prints_the_claim_alone(capsys):
    check_claim("the error fell below 10%", 0.04 < 0.10, evidence="error 4.0%")
    assert capsys.readouterr().out == "CHECK: the error fell below 10%\n"


def test_check_claim_fails_with_the_evidence(capsys):
    with pytest.raises(ClaimError, match=r"CHECK failed: the error fell below 10% \(error 14.0%\)"):
        check_claim("the error fell below 10%", 0.14 < 0.10, evidence="error 14.0%")
    assert capsys.readouterr().out == ""
