"""Whole training step of a registered model: fast SeqConv2d against the per-group loop.

    python -m benchmarks.train_step [--model seqresnet_k8_r4_n1] [--batch 64] [--size 32] [--rounds 5]
                                    [--threads N] [--channels-last] [--against baseline,plain]
                                    [--against-rev REV]

One step = forward, cross-entropy, backward, SGD (Nesterov, as the paper trains). The
model keeps its default dropout (p = 0.1 for the CIFAR models). Goal: the fast
step at least 2.5x faster than the baseline's. ``--against`` lists what the fast step is
timed against (interleaved, same weights where they exist):

* ``baseline``: the per-group loop, as the paper writes it (``set_fast(model, False)``);
* ``plain``: the same network with every SeqConv layer replaced by one plain
  Conv2d+BN+ReLU of the same width - the physical reference, so ``baseline / plain`` is
  the most any SeqConv implementation as fast as a plain convolution could gain;
* ``memory-efficient``: the same model with ``memory_efficient=True`` (recomputation in
  backward), to price that mode, e.g. ``--model seqresnet_b22 --size 224 --batch 16``.

``--against-rev REV`` also times the same model built by the ``seqlite`` of git revision
``REV`` (same weights): a change to the library must not slow the step down.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch
from torch import nn

from seqlite.layers import set_fast
from seqlite.registry import create_model
from seqlite.twin import plain_twin

from .common import (
    add_revision_argument,
    add_timing_arguments,
    format_table,
    interleaved_medians,
    machine,
    seqlite_at,
    start_timing,
)


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return run


def _memory_efficient(model: nn.Module) -> nn.Module:
    model.set_grad_checkpointing()
    return model


_OTHERS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "baseline": lambda model: set_fast(model, False),
    "plain": plain_twin,  # the same widths with Conv2d+BN+ReLU: the physical reference
    "memory-efficient": _memory_efficient,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="seqresnet_k8_r4_n1")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    add_timing_arguments(parser, rounds=5)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--drop-rate", type=float, default=None, help="override the model's dropout")
    parser.add_argument("--against", default="baseline",
                        help="comma-separated: baseline, plain, memory-efficient (or none)")
    add_revision_argument(parser)
    args = parser.parse_args(argv)
    against = [] if args.against == "none" else args.against.split(",")
    for name in against:
        if name not in _OTHERS:
            parser.error(f"--against: unknown {name!r}; choose from {', '.join(_OTHERS)}")
    try:
        previous = None if args.against_rev is None else seqlite_at(args.against_rev)
    except ValueError as error:
        parser.error(str(error))
    clock = start_timing(args)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    overrides = {} if args.drop_rate is None else {"drop_rate": args.drop_rate}
    fast = create_model(args.model, **overrides).train().to(memory_format=memory_format)
    others = {name: _OTHERS[name](copy.deepcopy(fast)).to(memory_format=memory_format) for name in against}
    if previous is not None:
        old = previous.create_model(args.model, **overrides).train()
        old.load_state_dict(fast.state_dict())
        others[f"fast@{args.against_rev}"] = old.to(memory_format=memory_format)
    x = torch.randn(args.batch, 3, args.size, args.size).to(memory_format=memory_format)
    y = torch.randint(0, fast.num_classes, (args.batch,))
    fmt = "channels_last" if args.channels_last else "NCHW"
    print(f"{args.model}, dropout {fast.drop_rate}, batch {args.batch}, {args.size}x{args.size}, float32, {fmt}, "
          f"median of {args.rounds} interleaved rounds, {'process CPU' if args.cpu_time else 'wall-clock'} time\n")
    variants = {"fast": _step(fast, x, y)} | {name: _step(m, x, y) for name, m in others.items()}
    t = interleaved_medians(variants, rounds=args.rounds, clock=clock)
    header, row = ["model", "format", "fast s/step"], [args.model, fmt, f"{t['fast']:.3f}"]
    for name in others:
        header += [f"{name} s/step", f"{name} / fast"]
        row += [f"{t[name]:.3f}", f"{t[name] / t['fast']:.2f}x"]
    if {"baseline", "plain"} <= set(against):
        header.append("baseline / plain (most a 1.0x SeqConv could gain)")
        row.append(f"{t['baseline'] / t['plain']:.2f}x")
    print(format_table(header, [row]))
    print(f"\n{machine()}")


if __name__ == "__main__":
    main()
