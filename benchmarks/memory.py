"""Peak memory of a training step: fast SeqConv2d against the per-group loop, and the
memory-efficient (recomputing) mode of the ImageNet networks against the default.

    python -m benchmarks.memory [--batch 64] [--cases b_k32_r12_n3,dense_16_512,b22_224]

Cases (each variant runs in its own fresh subprocess):

* ``b_k32_r12_n3``: a training step of ``seqresnet_b_k32_r12_n3`` on 32x32 inputs with
  its default dropout; fast against baseline (the per-group loop, ``set_fast(model, False)``);
* ``dense_16_512``: one dense SeqConv layer 16 -> 512, k=8 (64 groups) on 32x32; fast
  against baseline;
* ``b22_224``: a training step of ``seqresnet_b22`` on 224x224 inputs (``--imagenet-batch``,
  default 16); default against ``memory_efficient=True``.

Figures per variant:

* *kept for backward*: bytes of the distinct storages created during the forward pass
  that are still alive when it ends (a ``TorchDispatchMode`` sees every operator's
  output; weak references tell which survive): the activation memory, whoever keeps it
  (autograd's saved tensors, or checkpointing's saved inputs);
* *peak live tensors*: the most bytes of such storages alive at once during forward and
  backward (sampled every few operators; gradients included, parameters not): what a
  caching allocator, such as CUDA's, would need on top of the model;
* *peak RSS growth*: ``ru_maxrss`` after the step minus the resident size just before
  it (model, input and allocator already warm) - what the process really needed, as the
  OS saw it. tracemalloc and the torch profiler do not see all of it on CPU;
* *step s*: wall-clock seconds of a second, timed training step in the same process
  (a single step: indicative only; ``benchmarks.train_step`` times steps properly).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .common import format_table, machine

CASES = {
    "b_k32_r12_n3": ("fast", "baseline"),
    "dense_16_512": ("fast", "baseline"),
    "b22_224": ("default", "memory_efficient"),
}


class LiveStorages(TorchDispatchMode):
    """Records every storage an operator creates while active; :meth:`live_bytes` sums the survivors.

    :attr:`peak_bytes` is the largest such sum seen, checked every ``every`` operators.
    """

    def __init__(self, every: int = 4) -> None:
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak_bytes = 0
        self._every, self._calls = every, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                s = t.untyped_storage()
                self.storages[s.data_ptr()] = (StorageWeakRef(s), s.nbytes())
        self._calls += 1
        if self._calls % self._every == 0:
            self.peak_bytes = max(self.peak_bytes, self.live_bytes())
        return out

    def live_bytes(self) -> int:
        self.storages = {ptr: (ref, n) for ptr, (ref, n) in self.storages.items() if not ref.expired()}
        return sum(n for _, n in self.storages.values())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _measure(case: str, variant: str, batch: int, imagenet_batch: int) -> dict:
    from seqlite.layers import SeqConv2d, set_fast
    from seqlite.registry import create_model

    torch.manual_seed(0)
    if case == "b_k32_r12_n3":
        module = create_model("seqresnet_b_k32_r12_n3").train()
        x = torch.randn(batch, 3, 32, 32)
    elif case == "dense_16_512":
        module = SeqConv2d(16, 512, 8).train()
        x = torch.randn(batch, 16, 32, 32, requires_grad=True)
    else:
        module = create_model("seqresnet_b22", memory_efficient=variant == "memory_efficient").train()
        x = torch.randn(imagenet_batch, 3, 224, 224)
    if variant == "baseline":
        set_fast(module, False)

    before = _rss_bytes()
    with LiveStorages() as live:
        out = module(x)
        kept = live.live_bytes()
        out.float().mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del out
    module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    module(x).float().mean().backward()
    step = time.perf_counter() - start
    return {"kept": kept, "peak_live": max(live.peak_bytes, kept), "peak_growth": peak - before, "step": step}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--imagenet-batch", type=int, default=16)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(*args.child, args.batch, args.imagenet_batch)))
        return
    print(machine())
    print(f"batch {args.batch} (b22_224: {args.imagenet_batch}), float32, one process per variant\n")
    header = ["case", "variant", "kept for backward MiB", "peak live tensors MiB", "peak RSS growth MiB", "step s",
              "vs first: kept, peak live, peak RSS"]
    rows = []
    for case in args.cases.split(","):
        if case not in CASES:
            parser.error(f"unknown case {case!r}; choose from {', '.join(CASES)}")
        first = None
        for variant in CASES[case]:
            cmd = [sys.executable, "-m", "benchmarks.memory", "--batch", str(args.batch),
                   "--imagenet-batch", str(args.imagenet_batch), "--child", case, variant]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            first = first or r
            ratios = ", ".join(f"{r[key] / first[key]:.2f}x" for key in ("kept", "peak_live", "peak_growth"))
            rows.append([case, variant, f"{r['kept'] / 2**20:.0f}", f"{r['peak_live'] / 2**20:.0f}",
                         f"{r['peak_growth'] / 2**20:.0f}", f"{r['step']:.2f}", ratios])
            print(rows[-1], flush=True)
    print()
    print(format_table(header, rows))


if __name__ == "__main__":
    main()
