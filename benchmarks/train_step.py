"""Time one DRAW training step (forward, backward, optimiser) for a preset, against this machine's roofline.

    python benchmarks/train_step.py --preset draw_mnist_paper --batch 100
    python benchmarks/train_step.py --preset draw_mnist_small --batch 64 --device cuda

The roofline is the float32 matmul throughput of the same device (a large square
matmul); the step's floating-point work is counted by torch's FlopCounterMode.
A recurrent model of small matrices lands far below the roofline: the gap is
per-step overhead (T small kernels per layer), not arithmetic.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from minidraw.configs import preset
from minidraw.draw import Draw


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: str, n: int = 2048, reps: int = 10, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="draw_mnist_paper")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    torch.manual_seed(0)
    cfg = preset(a.preset)
    model = Draw(cfg).to(a.device)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-6)
    x = (torch.rand(a.batch, cfg.C, cfg.B, cfg.A, device=a.device) < 0.2).float()

    def step():
        loss = model(x).bound.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    times = []
    for _ in range(a.steps):
        sync(a.device)
        start = time.perf_counter()
        step()
        sync(a.device)
        times.append(time.perf_counter() - start)
    t = statistics.median(times)
    peak = matmul_gflops(a.device)
    print(f"{a.preset} on {a.device} ({torch.get_num_threads()} threads), batch {a.batch}, T={cfg.T}: "
          f"{1000 * t:.0f} ms/step (median of {a.steps}), {a.batch / t:,.0f} images/s")
    print(f"work {flops / 1e9:.1f} GFLOP/step -> {flops / t / 1e9:.1f} GFLOP/s achieved; "
          f"roofline (fp32 matmul) {peak:.0f} GFLOP/s -> {100 * flops / t / 1e9 / peak:.1f}% of it")


if __name__ == "__main__":
    main()
