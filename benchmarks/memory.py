"""Peak memory of a training step: fast SeqConv2d against the per-group loop.

    python -m benchmarks.memory [--batch 64] [--cases b_k32_r12_n3,dense_16_512]

Cases: a training step (forward, backward) of ``seqresnet_b_k32_r12_n3`` on 32x32 inputs
with its default dropout, and one dense SeqConv layer 16 -> 512, k=8 (64 groups) on 32x32.
Each (case, variant) runs in its own fresh subprocess, and two figures are reported:

* *saved for backward*: bytes of the distinct storages autograd keeps, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (parameters excluded): activation memory;
* *peak RSS growth*: ``ru_maxrss`` after the step minus the resident size just before
  it (model, input and allocator already warm) - what the process really needed, as the
  OS saw it. tracemalloc and the torch profiler do not see all of it on CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from .common import format_table, machine

CASES = ("b_k32_r12_n3", "dense_16_512")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _measure(case: str, variant: str, batch: int) -> dict:
    from seqlite.layers import SeqConv2d
    from seqlite.registry import create_model

    from .baseline import use_baseline

    torch.manual_seed(0)
    if case == "b_k32_r12_n3":
        module = create_model("seqresnet_b_k32_r12_n3").train()
        x = torch.randn(batch, 3, 32, 32)
    else:
        module = SeqConv2d(16, 512, 8).train()
        x = torch.randn(batch, 16, 32, 32, requires_grad=True)
    if variant == "baseline":
        use_baseline(module)
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not (t.requires_grad and t.grad_fn is None):
            s = t.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
        return t

    before = _rss_bytes()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    out.float().mean().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"saved": sum(storages.values()), "peak_growth": peak - before}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(*args.child, args.batch)))
        return
    print(machine())
    print(f"batch {args.batch}, float32, one forward+backward per fresh process\n")
    rows = []
    for case in args.cases.split(","):
        result = {}
        for variant in ("fast", "baseline"):
            cmd = [sys.executable, "-m", "benchmarks.memory", "--batch", str(args.batch), "--child", case, variant]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            result[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        f, b = result["fast"], result["baseline"]
        rows.append([case, f"{f['saved'] / 2**20:.0f}", f"{b['saved'] / 2**20:.0f}",
                     f"{b['saved'] / f['saved']:.2f}x", f"{f['peak_growth'] / 2**20:.0f}",
                     f"{b['peak_growth'] / 2**20:.0f}", f"{b['peak_growth'] / f['peak_growth']:.2f}x"])
        print(rows[-1], flush=True)
    print()
    print(format_table(["case", "saved MiB fast", "saved MiB baseline", "ratio",
                        "peak RSS growth MiB fast", "peak MiB baseline", "ratio"], rows))


if __name__ == "__main__":
    main()
