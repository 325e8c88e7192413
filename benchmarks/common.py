"""Timing helpers shared by the benchmarks: interleaved rounds, medians, machine description,
and the library as it was at another git revision (to time old against new in one run)."""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

__all__ = [
    "add_revision_argument",
    "add_timing_arguments",
    "format_table",
    "interleaved_medians",
    "machine",
    "seqlite_at",
    "start_timing",
]

_REPOSITORY = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the machine: CPU, cores, threads, load, torch version, GPU if any."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU used"
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {load}, {gpu}"
    )


def interleaved_medians(
    variants: dict[str, Callable[[], object]],
    rounds: int = 7,
    warmup: int = 1,
    sync: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per call of each variant, run in turns (A B C A B C ...).

    Interleaving spreads the load of other processes evenly over the variants, and the
    median ignores the rounds a burst of load hit. ``clock=time.process_time`` counts
    the CPU time of this process only (meaningful with one thread): on a shared machine
    it leaves out the time other processes held the cores.
    """
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            if sync:
                torch.cuda.synchronize()
            start = clock()
            fn()
            if sync:
                torch.cuda.synchronize()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def format_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (so the output pastes into RESULTS.md as it is)."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def add_timing_arguments(parser: argparse.ArgumentParser, rounds: int) -> None:
    """The options every timing benchmark takes: rounds, threads, and which clock."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with process CPU time (use with --threads 1 on a shared machine)")


def start_timing(args: argparse.Namespace) -> Callable[[], float]:
    """Apply ``--threads``, seed, print the machine; return the clock ``--cpu-time`` chose."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(machine())
    return time.process_time if args.cpu_time else time.perf_counter


def seqlite_at(rev: str) -> ModuleType:
    """The ``seqlite`` package of git revision ``rev`` of this repository, as a separate package.

    ``git archive`` writes the revision's ``seqlite/`` into a temporary folder (removed
    when the process exits), imported under the name ``seqlite_at_<commit>``: its own
    modules, classes and model registry, so one process can time the revision's layers
    against the working tree's, interleaved, on the same weights (the parameter names
    are the same when the architecture is). Raises ``ValueError`` when ``rev`` is not a
    commit of this repository or the repository is not a git checkout.
    """
    found = subprocess.run(["git", "-C", str(_REPOSITORY), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode:
        raise ValueError(f"--against-rev: {rev!r} is not a commit of the git repository at {_REPOSITORY}")
    commit = found.stdout.strip()
    name = f"seqlite_at_{commit[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    archive = subprocess.run(["git", "-C", str(_REPOSITORY), "archive", "--format=tar", commit, "seqlite"],
                             capture_output=True, check=True).stdout
    folder = Path(tempfile.mkdtemp(prefix=name + "_"))
    atexit.register(shutil.rmtree, folder, True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    package = folder / "seqlite"
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def add_revision_argument(parser: argparse.ArgumentParser) -> None:
    """``--against-rev REV``: also time the layers of git revision ``REV`` (see :func:`seqlite_at`)."""
    parser.add_argument("--against-rev", metavar="REV", default=None,
                        help="also time the seqlite of this git revision (e.g. main), interleaved, same weights")
