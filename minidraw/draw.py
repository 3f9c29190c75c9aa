"""DRAW: a recurrent variational autoencoder that reads and writes with attention.

One step t = 1..T of inference (Gregor et al., 2015; Mansimov et al., 2016)::

    x̂_t    = x − σ(c_{t−1})                                   error image
    r_t    = read(x, x̂_t, h^dec_{t−1})                        N×N glimpses of both
    h^enc_t = LSTM_enc(h^enc_{t−1}, [r_t, h^dec_{t−1}])
    z_t    ~ q(z_t | ·) = N(μ_t, σ_t²),  (μ_t, log σ_t) = W h^enc_t
    s_t    = context(h^dec_{t−1})                              caption (alignDRAW); nothing for DRAW
    h^dec_t = LSTM_dec(h^dec_{t−1}, [z_t, s_t])
    c_t    = c_{t−1} + write(h^dec_t)

The prior is learned and sequential (Bachman & Precup's, as in alignDRAW's
code): p(z_1) = N(0, I) and, for t > 1, p(z_t | z_<t) = N(μ^p_t, σ^p_t²) with
(μ^p_t, log σ^p_t) = tanh(W_p h^dec_{t−1} + b_p). ``learned_prior=False`` gives
the DRAW paper's N(0, I) at every step. Generation runs the last three lines
with z_t drawn from the prior.

A forward pass returns everything it computed in a :class:`DrawOutput` —
canvases, attention windows and KL per step, the bound — and keeps nothing on
``self``. This module knows nothing of captions: a caption-conditioned model
(:mod:`minidraw.aligndraw`) plugs in through ``context``, a callable that maps
h^dec_{t−1} to (s_t, α_t), the conditioning vector and, for alignDRAW, the
alignment weights.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .attention import ReadAttention, Window, WriteAttention
from .bound import bernoulli_nll, iwae_nats
from .outputs import ConfigDict, DrawOutput, Generated, Latents, check_images

# context(h_dec_prev (M, dec_size)) -> (s_t (M, cond_size), alpha_t (M, L) or None)
Context = Callable[[Tensor], "tuple[Tensor, Optional[Tensor]]"]


@dataclass
class DrawSizes(ConfigDict):
    """The sizes every DRAW core has (plain DRAW and the caption-conditioned variants alike).
    The canvas is A wide, B high, with C channels."""

    A: int = 28             # canvas width
    B: int = 28             # canvas height
    C: int = 1              # channels
    T: int = 64             # drawing steps
    read_N: int = 2         # read glimpse is read_N × read_N
    write_N: int = 5        # written patch is write_N × write_N
    enc_size: int = 256     # encoder LSTM
    dec_size: int = 256     # decoder (generator) LSTM
    z_size: int = 100       # latent z_t per step
    learned_prior: bool = True
    canvas_init: float = 0.0  # c_0 starts here (learned); -10 makes σ(c_0) a black canvas

    def __post_init__(self) -> None:
        self._require(1, "A", "B", "C", "T", "read_N", "write_N", "enc_size", "dec_size", "z_size")


@dataclass
class DrawConfig(DrawSizes):
    """Sizes of a DRAW model. ``cond_size``: the size of a conditioning vector s_t that a
    hand-made ``context`` gives each step; 0 = unconditional DRAW."""

    cond_size: int = 0      # size of s_t; 0 = unconditional DRAW

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(0, "cond_size")


def stack_windows(windows: list[Window]) -> Window:
    """A list of T windows with ``(M,)`` fields -> one window with ``(M, T)`` fields."""
    return Window(**{f.name: torch.stack([getattr(w, f.name) for w in windows], 1) for f in fields(Window)})


class Draw(nn.Module):
    """The DRAW core. Unconditional with ``cond_size = 0``; give ``context`` otherwise."""

    def __init__(self, cfg: DrawConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.read = ReadAttention(cfg.dec_size, cfg.A, cfg.B, cfg.C, cfg.read_N)
        self.encoder = nn.LSTMCell(self.read.size + cfg.dec_size, cfg.enc_size)
        self.q = nn.Linear(cfg.enc_size, 2 * cfg.z_size)                       # (μ_t, log σ_t)
        self.prior = nn.Linear(cfg.dec_size, 2 * cfg.z_size) if cfg.learned_prior else None
        self.decoder = nn.LSTMCell(cfg.z_size + cfg.cond_size, cfg.dec_size)
        self.write = WriteAttention(cfg.dec_size, cfg.A, cfg.B, cfg.C, cfg.write_N)
        self.c0 = nn.Parameter(torch.full((cfg.C, cfg.B, cfg.A), float(cfg.canvas_init)))

    # ---- pieces shared by inference and generation -------------------------------
    def _start(self, M: int, device, dtype) -> tuple[tuple[Tensor, Tensor], Tensor]:
        zeros = torch.zeros(M, self.cfg.dec_size, device=device, dtype=dtype)
        return (zeros, zeros.clone()), self.c0.expand(M, -1, -1, -1)            # h^dec_0, c_0

    def prior_params(self, h_dec: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """(μ^p_t, log σ^p_t), each ``(M, z_size)``: N(0, I) at t = 1 (t is 0-based here)."""
        if self.prior is None or t == 0:
            zeros = h_dec.new_zeros(h_dec.shape[0], self.cfg.z_size)
            return zeros, zeros
        mu, logsigma = torch.tanh(self.prior(h_dec)).chunk(2, -1)                # tanh(W_p h^dec_{t−1} + b_p)
        return mu, logsigma

    def _decode(self, z: Tensor, dec: tuple[Tensor, Tensor], context: Optional[Context]):
        """One generator step: s_t from h^dec_{t−1}, then h^dec_t = LSTM_dec(h^dec_{t−1}, [z_t, s_t]);
        returns h^dec_t's state and α_t (None without a context)."""
        alpha = None
        if context is not None:
            s, alpha = context(dec[0])                                         # s_t (M, cond_size)
            z = torch.cat([z, s], -1)
        elif self.cfg.cond_size:
            raise ValueError(f"this model is conditioned (cond_size={self.cfg.cond_size}); give a context")
        return self.decoder(z, dec), alpha

    # ---- inference: the bound ----------------------------------------------------
    def forward(self, x: Tensor, context: Optional[Context] = None, keep_canvases: bool = False,
                noise: Optional[Tensor] = None, keep_states: bool = False) -> DrawOutput:
        """Encode ``x (M, C, B, A)`` in [0, 1], decode, and score: one sample of the bound.

        ``noise (T, M, z_size)`` fixes the ε of every z_t = μ_t + σ_t ε (drawn when not given);
        ``keep_states`` keeps h^dec_t of every step in ``.states``.
        """
        cfg = self.cfg
        check_images(x, (cfg.C, cfg.B, cfg.A), self.c0.dtype)
        M = x.shape[0]
        if noise is not None and noise.shape != (cfg.T, M, cfg.z_size):
            raise ValueError(f"noise must have shape {(cfg.T, M, cfg.z_size)}, got {tuple(noise.shape)}")
        dec, canvas = self._start(M, x.device, x.dtype)
        enc = (x.new_zeros(M, cfg.enc_size), x.new_zeros(M, cfg.enc_size))
        gaussians, reads, writes, canvases, alphas, states = [], [], [], [], [], []
        for t in range(cfg.T):
            x_hat = x - torch.sigmoid(canvas)                                  # x̂_t = x − σ(c_{t−1})
            r, w_read = self.read(x, x_hat, dec[0])                            # r_t (M, 2·C·N·N)
            enc = self.encoder(torch.cat([r, dec[0]], -1), enc)                # h^enc_t
            mu, logsigma = self.q(enc[0]).chunk(2, -1)                         # q(z_t|·) = N(μ_t, σ_t²)
            eps = torch.randn_like(mu) if noise is None else noise[t]
            z = mu + torch.exp(logsigma) * eps                                 # z_t = μ_t + σ_t ε
            mu_p, logsigma_p = self.prior_params(dec[0], t)                    # p(z_t | z_<t)
            gaussians.append((eps, mu, logsigma, mu_p, logsigma_p))
            dec, alpha = self._decode(z, dec, context)                         # h^dec_t
            delta, w_write = self.write(dec[0])
            canvas = canvas + delta                                            # c_t = c_{t−1} + write(h^dec_t)
            if keep_states:
                states.append(dec[0])                                          # h^dec_t (M, dec_size)
            reads.append(w_read)
            writes.append(w_write)
            if keep_canvases:
                canvases.append(canvas)
            if alpha is not None:
                alphas.append(alpha)
        # The recurrence never needs the KL: score every step at once, on (M, T, z_size) tensors.
        # log q(z) and log p(z) (importance weighting only) are computed from `latents` when asked for.
        # Under bf16 autocast the networks' outputs are bf16: the bound is scored in x's precision.
        latents = Latents(*(torch.stack(v, 1).to(x.dtype) for v in zip(*gaussians)))  # ε, μ, log σ, μ^p, log σ^p
        canvas = canvas.to(x.dtype)
        return DrawOutput(canvas=canvas, nll=bernoulli_nll(canvas, x), kl=latents.kl(),  # KL_t (M, T)
                          log_qz=None, log_pz=None, read=stack_windows(reads), write=stack_windows(writes),
                          canvases=torch.stack(canvases) if keep_canvases else None,
                          alpha=torch.stack(alphas, 1) if alphas else None, latents=latents,
                          states=torch.stack(states, 1) if states else None)

    @torch.no_grad()
    def iwae(self, x: Tensor, K: int = 50, context_for: Optional[Callable[[int], Context]] = None) -> Tensor:
        """−L_K in nats per image ``(M,)``, from K posterior samples of each image.

        ``context_for(K)`` (conditioned models) builds the context for ``x`` repeated K times.
        """
        M = x.shape[0]
        xs = x.repeat(K, 1, 1, 1)                                              # (K·M, C, B, A), k-major
        out = self(xs, context_for(K) if context_for else None)
        view = lambda v: v.view(K, M)  # noqa: E731
        return iwae_nats(view(-out.nll), view(out.log_pz), view(out.log_qz))

    # ---- generation ----------------------------------------------------------------
    @torch.no_grad()
    def generate(self, M: int, context: Optional[Context] = None, temperature: float | Tensor = 1.0,
                 keep_states: bool = False, noise: Optional[Tensor] = None) -> Generated:
        """Draw ``M`` images from the prior: z_t ~ p(z_t | z_<t), σ scaled by ``temperature`` (a number, or one
        per number of z_t, ``(z_size,)``); ``keep_states``: h^dec_t of every step in ``.states``; ``noise``: the
        ε of z_t = μ^p_t + τ σ^p_t ε, ``(T, M, z_size)`` (default: drawn from N(0, I))."""
        device, dtype = self.c0.device, self.c0.dtype
        if not isinstance(temperature, (int, float, Tensor)):
            raise ValueError(f"temperature: one number, or a tensor of one per number of z_t; got {temperature!r}")
        if isinstance(temperature, Tensor) and temperature.shape not in ((), (self.cfg.z_size,)):
            raise ValueError(f"temperature: one number, or one per number of z_t ({self.cfg.z_size}), "
                             f"got shape {tuple(temperature.shape)}")
        if noise is not None and tuple(noise.shape) != (self.cfg.T, M, self.cfg.z_size):
            raise ValueError(f"noise must have shape {(self.cfg.T, M, self.cfg.z_size)}, got {tuple(noise.shape)}")
        dec, canvas = self._start(M, device, dtype)
        canvases, writes, alphas, states = [], [], [], []
        for t in range(self.cfg.T):
            mu_p, logsigma_p = self.prior_params(dec[0], t)
            eps = torch.randn_like(mu_p) if noise is None else noise[t]                 # ε (M, z_size)
            z = mu_p + temperature * torch.exp(logsigma_p) * eps                    # z_t ~ p(z_t | z_<t)
            dec, alpha = self._decode(z, dec, context)
            delta, w_write = self.write(dec[0])
            canvas = canvas + delta
            canvases.append(torch.sigmoid(canvas))
            writes.append(w_write)
            if alpha is not None:
                alphas.append(alpha)
            if keep_states:
                states.append(dec[0])                                           # h^dec_t (M, dec_size)
        steps = torch.stack(canvases)                                           # (T, M, C, B, A)
        return Generated(images=steps[-1], canvases=steps, write=stack_windows(writes),
                         alpha=torch.stack(alphas, 1) if alphas else None,
                         states=torch.stack(states, 1) if states else None)
