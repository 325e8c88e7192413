"""Where the time of one WSeqConv layer goes: convolution calls against everything else.

    python -m benchmarks.breakdown [--rounds 5] [--batch 64] [--threads N] [--channels-last]

Profiles forward+backward (``torch.profiler``, CPU) of the plain Conv2d+BN+ReLU, the
fast SeqConv2d and the per-group baseline (``set_fast(layer, False)``) at the three
shapes of ``seqresnet_k8_r4_n1``, and splits each one's time into the convolution kernels (``mkldnn_convolution`` and
``convolution_backward``, self time) and all other operators. The fast layer's
convolution time alone, divided by the plain layer's *whole* time, is a floor under the
layer ratio goal (1.5x the plain layer) that no rearrangement of the other operators can go below.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from seqlite.layers import SeqConv2d, set_fast

from .common import add_timing_arguments, format_table, start_timing
from .layers import SHAPES, _plain, _step

CONV_KERNELS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::slow_conv2d_forward",
                "aten::_slow_conv2d_backward", "aten::cudnn_convolution")


def _split(runs: dict[str, Callable[[], None]], rounds: int) -> dict[str, tuple[float, float]]:
    """(convolution ms, other ms) per call of each run, from the operators' self times.

    The runs take turns, one profiled call each per round (as in
    :func:`~benchmarks.common.interleaved_medians`), so a burst of load on a shared
    machine hits all of them alike; the per-round splits are summed.
    """
    for run in runs.values():
        for _ in range(2):
            run()
    totals = {name: [0.0, 0.0] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run()
            for event in prof.key_averages():
                if event.key.startswith(("aten::", "autograd::")):
                    totals[name][event.key not in CONV_KERNELS] += event.self_cpu_time_total / 1e3 / rounds
    return {name: (conv, other) for name, (conv, other) in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_timing_arguments(parser, rounds=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)
    start_timing(args)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    print(f"batch {args.batch}, float32, forward+backward, profiler self time, {args.rounds} interleaved rounds\n")
    rows = []
    for channels, size in SHAPES:
        x = torch.randn(args.batch, channels, size, size).to(memory_format=memory_format).requires_grad_()
        modules = {
            "plain": _plain(channels),
            "fast": SeqConv2d(channels, channels, args.k, window=channels),
            "baseline": set_fast(SeqConv2d(channels, channels, args.k, window=channels), False),
        }
        split = _split({n: _step(m.to(memory_format=memory_format), x) for n, m in modules.items()}, args.rounds)
        plain_total = sum(split["plain"])
        row = [f"C={channels} {size}x{size}"]
        for name in modules:
            conv, other = split[name]
            row += [f"{conv:.1f} + {other:.1f}"]
        row += [f"{split['fast'][0] / plain_total:.2f}x", f"{sum(split['fast']) / plain_total:.2f}x"]
        rows.append(row)
        print(rows[-1], flush=True)
    print()
    print(format_table(["shape (k=8)", "plain conv + other ms", "fast conv + other ms",
                        "baseline conv + other ms", "fast conv alone / plain", "fast / plain"], rows))


if __name__ == "__main__":
    main()
