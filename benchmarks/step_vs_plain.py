"""minidraw's training step against a plain PyTorch DRAW, side by side in one process.

    MINIDRAW_DATA=../shared/data python benchmarks/step_vs_plain.py [--json bench.json] [--pairs 10]
    python benchmarks/step_vs_plain.py --configs aligndraw_mnist_small --compile   # does torch.compile pay?

Two implementations of the same model, at equal configuration, weights, data and noise:

* **minidraw**: :class:`minidraw.draw.Draw` / :class:`minidraw.aligndraw.CaptionDraw`;
* **plain**: the DRAW of the papers written out below the way one writes it first: a Python loop
  over the T steps, ``nn.LSTMCell``, each filterbank built from its equation, the glimpse as
  ``F_Y @ x @ F_Xᵀ`` once for x and once for x̂, the write divided by γ, the KL summed step by
  step — no fusion, nothing batched over time. It has exactly minidraw's parameters (same module
  names), so minidraw's weights load into it. For alignDRAW the plain model *reuses minidraw's*
  language model (:class:`minidraw.text.LanguageModel`) and alignment
  (:class:`minidraw.align.Alignment`), so its ratio measures the DRAW core only.

Before timing anything the script asserts that the two agree: the same bound and the same gradient
of every parameter, in float64 (to 1e-9) and in float32 at the benchmark's batch (bound to 1e-4).

A training step is forward + backward + Adam. Steps of the two models alternate (minidraw first on
even pairs, plain first on odd ones), every step starts from the same weights, and the table gives
medians and the median of the per-pair ratios plain / minidraw — on a machine shared with other
work the absolute times drift, the ratio of neighbouring steps much less. Also measured in the same
run: FLOPs per step (``torch.utils.flop_counter.FlopCounterMode``: matmuls only, element-wise work
is not counted), the fp32 matmul roofline of this machine (``benchmarks/train_step.py``'s
``matmul_gflops``, the best of one measurement before the first configuration and one after each),
the peak memory of a step (``torch.profiler`` with ``profile_memory=True``: the highest running sum
of the step's allocations minus frees, on top of the weights and optimiser state already alive), and
the time to sample 16 images from the small MNIST alignDRAW.

``--compile`` adds, per configuration, torch.compile's compile time (the first compiled step) and
the compiled step's time against eager minidraw, interleaved the same way; then the same under bf16
autocast, against the plain float32 step (minutes of compiling per configuration).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import matmul_gflops  # noqa: E402  (benchmarks/ is not a package)

from minidraw.align import Alignment  # noqa: E402
from minidraw.configs import preset  # noqa: E402
from minidraw.aligndraw import CaptionDraw, CaptionDrawConfig  # noqa: E402
from minidraw.draw import Draw, DrawConfig  # noqa: E402
from minidraw.runtime import bf16_native  # noqa: E402
from minidraw.text import LanguageModel  # noqa: E402


# ---- the plain DRAW -----------------------------------------------------------------------------
def plain_window(p, A, B, N):
    """(g_X, g_Y, σ², δ, γ) from the 5 numbers a linear layer emits (Gregor et al., eq. 21-24)."""
    gx_t, gy_t, log_sigma2, log_delta_t, log_gamma = p.unbind(-1)
    g_x = (A + 1) / 2 * (gx_t + 1)
    g_y = (B + 1) / 2 * (gy_t + 1)
    delta = (max(A, B) - 1) / max(N - 1, 1) * torch.exp(log_delta_t)
    return g_x, g_y, torch.exp(log_sigma2), delta, torch.exp(log_gamma)


def plain_filterbank(g, delta, sigma2, N, size):
    """F[i, a] = exp(−(a − μ^i)² / 2σ²) / Z_i, μ^i = g + (i − N/2 − 0.5) δ (eq. 19, 25, 26)."""
    i = torch.arange(1, N + 1, dtype=g.dtype)
    mu = g[:, None] + (i - N / 2 - 0.5) * delta[:, None]                      # (M, N)
    a = torch.arange(1, size + 1, dtype=g.dtype)
    F_ = torch.exp(-(a - mu[:, :, None]) ** 2 / (2 * sigma2[:, None, None]))  # (M, N, size)
    return F_ / torch.clamp(F_.sum(-1, keepdim=True), min=1e-8)


class PlainDraw(nn.Module):
    """DRAW as the paper writes it, with minidraw's parameter names (so weights copy across)."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        C, Nr, Nw = cfg.C, cfg.read_N, cfg.write_N
        self.read = nn.ModuleDict({"window": nn.Linear(cfg.dec_size, 5)})
        self.encoder = nn.LSTMCell(2 * C * Nr * Nr + cfg.dec_size, cfg.enc_size)
        self.q = nn.Linear(cfg.enc_size, 2 * cfg.z_size)
        self.prior = nn.Linear(cfg.dec_size, 2 * cfg.z_size) if cfg.learned_prior else None
        self.decoder = nn.LSTMCell(cfg.z_size + cfg.cond_size, cfg.dec_size)
        self.write = nn.ModuleDict({"window": nn.Linear(cfg.dec_size, 5),
                                    "patch": nn.Linear(cfg.dec_size, C * Nw * Nw)})
        self.c0 = nn.Parameter(torch.full((C, cfg.B, cfg.A), float(cfg.canvas_init)))

    def forward(self, x, noise, context=None):
        """The bound −L per image ``(M,)`` of ``x (M, C, B, A)`` with ε = ``noise (T, M, z)``."""
        cfg, M = self.cfg, x.shape[0]
        A, B, C, Nr, Nw = cfg.A, cfg.B, cfg.C, cfg.read_N, cfg.write_N
        h_dec = c_dec = x.new_zeros(M, cfg.dec_size)
        h_enc = c_enc = x.new_zeros(M, cfg.enc_size)
        canvas = self.c0.expand(M, C, B, A)
        kl = 0
        for t in range(cfg.T):
            x_hat = x - torch.sigmoid(canvas)
            g_x, g_y, sigma2, delta, gamma = plain_window(self.read["window"](h_dec), A, B, Nr)
            F_X = plain_filterbank(g_x, delta, sigma2, Nr, A)                   # (M, N, A)
            F_Y = plain_filterbank(g_y, delta, sigma2, Nr, B)                   # (M, N, B)
            glimpse_x = F_Y[:, None] @ x @ F_X.transpose(1, 2)[:, None]         # (M, C, N, N)
            glimpse_x_hat = F_Y[:, None] @ x_hat @ F_X.transpose(1, 2)[:, None]
            r = gamma[:, None] * torch.cat([glimpse_x.reshape(M, -1), glimpse_x_hat.reshape(M, -1)], 1)
            h_enc, c_enc = self.encoder(torch.cat([r, h_dec], 1), (h_enc, c_enc))
            mu, log_sigma = self.q(h_enc).chunk(2, 1)
            z = mu + torch.exp(log_sigma) * noise[t]
            if self.prior is None or t == 0:                                      # KL(q || N(0, I))
                kl = kl + 0.5 * (mu ** 2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(1)
            else:                                                                 # KL(q || learned prior)
                mu_p, log_sigma_p = torch.tanh(self.prior(h_dec)).chunk(2, 1)
                kl = kl + (log_sigma_p - log_sigma
                           + (torch.exp(2 * log_sigma) + (mu - mu_p) ** 2) / (2 * torch.exp(2 * log_sigma_p))
                           - 0.5).sum(1)
            decoder_input = z if context is None else torch.cat([z, context(h_dec)], 1)
            h_dec, c_dec = self.decoder(decoder_input, (h_dec, c_dec))
            g_x, g_y, sigma2, delta, gamma = plain_window(self.write["window"](h_dec), A, B, Nw)
            F_X = plain_filterbank(g_x, delta, sigma2, Nw, A)
            F_Y = plain_filterbank(g_y, delta, sigma2, Nw, B)
            w = self.write["patch"](h_dec).view(M, C, Nw, Nw)
            canvas = canvas + (F_Y.transpose(1, 2)[:, None] @ w @ F_X[:, None]) / gamma[:, None, None, None]
        nll = F.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum((1, 2, 3))
        return nll + kl


class PlainCaptionDraw(nn.Module):
    """alignDRAW around :class:`PlainDraw`: minidraw's language model and alignment, reused as they are."""

    def __init__(self, cfg: CaptionDrawConfig) -> None:
        super().__init__()
        assert cfg.variant == "align" and type(cfg) is CaptionDrawConfig   # the paper's alignDRAW
        self.draw = PlainDraw(cfg)
        self.language = LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size)
        self.align = Alignment(2 * cfg.lang_size, cfg.dec_size, cfg.align_size)

    def forward(self, images, captions, lengths, noise):
        h_lang, mask = self.language(captions, lengths)           # (M, L, 2m), (M, L)
        keys = self.align.keys(h_lang)
        return self.draw(images, noise, lambda h_dec: self.align(h_dec, keys, h_lang, mask)[0])


# ---- configurations, data -------------------------------------------------------------------------
def configs() -> dict:
    return {
        "draw_60x60_T32": DrawConfig(A=60, B=60, C=1, T=32, read_N=8, write_N=8, enc_size=300, dec_size=300,
                                     z_size=150),
        "draw_mnist_paper": preset("draw_mnist_paper"),
        "aligndraw_mnist_paper": preset("aligndraw_mnist_paper"),
        "aligndraw_mnist_small": preset("aligndraw_mnist_small"),
    }


def data(cfg, M: int):
    """``(images, captions, lengths, source)``: MNIST with captions for 60×60, binarised MNIST digits
    for 28×28 (from MINIDRAW_DATA or the cache); random images and captions when MNIST cannot be had
    or ``BENCH_RANDOM_DATA`` is set (``benchmarks/gpu.py``: no data on the GPU machine)."""
    try:
        if os.environ.get("BENCH_RANDOM_DATA"):
            raise LookupError("BENCH_RANDOM_DATA is set")
        if (cfg.A, cfg.B) == (60, 60):
            from minidraw.data.mnist_captions import MnistCaptions
            b = MnistCaptions("train").batch(torch.arange(M).numpy())
            return b.images, b.captions, b.lengths, "MNIST with captions (train split)"
        if (cfg.A, cfg.B) == (28, 28):
            from minidraw.data.mnist import binarize, digit_pools
            x = torch.from_numpy(binarize(digit_pools().train_images[:M]))
            return x, None, None, "binarised MNIST digits"
    except Exception as e:  # noqa: BLE001 - any missing data: fall back, and say so
        print(f"(no MNIST: {type(e).__name__}: {e}; random data instead)")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(M, cfg.C, cfg.B, cfg.A, generator=g) < 0.2).float()
    captions = torch.randint(1, max(getattr(cfg, "vocab_size", 2), 2), (M, 12), generator=g)
    return x, captions, torch.full((M,), 12), "random binary images"


class Pair:
    """minidraw's model and the plain one, with one set of weights, one batch and one noise."""

    def __init__(self, cfg, M: int, device: torch.device = torch.device("cpu")) -> None:
        torch.manual_seed(0)
        self.cfg, self.caption = cfg, isinstance(cfg, CaptionDrawConfig)
        self.mini = (CaptionDraw(cfg) if self.caption else Draw(cfg)).to(device)
        self.plain = (PlainCaptionDraw(cfg) if self.caption else PlainDraw(cfg)).to(device)
        self.plain.load_state_dict(self.mini.state_dict())                       # the same weights
        batch = data(cfg, M)
        self.x, self.captions, self.lengths = (None if v is None else v.to(device) for v in batch[:3])
        self.source = batch[3]
        self.noise = torch.randn(cfg.T, M, cfg.z_size, generator=torch.Generator().manual_seed(1)).to(device)
        self.start = {k: v.clone() for k, v in self.mini.state_dict().items()}
        self.opts = {m: torch.optim.Adam(m.parameters(), lr=1e-3) for m in (self.mini, self.plain)}

    def loss(self, model, x=None, captions=None, lengths=None, noise=None):
        """The mean bound of the batch (or of the given one), −L nats per image."""
        x, noise = (self.x, self.noise) if x is None else (x, noise)
        captions, lengths = (self.captions, self.lengths) if captions is None else (captions, lengths)
        if isinstance(model, (PlainDraw, PlainCaptionDraw)):
            bound = model(x, captions, lengths, noise) if self.caption else model(x, noise)
        else:
            bound = (model(x, captions, lengths, noise=noise) if self.caption else model(x, noise=noise)).bound
        return bound.mean()

    def step(self, model, opt=None, bf16: bool = False) -> None:
        """One training step: forward (under bf16 autocast with ``bf16``, as ``cpu_bf16 = true`` trains), backward,
        Adam."""
        opt = opt or self.opts[model]
        with torch.autocast(self.x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = self.loss(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def reset(self) -> None:
        """Both models back to the starting weights: every timed step does the same work."""
        with torch.no_grad():
            for model in (self.mini, self.plain):
                for k, v in model.state_dict().items():
                    v.copy_(self.start[k])

    def check_agreement(self, m64: int = 6) -> dict:
        """Assert equal bounds and gradients: float64 (a few images) and float32 (the whole batch)."""
        out = {}
        mini, plain = copy.deepcopy(self.mini).double(), copy.deepcopy(self.plain).double()
        batch = (self.x[:m64].double(), None if self.captions is None else self.captions[:m64],
                 None if self.lengths is None else self.lengths[:m64], self.noise[:, :m64].double())
        losses = []
        for model in (mini, plain):
            loss = self.loss(model, *batch)
            loss.backward()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-9, atol=0)
        grads_p = dict(plain.named_parameters())
        worst = 0.0
        for name, p in mini.named_parameters():
            if p.grad is None:
                assert grads_p[name].grad is None, name
                continue
            q = grads_p[name].grad
            torch.testing.assert_close(p.grad, q, rtol=1e-7, atol=1e-9 * max(1.0, q.abs().max().item()), msg=name)
            worst = max(worst, ((p.grad - q).abs().max() / q.abs().max().clamp_min(1e-30)).item())
        out["float64_bound"] = losses[0].item()
        out["float64_max_grad_rel_diff"] = worst
        with torch.no_grad():
            b32 = [self.loss(m).item() for m in (self.mini, self.plain)]
        assert abs(b32[0] - b32[1]) <= 1e-4 * abs(b32[1]), b32
        out["float32_bound"] = b32
        return out


# ---- measurements -----------------------------------------------------------------------------
def interleaved(*fns, pairs: int, before=lambda: None) -> list[list[float]]:
    """Seconds of each of ``fns``, in rounds whose order turns (a b c, b c a, ...; for two: alternating which
    runs first); ``before()`` untimed ahead of each."""
    times = [[] for _ in fns]
    for i in range(pairs):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            before()
            start = time.perf_counter()
            fns[j]()
            times[j].append(time.perf_counter() - start)
    return times


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_bytes(fn) -> int:
    """The highest running total of bytes allocated minus freed while ``fn()`` runs (CPU, torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    total = peak = 0
    for e in events:
        total += e.nbytes()
        peak = max(peak, total)
    return peak


def measure(name: str, cfg, M: int, pairs: int, compile_: bool) -> dict:
    pair = Pair(cfg, M)
    row = {"config": name, "batch": M, "T": cfg.T, "A": cfg.A, "B": cfg.B, "read_N": cfg.read_N,
           "write_N": cfg.write_N, "enc_size": cfg.enc_size, "dec_size": cfg.dec_size, "z_size": cfg.z_size,
           "data": pair.source, "plain_reuses": "minidraw LanguageModel + Alignment" if pair.caption else None}
    row.update(pair.check_agreement())
    for model in (pair.mini, pair.plain):                                          # warm up, Adam state
        pair.reset()
        pair.step(model)
    pair.reset()
    row["gflop_minidraw"] = flops(lambda: pair.step(pair.mini)) / 1e9
    pair.reset()
    row["gflop_plain"] = flops(lambda: pair.step(pair.plain)) / 1e9
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        row["bf16_bound"] = pair.loss(pair.mini).item()                         # the same batch and noise
    pair.reset()
    pair.step(pair.mini, bf16=True)                                             # warm up the bf16 kernels
    t_mini, t_plain, t_bf16 = interleaved(lambda: pair.step(pair.mini), lambda: pair.step(pair.plain),
                                          lambda: pair.step(pair.mini, bf16=True), pairs=pairs, before=pair.reset)
    row["times_ms_minidraw"], row["times_ms_plain"] = [1e3 * t for t in t_mini], [1e3 * t for t in t_plain]
    row["times_ms_minidraw_bf16"] = [1e3 * t for t in t_bf16]
    row["ms_minidraw"] = 1e3 * statistics.median(t_mini)
    row["ms_plain"] = 1e3 * statistics.median(t_plain)
    row["ms_minidraw_bf16"] = 1e3 * statistics.median(t_bf16)
    row["ratio"] = statistics.median(p / m for p, m in zip(t_plain, t_mini))   # plain / minidraw, per round
    row["ratio_bf16"] = statistics.median(p / m for p, m in zip(t_plain, t_bf16))   # plain fp32 / minidraw bf16
    for who, model in (("minidraw", pair.mini), ("plain", pair.plain)):
        pair.reset()
        pair.opts[model].zero_grad(set_to_none=True)                           # free last step's gradients first
        row[f"peak_mb_{who}"] = peak_bytes(lambda: pair.step(model)) / 2**20
    if compile_:
        row.update(compiled(pair, pairs))
    return row


def compiled(pair: Pair, pairs: int) -> dict:
    """torch.compile(minidraw's model), in float32 and under bf16 autocast (two compiles): each first step's
    time (the compile) and the step after, against eager minidraw (float32) and the plain DRAW (bf16)."""
    torch._dynamo.reset()
    model = pair.mini
    fast = torch.compile(model)
    opt = pair.opts[model]
    out = {}
    for bf16 in (False, True):
        step = lambda: pair.step(fast, opt, bf16=bf16)                          # noqa: E731
        pair.reset()
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        pair.reset()
        step()                                                                 # any recompile
        other = (lambda: pair.step(pair.plain)) if bf16 else (lambda: pair.step(model))
        t_comp, t_other = interleaved(step, other, pairs=pairs, before=pair.reset)
        tag = "_bf16" if bf16 else ""
        out[f"compile_s{tag}"], out[f"ms_compiled{tag}"] = first, 1e3 * statistics.median(t_comp)
        ratio = statistics.median(o / c for o, c in zip(t_other, t_comp))
        out["compiled_bf16_vs_plain" if bf16 else "compiled_speedup"] = ratio
    return out


def sample_ms(runs: int = 7) -> float:
    """Milliseconds to draw 16 images from captions with the small MNIST alignDRAW (median of ``runs``)."""
    cfg = preset("aligndraw_mnist_small")
    torch.manual_seed(0)
    model = CaptionDraw(cfg).eval()
    _, captions, lengths, _ = data(cfg, 16)
    model.generate(captions, lengths)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.generate(captions, lengths)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def table(rows: list[dict], roofline: float) -> str:
    """The results as a text table: times, their ratio, matmul work, share of the roofline, peak memory."""
    head = (f"{'configuration':24} {'minidraw ms':>11} {'plain ms':>9} {'plain/minidraw':>14} {'GFLOP':>6} "
            f"{'% roofline m/p':>15} {'peak MB m/p':>12} {'bf16 ms':>8} {'plain/bf16':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        pct = [100 * r["gflop_minidraw"] / (r[f"ms_{who}"] / 1e3) / roofline for who in ("minidraw", "plain")]
        lines.append(f"{r['config']:24} {r['ms_minidraw']:11.0f} {r['ms_plain']:9.0f} {r['ratio']:13.2f}x "
                     f"{r['gflop_minidraw']:6.1f} {pct[0]:7.1f}/{pct[1]:<7.1f} "
                     f"{r['peak_mb_minidraw']:5.0f}/{r['peak_mb_plain']:<5.0f} "
                     f"{r['ms_minidraw_bf16']:8.0f} {r['ratio_bf16']:9.2f}x")
        if abs(r["gflop_plain"] - r["gflop_minidraw"]) > 0.01 * r["gflop_minidraw"]:
            lines.append(f"{'':24} (the plain step counts {r['gflop_plain']:.1f} GFLOP)")
        if "compile_s" in r:
            lines.append(f"{'':24} torch.compile: {r['compile_s']:.0f} s to compile, {r['ms_compiled']:.0f} ms/step "
                         f"compiled, {r['compiled_speedup']:.2f}x eager minidraw; with bf16: "
                         f"{r['compile_s_bf16']:.0f} s, {r['ms_compiled_bf16']:.0f} ms/step, "
                         f"{r['compiled_bf16_vs_plain']:.2f}x the plain fp32 step")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = list(configs())
    p.add_argument("--configs", nargs="+", default=names, choices=names)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pairs", type=int, default=10, help="timed steps of each model, alternating")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, i.e. OMP_NUM_THREADS)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow: minutes per config)")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    machine = (f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
               f"torch threads, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    print(machine)
    rooflines = [matmul_gflops("cpu")]
    bf16_roofline = matmul_gflops("cpu", dtype=torch.bfloat16)
    rows = []
    for name in a.configs:
        rows.append(measure(name, configs()[name], a.batch, a.pairs, a.compile))
        r = rows[-1]
        print(f"  {name}: agree (float64 bound {r['float64_bound']:.4f}, gradients within "
              f"{r['float64_max_grad_rel_diff']:.1e}); {r['ms_minidraw']:.0f} vs {r['ms_plain']:.0f} ms; "
              f"data: {r['data']}"
              + (f"; plain reuses {r['plain_reuses']}" if r["plain_reuses"] else ""), flush=True)
        rooflines.append(matmul_gflops("cpu"))
    roofline = max(rooflines)
    sampling = sample_ms()
    print(f"\nfp32 matmul roofline: {roofline:.0f} GFLOP/s (best of {len(rooflines)}: "
          f"{', '.join(f'{g:.0f}' for g in rooflines)}); bf16: {bf16_roofline:.0f} GFLOP/s "
          f"({'native' if bf16_native(torch.device('cpu')) else 'emulated'} on this CPU)")
    print(table(rows, roofline))
    print(f"sampling 16 images, aligndraw_mnist_small: {sampling:.0f} ms")
    print("(ratio: median over pairs of neighbouring steps; GFLOP: matmul work of one step (FlopCounterMode); "
          "% roofline: that work per second, minidraw / plain, as a share of the fp32 matmul roofline; "
          "peak MB: torch.profiler, allocations during one step on top of weights and Adam state, minidraw / plain; "
          "bf16: minidraw's step under bf16 autocast (the bound in float32; cpu_bf16 = true), timed in the same "
          "rounds, and plain fp32 / that; the bf16 bound of the batch is in the JSON)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine, "load_average_end": os.getloadavg()[0], "roofline_gflops": roofline,
                       "rooflines": rooflines, "bf16_roofline_gflops": bf16_roofline, "sample_16_ms": sampling, "rows": rows}, f, indent=1)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
