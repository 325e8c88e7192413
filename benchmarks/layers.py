"""Forward+backward time of one WSeqConv layer against a Conv2d+BN+ReLU of the same shape.

    python -m benchmarks.layers [--rounds 7] [--batch 64] [--threads N] [--formats cl,nchw] [--cpu-time]
                                [--no-baseline] [--against-rev REV]

The shapes are the three stages of ``seqresnet_k8_r4_n1`` (C=64/128/192, k=8, window C,
32/16/8 pixels). Goal: fast WSeqConv <= 1.5x the plain layer. The baseline is
the same layer run group by group as the paper writes it (``set_fast(layer, False)``).
``--against-rev REV`` also times the fast layer of git revision ``REV`` (on the same
weights, interleaved): a change to the library must not slow it down.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from seqlite.layers import SeqConv2d, set_fast

from .common import (
    add_revision_argument,
    add_timing_arguments,
    format_table,
    interleaved_medians,
    machine,
    seqlite_at,
    start_timing,
)

SHAPES = [(64, 32), (128, 16), (192, 8)]


def _step(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()

    return run


def _plain(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_timing_arguments(parser, rounds=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--formats", default="cl,nchw", help="cl (channels_last) and/or nchw")
    parser.add_argument("--no-baseline", action="store_true", help="skip the (slow) per-group loop")
    add_revision_argument(parser)
    args = parser.parse_args(argv)
    try:
        previous = None if args.against_rev is None else seqlite_at(args.against_rev)
    except ValueError as error:
        parser.error(str(error))
    clock = start_timing(args)
    rev = args.against_rev
    old = f"fast@{rev}"  # the variant's name: never the same as the others'
    print(f"batch {args.batch}, float32, forward+backward, median of {args.rounds} interleaved rounds, "
          f"{'process CPU time' if args.cpu_time else 'wall-clock time'}\n")
    header = _header(args.k, rev, args.no_baseline)
    rows = []
    for fmt in args.formats.split(","):
        memory_format = torch.channels_last if fmt == "cl" else torch.contiguous_format
        for channels, size in SHAPES:
            x = torch.randn(args.batch, channels, size, size).to(memory_format=memory_format)
            x.requires_grad_()
            fast = SeqConv2d(channels, channels, args.k, window=channels)
            modules = {"conv+bn+relu": _plain(channels), "fast": fast}
            if previous is not None:
                modules[old] = previous.SeqConv2d(channels, channels, args.k, window=channels)
                modules[old].load_state_dict(fast.state_dict())
            if not args.no_baseline:
                modules["baseline"] = set_fast(SeqConv2d(channels, channels, args.k, window=channels), False)
            variants = {n: _step(m.to(memory_format=memory_format), x) for n, m in modules.items()}
            t = interleaved_medians(variants, rounds=args.rounds, clock=clock)
            plain = t["conv+bn+relu"]
            row = [fmt, f"C={channels} {size}x{size}", f"{plain * 1e3:.1f}", f"{t['fast'] * 1e3:.1f}",
                   f"{t['fast'] / plain:.2f}x"]
            if rev is not None:
                row += [f"{t[old] * 1e3:.1f}", f"{t['fast'] / t[old]:.2f}x"]
            if "baseline" in t:
                row += [f"{t['baseline'] * 1e3:.1f}", f"{t['baseline'] / plain:.2f}x",
                        f"{t['baseline'] / t['fast']:.2f}x"]
            rows.append(row)
            print(format_table(header, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_table(header, rows))
    print(f"\n{machine()}")


def _header(k: int, rev: str | None, no_baseline: bool) -> list[str]:
    h = ["format", f"shape (k={k})", "conv+bn+relu ms", "fast ms", "fast / conv"]
    if rev is not None:
        h += [f"fast@{rev} ms", f"fast / fast@{rev}"]
    return h if no_baseline else h + ["baseline ms", "baseline / conv", "speed-up"]


if __name__ == "__main__":
    main()
