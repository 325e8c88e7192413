"""The GPU check: one Markdown report on the speed, precision and memory of training on one GPU.

    python -m benchmarks.gpu [--device cuda] [--out report.md] [--sections a,b,c,d]
    python -m benchmarks.gpu --device cpu --tiny                    # toy sizes, seconds (the tests)

How long it takes: on an H200 (2026-12-04) the whole report did not finish in 9 minutes;
section (a) alone finished, and (b) - cuDNN autotuning every new convolution shape, then
``torch.compile`` of each model - takes the most. With a short GPU lease, run the sections
one at a time (``--sections c,d`` takes about a minute) and ``--compile-modes ""`` to leave
out compilation. ``--out`` is rewritten after every section, so a run stopped by a time
limit keeps the sections it finished; each section's heading says how long it took.

Sections (each table row is one measured case; a case that fails is reported, not fatal):

* (a) one WSeqConv layer (k=8, window C) against Conv2d+BN+ReLU at the three shapes of
  ``seqresnet_k8_r4_n1``, forward+backward under bf16 and fp16 autocast, NCHW and channels_last;
* (b) the whole training step of ``seqresnet_k8_r4_n1`` (32x32) and ``seqresnet_b22`` (224x224):
  eager, ``torch.compile`` and compile with CUDA graphs (``mode="reduce-overhead"``), against
  the per-group reference path and the plain-convolution network of the same widths
  (basic-layer models only), under ``--amp auto`` and channels_last;
* (c) training images/s of each CIFAR recipe on synthetic CIFAR-shaped data at its batch
  size, and the wall time it projects for the recipe on CIFAR-10 (50,000 images per epoch;
  evaluation and data loading not included);
* (d) a 200-step run on a fixed synthetic batch under each AMP mode: the loss must fall and
  stay finite (bf16 is refused on GPUs below compute capability 8.0, and says so);
* (e) peak GPU memory (``torch.cuda.max_memory_allocated``) of every case above.

Times are medians of interleaved rounds (:func:`benchmarks.common.interleaved_medians`),
synchronised on CUDA. ``--tiny`` shrinks batches, rounds and steps, uses 64x64 inputs for
the ImageNet model and leaves out ``torch.compile`` (Inductor takes minutes on a CPU): its
numbers are not timings, it proves the script runs.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from seqlite.accel import autocast, make_scaler, resolve_amp
from seqlite.layers import SeqConv2d, set_fast
from seqlite.registry import create_model
from seqlite.twin import plain_twin

from .common import format_table, interleaved_medians, machine
from .layers import SHAPES

CIFAR10_TRAIN_IMAGES = 50_000


def per_second(rate: float) -> str:
    """A rate for a table: a whole number, or three significant digits below 100 (a slow CPU, a loaded machine).

    A whole number alone would print a rate below 0.5 as ``0``, and whatever is computed from the
    printed table (50,000 images / rate) would divide by zero.
    """
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


class Bench:
    """Timing and memory on one device; every measurement records the peak memory of its case."""

    def __init__(self, device: torch.device, rounds: int, warmup: int = 2):
        self.device, self.rounds, self.warmup = device, rounds, warmup
        self.cuda = device.type == "cuda"

    def medians(self, variants: dict[str, Callable[[], object]]) -> dict[str, float]:
        return interleaved_medians(variants, rounds=self.rounds, warmup=self.warmup, sync=self.cuda)

    def peak(self, fn: Callable[[], object]) -> str:
        """Peak GPU memory of one more call of ``fn`` (``n/a`` on a CPU)."""
        if not self.cuda:
            return "n/a"
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return f"{torch.cuda.max_memory_allocated() / 2**20:.0f}"


def _layer_step(module: nn.Module, x: torch.Tensor, device: torch.device, amp: str) -> Callable[[], None]:
    def run() -> None:
        module.zero_grad(set_to_none=True)
        with autocast(device, amp):
            out = module(x)
        out.float().sum().backward()

    return run


def _plain_layer(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())


def layers_section(bench: Bench, batch: int, amps: list[str]) -> str:
    rows = []
    for amp in amps:
        for fmt, memory_format in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
            for channels, size in SHAPES:
                x = torch.randn(batch, channels, size, size, device=bench.device).to(memory_format=memory_format)
                plain = _plain_layer(channels).to(bench.device, memory_format=memory_format)
                seq = SeqConv2d(channels, channels, 8, window=channels).to(bench.device, memory_format=memory_format)
                steps = {"plain": _layer_step(plain, x, bench.device, amp),
                         "seq": _layer_step(seq, x, bench.device, amp)}
                t = bench.medians(steps)
                rows.append([amp, fmt, f"C={channels} {size}x{size}", f"{t['plain'] * 1e3:.2f}",
                             f"{t['seq'] * 1e3:.2f}", f"{t['seq'] / t['plain']:.2f}x",
                             bench.peak(steps["plain"]), bench.peak(steps["seq"])])
    header = ["amp", "format", "shape (k=8)", "conv+bn+relu ms", "WSeqConv ms", "ratio",
              "conv peak MiB", "WSeqConv peak MiB"]
    return "## (a) WSeqConv layer vs Conv2d+BN+ReLU (forward+backward)\n\n" + format_table(header, rows)


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, amp: str,
                lr: float = 0.1) -> tuple[Callable[[], float], torch.amp.GradScaler | None]:
    """One SGD step (Nesterov, as the paper trains) under ``amp``; returns the loss as a tensor."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    scaler = make_scaler(amp, device)

    def run():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = F.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss.detach()

    return run, scaler


def _variants(model: nn.Module, modes: list[str]) -> dict[str, Callable[[], nn.Module]]:
    """Builders of the (differently executed) copies of ``model`` that section (b) times."""
    made: dict[str, Callable[[], nn.Module]] = {"eager": lambda: model}
    if "compile" in modes:
        made["compile"] = lambda: torch.compile(model)
    if "reduce-overhead" in modes:
        made["compile + CUDA graphs"] = lambda: torch.compile(model, mode="reduce-overhead")
    made["per-group reference"] = lambda: set_fast(copy.deepcopy(model), False)
    made["plain network"] = lambda: plain_twin(model)
    return made


def models_section(bench: Bench, cases: list[tuple[str, int, int]], amp: str, modes: list[str]) -> str:
    rows = []
    for name, batch, size in cases:
        torch.manual_seed(0)
        base = create_model(name).to(bench.device, memory_format=torch.channels_last).train()
        x = torch.randn(batch, 3, size, size, device=bench.device).to(memory_format=torch.channels_last)
        y = torch.randint(0, base.num_classes, (batch,), device=bench.device)
        eager_time = None
        for variant, build in _variants(base, modes).items():
            began = time.perf_counter()
            try:
                step, _ = _train_step(build(), x, y, bench.device, amp)
                step()  # the first call compiles (and records the graphs)
                first = time.perf_counter() - began
                t = bench.medians({variant: step})[variant]
                peak = bench.peak(step)
            except Exception as err:  # a failing case (out of memory, a compiler error) is part of the report
                if bench.cuda:
                    torch.cuda.empty_cache()
                rows.append([name, variant, "failed", f"{type(err).__name__}: {str(err).splitlines()[0][:80]}",
                             "", "", ""])
                continue
            eager_time = t if variant == "eager" else eager_time
            rows.append([name, variant, f"{t * 1e3:.1f}", per_second(batch / t),
                         f"{t / eager_time:.2f}x" if eager_time else "", f"{first:.1f}", peak])
    header = ["model", "variant", "ms/step", "images/s", "vs eager", "first step s", "peak MiB"]
    note = (f"amp {amp}, channels_last, SGD Nesterov; batch and input size: "
            + ", ".join(f"{n} {b}x{s}x{s}" for n, b, s in cases))
    return "## (b) Whole training step\n\n" + note + "\n\n" + format_table(header, rows)


def recipes_section(bench: Bench, amp: str, batch_scale: float, rounds_note: str) -> str:
    from seqlite.train import RECIPES, recipe_for

    rows = []
    for recipe_name in [r for r in ("short", "paper") if r in RECIPES]:
        recipe = recipe_for(recipe_name, "cifar10")
        batch = max(2, int(recipe.batch_size * batch_scale))
        torch.manual_seed(0)
        model = create_model("seqresnet_k8_r4_n1").to(bench.device, memory_format=torch.channels_last).train()
        x = torch.randn(batch, 3, 32, 32, device=bench.device).to(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (batch,), device=bench.device)
        step, _ = _train_step(model, x, y, bench.device, amp)
        t = bench.medians({"step": step})["step"]
        images_s = batch / t
        epoch_s = CIFAR10_TRAIN_IMAGES / images_s
        rows.append([recipe_name, recipe.epochs, batch, per_second(images_s), f"{epoch_s:.0f}",
                     f"{recipe.epochs * epoch_s / 3600:.2f}", bench.peak(step)])
    header = ["recipe", "epochs", "batch", "images/s", "s/epoch (projected)", "hours (projected)", "peak MiB"]
    return ("## (c) Recipes on synthetic CIFAR-shaped data (seqresnet_k8_r4_n1, amp "
            f"{amp}, channels_last{rounds_note})\n\nProjected: 50,000 training images per epoch at the measured rate; "
            "evaluation and data loading not included.\n\n" + format_table(header, rows))


def amp_section(bench: Bench, steps: int, batch: int, size: int, model_args: dict) -> str:
    rows = []
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size, device=bench.device)
    y = torch.randint(0, 10, (batch,), device=bench.device)
    for amp in ("off", "bf16", "fp16"):
        try:
            resolved = resolve_amp(amp, bench.device)
        except ValueError as err:
            rows.append([amp, "refused", str(err).split(": ")[-1][:70], "", "", ""])
            continue
        torch.manual_seed(0)
        model = create_model("seqresnet_k8_r4_n1", **model_args).to(bench.device).train()
        step, scaler = _train_step(model, x, y, bench.device, resolved, lr=0.05)
        losses = [step() for _ in range(steps)]
        losses_t = torch.stack(losses).float().cpu()
        finite = bool(torch.isfinite(losses_t).all())
        k = max(1, steps // 10)
        start, end = losses_t[:k].mean().item(), losses_t[-k:].mean().item()
        ok = finite and end < start
        rows.append([amp, "ok" if ok else "FAILED", f"{start:.3f}", f"{end:.3f}", "yes" if finite else "NO",
                     f"{scaler.get_scale():g}" if scaler is not None else "-"])
    header = ["amp", "check", f"loss, first {max(1, steps // 10)} steps", f"loss, last {max(1, steps // 10)} steps",
              "all finite", "final loss scale"]
    return (f"## (d) {steps} steps on one fixed synthetic batch ({batch} images {size}x{size}) per AMP mode\n\n"
            + format_table(header, rows))


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (tests, CPU): not timings")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default 10; tiny 1)")
    parser.add_argument("--compile-modes", default="compile,reduce-overhead",
                        help="comma-separated: compile, reduce-overhead (CUDA graphs); empty for none")
    parser.add_argument("--out", help="also write the report to this file (rewritten after every section)")
    parser.add_argument("--sections", default="a,b,c,d",
                        help="comma-separated sections to run, of a (layers), b (training steps), c (recipes), d (AMP)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set("abcd"))
    if unknown or not chosen:
        parser.error(f"--sections: expected letters among a, b, c, d, got {args.sections!r}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here; use --device cpu --tiny")
    began = time.perf_counter()
    torch.manual_seed(0)
    tiny = args.tiny
    bench = Bench(device, args.rounds or (1 if tiny else 10), warmup=0 if tiny else 2)
    amp = resolve_amp("auto", device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        major, minor = torch.cuda.get_device_capability(device)
        title = f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})"
    else:
        title = "CPU (no GPU)"
    layer_amps = ["bf16", "fp16"]
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        layer_amps = ["fp16"]  # bf16 has no tensor-core convolutions below compute capability 8.0
    modes = [] if tiny or device.type != "cuda" else [m for m in args.compile_modes.split(",") if m]
    model_cases = [("seqresnet_k8_r4_n1", 2, 32), ("seqresnet_b22", 1, 64)] if tiny else \
        [("seqresnet_k8_r4_n1", 128, 32), ("seqresnet_b22", 64, 224)]
    sections = [
        f"# GPU check: {title}",
        f"{machine()}\n\n`python -m benchmarks.gpu {' '.join(argv if argv is not None else sys.argv[1:])}`; "
        f"amp auto here means **{amp}**",
    ]
    runs = {
        "a": lambda: layers_section(bench, 1 if tiny else 64, layer_amps),
        "b": lambda: models_section(bench, model_cases, amp, modes),
        "c": lambda: recipes_section(bench, amp, 1 / 16 if tiny else 1.0, ", batch / 16" if tiny else ""),
        "d": lambda: amp_section(bench, 12 if tiny else 200, 8 if tiny else 128, 16 if tiny else 32,
                                 {"r": 1} if tiny else {}),
    }

    def write(text: str) -> None:
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)

    for letter in "abcd":
        if letter not in chosen:
            continue
        section_began = time.perf_counter()
        heading, _, body = runs[letter]().partition("\n")
        sections.append(f"{heading} - {time.perf_counter() - section_began:.0f} s\n{body}")
        print(sections[-1] + "\n", flush=True, file=sys.stderr)
        write("\n\n".join(sections) + "\n")
    took = time.perf_counter() - began
    sections.append(f"(e) peak memory: the `peak MiB` columns above. Report made in {took:.0f} s.")
    report = "\n\n".join(sections) + "\n"
    print(report)
    write(report)
    return report


if __name__ == "__main__":
    main()
