"""Timing helpers shared by the benchmarks: interleaved rounds, medians, machine description."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["add_timing_arguments", "format_table", "interleaved_medians", "machine", "start_timing"]


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
