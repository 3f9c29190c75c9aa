"""The GPU path, measured: eager against bf16 autocast against torch.compile with CUDA graphs.

    python benchmarks/gpu.py --json gpu.json                     # on a machine with a CUDA GPU (benchmarks/gpu.sh)
    python benchmarks/gpu.py --device cpu --configs aligndraw_mnist_small --batch 4 --pairs 1 --no-compile  # smoke test

On a GPU a DRAW step is launch-bound: each of the T steps issues hundreds of small kernels forward and
back (the scaling-up chapter counts ~15,000 per step of the COCO model), each a few microseconds of
the host's time whatever its size. This script measures, on one GPU and in one run, per configuration:

1. **agreement** of minidraw's step with the plain DRAW of ``benchmarks/step_vs_plain.py`` *on the GPU*:
   the same bound and gradients in float64 (the equivalence the CPU tests check, now on CUDA kernels);
2. **images per second** of a training step (forward, backward, Adam), same weights, data and noise,
   in rounds whose order turns: the plain DRAW in float32; minidraw eager in float32 (TF32 off) and
   under bf16 autocast (the trainer's default on GPUs with bf16 units); and, unless ``--no-compile``,
   minidraw under ``torch.compile`` in bf16, ``mode="default"`` (fused element-wise kernels) and
   ``mode="reduce-overhead"`` (the same, replayed as CUDA graphs: one launch for a whole graph);
3. the compile times, the peak GPU memory of each variant, the bf16 matmul roofline of the GPU, and
   the time to sample 16 images from the small MNIST alignDRAW.

Everything is printed as it is measured and written to ``--json`` after each configuration, so a run
cut short still leaves its numbers. ``--budget`` (seconds) skips the compiled variants that would
start after it. Data are random binary images and captions (the GPU machine has no MNIST), which
changes nothing in the timing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

os.environ.setdefault("BENCH_RANDOM_DATA", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (benchmarks/ is not a package)
from step_vs_plain import Pair, configs, interleaved  # noqa: E402

from minidraw.configs import preset  # noqa: E402
from minidraw.aligndraw import CaptionDraw  # noqa: E402


def sync(device: torch.device) -> None:
    train_step.sync(device.type)


def roofline(device: torch.device, dtype: torch.dtype) -> float:
    """GFLOP/s of a large square matmul in ``dtype`` (8192² on a GPU, 1024² on the CPU)."""
    return train_step.matmul_gflops(device.type, n=8192 if device.type == "cuda" else 1024, reps=20, dtype=dtype)


def timed(fn, device):
    """``fn`` made to return nothing and finish its GPU work before the clock stops."""
    def run():
        fn()
        sync(device)
    return run


def peak_mb(fn, device) -> float:
    if device.type != "cuda":
        return float("nan")
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def measure(name: str, cfg, M: int, pairs: int, device: torch.device, compile_modes: list[str],
            deadline: float) -> dict:
    pair = Pair(cfg, M, device=device)
    row = {"config": name, "batch": M, "device": str(device)}
    row.update(pair.check_agreement())
    print(f"  {name}: agree on {device} (float64 bound {row['float64_bound']:.4f}, gradients within "
          f"{row['float64_max_grad_rel_diff']:.1e})", flush=True)
    variants = {"plain fp32": lambda: pair.step(pair.plain),
                "minidraw fp32": lambda: pair.step(pair.mini),
                "minidraw bf16": lambda: pair.step(pair.mini, bf16=True)}
    for fn in variants.values():                                             # warm up (kernels, Adam state)
        pair.reset()
        timed(fn, device)()
    times = interleaved(*(timed(fn, device) for fn in variants.values()), pairs=pairs, before=pair.reset)
    row["variants"] = {}
    for (label, fn), ts in zip(variants.items(), times):
        pair.reset()
        row["variants"][label] = {"ms": 1e3 * statistics.median(ts), "times_ms": [1e3 * t for t in ts],
                                  "peak_mb": peak_mb(fn, device)}
    # each compiled variant right after its compile (a dynamo reset would make earlier ones recompile),
    # timed in turns with eager fp32 minidraw
    eager = variants["minidraw fp32"]
    for mode in compile_modes:
        if time.perf_counter() > deadline:
            print(f"  {name}: over the time budget, torch.compile mode={mode!r} skipped", flush=True)
            continue
        torch._dynamo.reset()
        fast = torch.compile(pair.mini, mode=mode)
        opt = pair.opts[pair.mini]
        step = lambda fast=fast, opt=opt: pair.step(fast, opt, bf16=True)  # noqa: E731
        pair.reset()
        start = time.perf_counter()
        timed(step, device)()                                                # the compile
        row[f"compile_s {mode}"] = time.perf_counter() - start
        for _ in range(2):                                                   # CUDA graphs record on later steps
            pair.reset()
            timed(step, device)()
        t_fast, t_eager = interleaved(timed(step, device), timed(eager, device), pairs=pairs, before=pair.reset)
        pair.reset()
        label = f"compiled bf16 {mode}"
        row["variants"][label] = {"ms": 1e3 * statistics.median(t_fast), "times_ms": [1e3 * t for t in t_fast],
                                  "peak_mb": peak_mb(step, device),
                                  "speedup_in_its_rounds": statistics.median(e / f for e, f in zip(t_eager, t_fast))}
        print(f"  {name}: torch.compile mode={mode!r} compiled in {row[f'compile_s {mode}']:.0f} s", flush=True)
    base = row["variants"]["minidraw fp32"]["ms"]
    for label, v in row["variants"].items():
        v["images_per_s"] = M / (v["ms"] / 1e3)
        v["speedup_vs_minidraw_fp32"] = v.get("speedup_in_its_rounds", base / v["ms"])
        print(f"    {label:34s} {v['ms']:8.1f} ms/step {v['images_per_s']:9.0f} images/s "
              f"{v['speedup_vs_minidraw_fp32']:5.2f}x minidraw fp32   peak {v['peak_mb']:7.0f} MB", flush=True)
    return row


def sample_ms(device: torch.device, runs: int = 7) -> float:
    cfg = preset("aligndraw_mnist_small")
    torch.manual_seed(0)
    model = CaptionDraw(cfg).to(device).eval()
    captions = torch.randint(1, cfg.vocab_size, (16, 12), device=device)
    lengths = torch.full((16,), 12, device=device)
    model.generate(captions, lengths)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.generate(captions, lengths)
        sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = list(configs())
    p.add_argument("--configs", nargs="+", default=["aligndraw_mnist_paper", "draw_60x60_T32", "aligndraw_mnist_small"],
                   choices=names)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pairs", type=int, default=10, help="timed steps of each variant")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--budget", type=float, default=420, help="seconds after which no further compile starts")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py: no CUDA GPU here (torch.cuda.is_available() is False); "
                 "--device cpu runs the same measurements on the CPU")
    deadline = time.perf_counter() + a.budget
    torch.backends.cuda.matmul.allow_tf32 = False                            # fp32 means fp32
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    out = {"device": name, "torch": torch.__version__, "batch": a.batch,
           "roofline_gflops": {"fp32": roofline(device, torch.float32), "bf16": roofline(device, torch.bfloat16)},
           "rows": []}
    print(f"{name}, torch {torch.__version__}: matmul roofline fp32 {out['roofline_gflops']['fp32']:,.0f} GFLOP/s, "
          f"bf16 {out['roofline_gflops']['bf16']:,.0f} GFLOP/s (TF32 off)", flush=True)
    out["sample_16_ms"] = sample_ms(device)
    print(f"sampling 16 images, aligndraw_mnist_small: {out['sample_16_ms']:.1f} ms", flush=True)
    modes = [] if a.no_compile else ["reduce-overhead", "default"]
    for cfg_name in a.configs:
        out["rows"].append(measure(cfg_name, configs()[cfg_name], a.batch, a.pairs, device, modes, deadline))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    if a.json:
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
