"""Device, precision and determinism choices, with the CUDA queries mocked (no GPU needed)."""

from __future__ import annotations

import os

import pytest
import torch

from seqlite.train import devices

CUDA = torch.device("cuda", 0)


@pytest.fixture
def gpu(monkeypatch):
    """A fake GPU whose compute capability the test sets; records set_device calls."""
    state = {"capability": (7, 5), "count": 1, "current": 0, "set": []}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: state["capability"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: state["count"])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: state["current"])
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: state["set"].append(torch.device(device)))
    return state


def test_amp_auto_is_off_on_a_cpu_and_explicit_modes_stay():
    cpu = torch.device("cpu")
    assert devices.resolve_amp("auto", cpu) == "off"
    assert [devices.resolve_amp(m, cpu) for m in ("off", "bf16", "fp16")] == ["off", "bf16", "fp16"]
    with pytest.raises(ValueError, match="amp must be one of auto, off, bf16, fp16"):
        devices.resolve_amp("fp8", cpu)


@pytest.mark.parametrize("capability, expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                  ((9, 0), "bf16")])
def test_amp_auto_picks_bf16_from_ampere_on_and_fp16_before(gpu, capability, expected):
    gpu["capability"] = capability
    assert devices.resolve_amp("auto", CUDA) == expected


def test_bf16_is_refused_below_compute_capability_8_with_use_fp16(gpu):
    gpu["capability"] = (7, 5)
    with pytest.raises(ValueError, match=r"Tesla T4 \(compute capability 7.5\).*use --amp fp16"):
        devices.resolve_amp("bf16", CUDA)
    assert devices.resolve_amp("fp16", CUDA) == "fp16"
    gpu["capability"] = (8, 6)
    assert devices.resolve_amp("bf16", CUDA) == "bf16"


def test_only_fp16_gets_a_scaler_on_the_devices_type():
    cpu = torch.device("cpu")
    scaler = devices.make_scaler("fp16", cpu)
    assert isinstance(scaler, torch.amp.GradScaler) and scaler._device == "cpu"
    assert devices.make_scaler("bf16", cpu) is None and devices.make_scaler("off", cpu) is None


def test_autocast_runs_fp16_and_bf16_on_the_cpu():
    linear = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    for amp, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("off", torch.float32)):
        with devices.autocast(torch.device("cpu"), amp):
            assert linear(x).dtype == dtype


def test_tf32_is_set_for_matmuls_and_convolutions_together_on_cuda_only():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        devices.set_float32_precision(torch.device("cpu"))
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        devices.set_float32_precision(CUDA)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
        devices.set_float32_precision(CUDA, tf32=False)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_deterministic_sets_cudnn_algorithms_and_the_cublas_workspace(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms",
                        lambda mode, warn_only=False: calls.append((mode, warn_only)))
    devices.set_determinism(True, CUDA)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert calls == [(True, True)]
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    # Without --deterministic, CUDA autotunes; a CPU run changes nothing.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    devices.set_determinism(False, torch.device("cpu"))
    assert not torch.backends.cudnn.benchmark
    devices.set_determinism(False, CUDA)
    assert torch.backends.cudnn.benchmark and calls == [(True, True)]


def test_cuda_n_becomes_the_current_device(gpu):
    gpu["count"], gpu["current"] = 2, 0
    assert devices.set_cuda_device(torch.device("cuda:1")) == torch.device("cuda:1")
    assert devices.set_cuda_device(torch.device("cuda")) == torch.device("cuda:0")
    assert gpu["set"] == [torch.device("cuda:1"), torch.device("cuda:0")]
    with pytest.raises(ValueError, match=r"cuda:2 does not exist: 2 CUDA devices visible \(cuda:0 to cuda:1\)"):
        devices.set_cuda_device(torch.device("cuda:2"))
    assert devices.set_cuda_device(torch.device("cpu")) == torch.device("cpu") and len(gpu["set"]) == 2


def test_more_processes_than_gpus_is_said_plainly(gpu):
    devices.check_local_rank(0, 1)
    with pytest.raises(ValueError, match=r"LOCAL_RANK 1 has no GPU.*1 visible CUDA device;.*--nproc_per_node=1"):
        devices.check_local_rank(1, 1)
    gpu["count"] = 2
    devices.check_local_rank(1)  # the count comes from torch.cuda.device_count() by default
    with pytest.raises(ValueError, match="LOCAL_RANK 2"):
        devices.check_local_rank(2)


def test_nccl_is_bound_to_the_device_with_a_long_timeout(monkeypatch):
    calls = []
    monkeypatch.setattr(devices.dist, "init_process_group", lambda backend, **kw: calls.append((backend, kw)))
    devices.init_distributed(torch.device("cuda:1"))
    devices.init_distributed(torch.device("cpu"))
    assert calls[0] == ("nccl", {"timeout": devices.DIST_TIMEOUT, "device_id": torch.device("cuda:1")})
    assert calls[1] == ("gloo", {"timeout": devices.DIST_TIMEOUT})
    assert devices.DIST_TIMEOUT.total_seconds() > 600  # longer than NCCL's default 10 minutes


def test_workers_follow_the_cpu_affinity_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 96)
    assert devices.available_cpus() == 2
    assert devices.default_workers("cifar10") == 2 and devices.default_workers("digits") == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert devices.default_workers("imagenet") == 8
