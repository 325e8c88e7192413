"""Devices, processes, mixed precision and reproducibility settings for training.

Everything here is a small function of the device and one option, so that the training
loop reads as a list of named choices and each choice is testable on a CPU (the CUDA
queries are looked up on ``torch.cuda`` at call time, so tests can replace them).

* :class:`Process` / :func:`start_processes`: this process's place among torchrun's
  (``WORLD_SIZE`` > 1: DistributedDataParallel, NCCL on GPUs, gloo on CPUs) and its device;
  :func:`resolve_device` checks a device name against the machine; :func:`reduce_sum` and
  :func:`all_finite` agree across processes.

* :func:`resolve_amp`: ``auto`` -> ``bf16`` on GPUs with bfloat16 tensor cores (compute
  capability >= 8.0: A100, H100, RTX 30xx/40xx), ``fp16`` with a gradient scaler on older
  ones (T4, V100), ``off`` on CPUs and other devices. ``bf16`` on a GPU below 8.0 is refused:
  cuDNN has no bfloat16 convolutions there and falls back to slow generic kernels.
* :func:`autocast` / :func:`make_scaler`: the autocast context and ``GradScaler`` of a mode.
  fp16 needs the scaler (its range is too small for small gradients); bf16 does not.
* :func:`set_float32_precision`: one TF32 setting for convolutions *and* matrix products on
  CUDA (PyTorch's defaults differ: cuDNN convolutions use TF32, matmuls do not).
* :func:`set_determinism`: ``--deterministic`` (cuDNN deterministic, no autotuning,
  deterministic algorithms, the cuBLAS workspace setting they need); otherwise cuDNN autotunes.
* :func:`set_cuda_device`, :func:`check_local_rank`, :func:`init_distributed`: one process
  per GPU, each bound to its own device before anything opens a CUDA context.
* :func:`available_cpus` / :func:`default_workers`: data loader sizing from the CPUs this
  process may run on (``os.cpu_count()`` counts the machine's, not the container's).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..checks import InvalidValue
from .errors import ConfigError

__all__ = [
    "AMP_MODES",
    "DIST_TIMEOUT",
    "Process",
    "all_finite",
    "autocast",
    "available_cpus",
    "check_local_rank",
    "default_workers",
    "device_name",
    "init_distributed",
    "loader_workers",
    "make_scaler",
    "reduce_sum",
    "resolve_amp",
    "resolve_device",
    "seed_everything",
    "set_cuda_device",
    "set_determinism",
    "set_float32_precision",
    "start_processes",
]

AMP_MODES = ("auto", "off", "bf16", "fp16")
# Rank 0 may download and MD5-check CIFAR (or walk an ImageNet tree) while the other ranks
# wait at a barrier; NCCL's default 10 minutes is too short for a slow connection.
DIST_TIMEOUT = datetime.timedelta(minutes=60)
# cuBLAS needs a fixed workspace to be deterministic (the per-sample ``bmm`` of the dropout path).
CUBLAS_WORKSPACE = ":4096:8"


def _capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def resolve_amp(amp: str, device: torch.device) -> str:
    """The concrete mode (``off``, ``bf16`` or ``fp16``) that ``amp`` means on ``device``.

    Raises ``ValueError`` for an unknown mode and for ``bf16`` on a GPU of compute
    capability below 8.0 (use ``fp16`` there). ``fp16`` is accepted on a CPU (CPU autocast
    supports it, with ``GradScaler("cpu")``), where it is slow and meant for tests.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}; got {amp!r}")
    device = torch.device(device)
    if device.type != "cuda":
        return "off" if amp == "auto" else amp
    major, minor = _capability(device)
    bf16_cores = major >= 8
    if amp == "auto":
        return "bf16" if bf16_cores else "fp16"
    if amp == "bf16" and not bf16_cores:
        name = torch.cuda.get_device_name(device)
        raise ValueError(
            f"amp 'bf16' on {name} (compute capability {major}.{minor}): this GPU has no bfloat16 tensor cores, "
            "so cuDNN falls back to slow generic kernels; use --amp fp16 (or auto, which picks it)"
        )
    return amp


def autocast(device: torch.device, amp: str):
    """The autocast context of a resolved mode (a no-op for ``off``)."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


def make_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A ``GradScaler`` for fp16 (on ``device``'s type), ``None`` otherwise."""
    return torch.amp.GradScaler(torch.device(device).type) if amp == "fp16" else None


def set_float32_precision(device: torch.device, tf32: bool = True) -> None:
    """On CUDA, let float32 convolutions and matrix products both use TF32 (or both not).

    With ``--amp off`` on an A100/H100, cuDNN's default already runs convolutions in TF32,
    while the matrix products (the per-sample ``bmm`` of the dropout path, the classifier)
    stay in full float32: one setting for both keeps the arithmetic uniform. TF32 keeps
    float32's range with a 10-bit mantissa, as bf16/fp16 tensor cores do. No-op elsewhere.
    """
    if torch.device(device).type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def set_determinism(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels (``--deterministic``), or cuDNN autotuning for speed on CUDA.

    Deterministic: ``cudnn.deterministic``, no ``cudnn.benchmark``,
    ``use_deterministic_algorithms`` (``warn_only``: an operation without a deterministic
    CUDA kernel warns once instead of stopping the run) and ``CUBLAS_WORKSPACE_CONFIG``
    (needed before the first cuBLAS call; an existing value is kept). Costs speed: cuDNN may
    not pick its fastest algorithms, and some backward kernels serialise.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif torch.device(device).type == "cuda":
        # The shapes are fixed (apart from the last batch), so autotuning pays after one step.
        torch.backends.cudnn.benchmark = True


def set_cuda_device(device: torch.device) -> torch.device:
    """Make ``device`` the current CUDA device (``cuda`` alone: the current one, made explicit).

    Without this, ``--device cuda:1`` would still open a context on GPU 0 from the
    DataLoader's pin-memory thread and anything else that uses "the current device".
    """
    device = torch.device(device)
    if device.type != "cuda":
        return device
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    count = torch.cuda.device_count()
    if device.index >= count:
        raise ValueError(f"device {device} does not exist: {count} CUDA device{'s' * (count != 1)} visible "
                         f"(cuda:0 to cuda:{count - 1})")
    torch.cuda.set_device(device)
    return device


def check_local_rank(local_rank: int, device_count: int | None = None) -> None:
    """``ValueError`` when torchrun started more processes on this machine than it has GPUs."""
    count = torch.cuda.device_count() if device_count is None else device_count
    if local_rank >= count:
        raise ValueError(
            f"process with LOCAL_RANK {local_rank} has no GPU: this machine has {count} visible CUDA "
            f"device{'s' * (count != 1)}; start at most {count} processes per node (torchrun --nproc_per_node={count})"
        )


def init_distributed(device: torch.device, timeout: datetime.timedelta = DIST_TIMEOUT) -> None:
    """Join torchrun's process group: NCCL bound to this process's GPU, gloo on CPUs."""
    device = torch.device(device)
    if device.type == "cuda":
        # device_id binds the communicator to this GPU at once (no guess at the first barrier).
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; a container or Colab sees 2)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity masks
        return os.cpu_count() or 1


def loader_workers(asked: int) -> int:
    """``asked`` loader processes, at most one per CPU this process may use (more only compete for them).

    Warns when it cuts the number: thousands of processes would fail to start half-way (``EAGAIN``).
    """
    cpus = available_cpus()
    if asked <= cpus:
        return asked
    warnings.warn(f"--workers {asked} is more than the {cpus} CPUs this process may use; using {cpus} loader "
                  "processes", UserWarning, stacklevel=2)
    return cpus


def default_workers(dataset: str) -> int:
    """Data loader processes: none for the in-memory digits, else one per available CPU, at most 8."""
    if dataset == "digits":
        return 0
    return min(8, available_cpus())


# --- processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Process:
    """This process's place among torchrun's processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that prints and writes the run folder."""
        return self.rank == 0


def device_name(name: str, value: Any) -> str:
    """The check of a device option: ``auto`` or a name ``torch.device`` takes (the machine may lack it)."""
    try:
        if value != "auto":
            torch.device(value)
    except (RuntimeError, TypeError):
        raise InvalidValue(name, value, "must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    return value


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when available) or a device name this machine has; ``ConfigError`` otherwise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device_name("device", device))
    except InvalidValue as err:
        raise ConfigError("device", str(err)) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", f"device {device!r} was asked for but CUDA is not available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError("device", f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                                        "device(s), numbered from 0")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", f"device {device!r} was asked for but MPS is not available; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError("device", f"device {device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


def start_processes(device: str) -> tuple[Process, torch.device]:
    """Join torchrun's process group when there is one (``WORLD_SIZE`` > 1); pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    proc = Process()
    if world_size > 1:
        proc = Process(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    dev = resolve_device(device)
    if dev.type == "cuda" and world_size > 1:
        check_local_rank(proc.local_rank)
        dev = torch.device("cuda", proc.local_rank)
    # Before anything opens a CUDA context (the pin-memory thread would open one on GPU 0).
    dev = set_cuda_device(dev)
    if world_size > 1 and not dist.is_initialized():
        init_distributed(dev)
    return proc, dev


def reduce_sum(values: list[float], device: torch.device, proc: Process) -> list[float]:
    """``values`` summed over all processes."""
    if proc.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_finite(value: torch.Tensor, proc: Process) -> bool:
    """Whether ``value`` is finite in every process (all must agree, or one would stop while the others wait)."""
    flag = torch.isfinite(value).to(torch.int32)
    if proc.world_size > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
