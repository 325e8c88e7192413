"""Restoring random states saved on more GPUs than are visible now (device count mocked)."""

from __future__ import annotations

import torch

from seqlite.checkpoint import capture_rng_state, restore_rng_state


def test_cuda_states_beyond_the_visible_devices_are_left_out(monkeypatch):
    state = capture_rng_state()
    # Saved by a run on two GPUs (any byte tensors will do as stand-ins for their states).
    state["cuda"] = [torch.full((16,), 1, dtype=torch.uint8), torch.full((16,), 2, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": restored.append((int(s[0]), device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append(("all", len(states))))
    before = torch.rand(3)
    restore_rng_state(state)
    assert restored == [(1, 0)]  # GPU 0's state, on GPU 0; GPU 1's has no device to go to
    assert torch.equal(torch.rand(3), before)  # the CPU state was restored too
    # As many devices as states: every one goes to its own device.
    restored.clear()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    restore_rng_state(state)
    assert restored == [(1, 0), (2, 1)]
