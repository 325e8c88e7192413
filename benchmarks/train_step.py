"""Whole training step of a registered model: fast SeqConv2d against the per-group loop.

    python -m benchmarks.train_step [--model seqresnet_k8_r4_n1] [--batch 64] [--size 32] [--rounds 5]
                                    [--threads N] [--channels-last] [--against memory-efficient]

One step = forward, cross-entropy, backward, SGD (Nesterov, as the paper trains). The
model keeps its default dropout (p = 0.1 for the CIFAR models). Goal (issue 5): the fast
step at least 2.5x faster than the baseline's. ``--against memory-efficient`` times the
same model with ``memory_efficient=True`` (recomputation in backward) instead of the
baseline, to price that mode, e.g. ``--model seqresnet_b22 --size 224 --batch 16``.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch
from torch import nn

from seqlite.registry import create_model

from .baseline import use_baseline
from .common import add_timing_arguments, format_table, interleaved_medians, machine, start_timing


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="seqresnet_k8_r4_n1")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    add_timing_arguments(parser, rounds=5)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--against", choices=["baseline", "memory-efficient"], default="baseline")
    args = parser.parse_args(argv)
    clock = start_timing(args)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    fast = create_model(args.model).train().to(memory_format=memory_format)
    other = copy.deepcopy(fast)
    if args.against == "baseline":
        use_baseline(other)
    else:
        other.memory_efficient = True
    name = args.against
    x = torch.randn(args.batch, 3, args.size, args.size).to(memory_format=memory_format)
    y = torch.randint(0, fast.num_classes, (args.batch,))
    fmt = "channels_last" if args.channels_last else "NCHW"
    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, float32, {fmt}, "
          f"median of {args.rounds} interleaved rounds, {'process CPU' if args.cpu_time else 'wall-clock'} time\n")
    t = interleaved_medians({"fast": _step(fast, x, y), name: _step(other, x, y)}, rounds=args.rounds, clock=clock)
    print(format_table(
        ["model", "format", "fast s/step", f"{name} s/step", f"{name} / fast"],
        [[args.model, fmt, f"{t['fast']:.3f}", f"{t[name]:.3f}", f"{t[name] / t['fast']:.2f}x"]],
    ))
    print(f"\n{machine()}")


if __name__ == "__main__":
    main()
