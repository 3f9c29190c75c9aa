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
``self``. Caption-conditioned variants plug in through ``context``: a callable
that maps h^dec_{t−1} to (s_t, α_t), the conditioning vector and, for
alignDRAW, the alignment weights.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .align import Alignment
from .attention import ReadAttention, Window, WriteAttention, filterbanks, window_from_params, write
from .bound import bernoulli_nll, iwae_nats
from .outputs import ConfigDict, DrawOutput, Generated, Latents, check_images  # noqa: F401 - also minidraw.draw's
from .text import LanguageModel, sentence_vector

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
    # Ours, not the paper's: the generator as two LSTMs, *where* (the first dec_size // 2 units: the write
    # window, the alignment's query, half of z) and *what* (the rest: the written patch, the other half of z,
    # reading only the content words of s_t). See WhatWhereDecoder.
    what_where: bool = False
    # what_where: the where LSTM reads the first half of z_t; False: none of it (all of z_t is the what LSTM's), so
    # nothing the encoder saw in the picture reaches the where path and it is a function of the caption alone
    where_latent: bool = True
    # what_where: the where LSTM gives only the write window's origin (g̃_X, g̃_Y); the what LSTM adds its offset
    # from there and sets the stride, variance and intensity, so a digit is drawn in its own coordinates
    # (the same strokes in every slot) and placed by the where path. See WhatWhereWrite.
    local_write: bool = False

    def __post_init__(self) -> None:
        self._require(1, "A", "B", "C", "T", "read_N", "write_N", "enc_size", "dec_size", "z_size")
        if not self.where_latent and not self.what_where:
            raise ValueError("where_latent=False takes z_t away from the where LSTM: it needs what_where=True")
        if self.local_write and not self.what_where:
            raise ValueError("local_write splits the write window between the where and what LSTMs: "
                             "it needs what_where=True")


@dataclass
class DrawConfig(DrawSizes):
    """Sizes of a DRAW model. ``cond_size``: the size of a conditioning vector s_t that a
    hand-made ``context`` gives each step; 0 = unconditional DRAW."""

    cond_size: int = 0      # size of s_t; 0 = unconditional DRAW

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(0, "cond_size")
        if self.what_where:
            raise ValueError("what_where is for caption-conditioned models (CaptionDrawConfig)")


def stack_windows(windows: list[Window]) -> Window:
    """A list of T windows with ``(M,)`` fields -> one window with ``(M, T)`` fields."""
    return Window(**{f.name: torch.stack([getattr(w, f.name) for w in windows], 1) for f in fields(Window)})


def z_where(cfg) -> int:
    """How many numbers of z_t the where LSTM reads (the first ones): half, or none without ``where_latent``."""
    return cfg.z_size // 2 if cfg.where_latent else 0


class WhatWhereDecoder(nn.Module):
    """The generator as two LSTMs in one state ``[h^where ; h^what]`` (``what_where``, ours):

        h^where_t = LSTM_where(h^where_{t−1}, [z^where_t ; s_t])             s_t: the words α reads
        h^what_t  = LSTM_what(h^what_{t−1},  [z^what_t ; s^what_t])          s^what_t: only its content words

    *Where* places the write window and asks the alignment; *what* writes the patch and never learns where
    it lands, so a digit it has drawn in one slot it can draw in any. Behaves as one ``nn.LSTMCell`` on
    ``[z_t ; s_t ; s^what_t]`` (``what_share``: s^what_t ends with the share m_t; ``what_reset``: s_t ends with
    the restart flag r_t, which the what LSTM does not read but obeys)."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.share = int(getattr(cfg, "what_share", False))                   # what_share: m_t, one more input
        self.reset = bool(getattr(cfg, "what_reset", False))                   # what_reset: r_t, the restart flag
        self.z_where, self.h_where = z_where(cfg), cfg.dec_size // 2
        e = (cfg.cond_size - self.share - int(self.reset)) // 2                # s_t and s^what_t: e numbers each
        self.where = nn.LSTMCell(self.z_where + e, self.h_where)
        self.what = nn.LSTMCell(cfg.z_size - self.z_where + e + self.share, cfg.dec_size - self.h_where)
        self.z_size, self.e = cfg.z_size, e

    def forward(self, inp: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        z, e = inp[:, : self.z_size], self.e
        s, s_what = inp[:, self.z_size: self.z_size + e], inp[:, self.z_size + e: self.z_size + 2 * e + self.share]
        hw, cw = self.where(torch.cat([z[:, : self.z_where], s], -1),
                            (state[0][:, : self.h_where], state[1][:, : self.h_where]))
        h_what, c_what = state[0][:, self.h_where:], state[1][:, self.h_where:]
        if self.reset:                                                         # what_reset: r_t = 1 restarts
            keep = 1 - inp[:, -1:]                                             # (M, 1)
            h_what, c_what = keep * h_what, keep * c_what
        hc, cc = self.what(torch.cat([z[:, self.z_where:], s_what], -1), (h_what, c_what))
        return torch.cat([hw, hc], -1), torch.cat([cw, cc], -1)


class WhatWherePrior(nn.Module):
    """p(z^where_t | h^where_{t−1}) and p(z^what_t | h^what_{t−1}): each half of z from its own LSTM;
    returns ``[μ ; log σ]`` like the single ``nn.Linear`` prior."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.z_where, self.h_where = z_where(cfg), cfg.dec_size // 2
        self.where = nn.Linear(self.h_where, 2 * self.z_where) if self.z_where else None   # None: no z^where
        self.what = nn.Linear(cfg.dec_size - self.h_where, 2 * (cfg.z_size - self.z_where))

    def forward(self, h: Tensor) -> Tensor:
        if self.where is None:
            return self.what(h[:, self.h_where:])
        mw, lw = self.where(h[:, : self.h_where]).chunk(2, -1)
        mc, lc = self.what(h[:, self.h_where:]).chunk(2, -1)
        return torch.cat([mw, mc, lw, lc], -1)


class WhatWhereWrite(WriteAttention):
    """The write window from h^where, the patch from h^what. With ``local_write`` the window is shared:

        (g̃_X, g̃_Y) = W_o h^where + (Δ̃_X, Δ̃_Y),   (Δ̃_X, Δ̃_Y, log σ², log δ̃, log γ) = W_l h^what

    the where path puts the origin, the what path moves about it (and sizes the window) as it draws."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg.dec_size, cfg.A, cfg.B, cfg.C, cfg.write_N)
        self.h_where = cfg.dec_size // 2
        self.window = nn.Linear(self.h_where, 2 if cfg.local_write else 5)        # W_o: the origin only
        self.local = nn.Linear(cfg.dec_size - self.h_where, 5) if cfg.local_write else None   # W_l
        self.patch = nn.Linear(cfg.dec_size - self.h_where, cfg.C * cfg.write_N ** 2)

    def params(self, h: Tensor) -> Tensor:
        """``(M, 5)`` = (g̃_X, g̃_Y, log σ², log δ̃, log γ) from ``h = [h^where ; h^what]``."""
        p = self.window(h[:, : self.h_where])                                  # (M, 5), or the origin (M, 2)
        if self.local is None:
            return p
        return self.local(h[:, self.h_where:]) + F.pad(p, (0, 3))              # origin + (offset, σ², δ̃, γ)

    def forward(self, h: Tensor):
        w = window_from_params(self.params(h), self.A, self.B, self.N)
        F_X, F_Y = filterbanks(w, self.N, self.A, self.B)                # (M, N, A), (M, N, B)
        patch = self.patch(h[:, self.h_where:]).view(-1, self.C, self.N, self.N)
        return write(patch, F_X, F_Y, w.gamma), w                        # (M, C, B, A)


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
        if cfg.what_where:
            self.prior = WhatWherePrior(cfg) if cfg.learned_prior else None
            self.decoder = WhatWhereDecoder(cfg)
            self.write = WhatWhereWrite(cfg)
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
                noise: Optional[Tensor] = None, keep_what: bool = False) -> DrawOutput:
        """Encode ``x (M, C, B, A)`` in [0, 1], decode, and score: one sample of the bound.

        ``noise (T, M, z_size)`` fixes the ε of every z_t = μ_t + σ_t ε (drawn when not given);
        ``keep_what`` (``what_where``) keeps h^what_t of every step in ``.h_what``.
        """
        cfg = self.cfg
        check_images(x, (cfg.C, cfg.B, cfg.A), self.c0.dtype)
        M = x.shape[0]
        if noise is not None and noise.shape != (cfg.T, M, cfg.z_size):
            raise ValueError(f"noise must have shape {(cfg.T, M, cfg.z_size)}, got {tuple(noise.shape)}")
        dec, canvas = self._start(M, x.device, x.dtype)
        enc = (x.new_zeros(M, cfg.enc_size), x.new_zeros(M, cfg.enc_size))
        gaussians, reads, writes, canvases, alphas, what = [], [], [], [], [], []
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
            if keep_what:
                what.append(dec[0][:, cfg.dec_size // 2:])                     # h^what_t (M, dec_size − dec_size//2)
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
                          h_what=torch.stack(what, 1) if what else None)

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
    def generate(self, M: int, context: Optional[Context] = None, temperature: float | tuple[float, float] = 1.0,
                 keep_what: bool = False) -> Generated:
        """Draw ``M`` images from the prior: z_t ~ p(z_t | z_<t) (σ scaled by ``temperature``; ``what_where``: a
        pair (τ^where, τ^what) scales z^where and z^what apart); ``keep_what``: h^what_t of every step in ``.h_what``."""
        device, dtype = self.c0.device, self.c0.dtype
        if isinstance(temperature, (tuple, list)):                             # (τ^where, τ^what) per number of z_t
            if not (getattr(self.cfg, "what_where", False) and len(temperature) == 2):
                raise ValueError("a pair of temperatures (z^where, z^what) needs a what/where generator; "
                                 f"give one number, got {temperature!r}")
            zw = z_where(self.cfg)
            temperature = torch.tensor([float(temperature[0])] * zw + [float(temperature[1])] * (self.cfg.z_size - zw),
                                       device=device, dtype=dtype)             # (z_size,)
        dec, canvas = self._start(M, device, dtype)
        canvases, writes, alphas, what = [], [], [], []
        for t in range(self.cfg.T):
            mu_p, logsigma_p = self.prior_params(dec[0], t)
            z = mu_p + temperature * torch.exp(logsigma_p) * torch.randn_like(mu_p)  # z_t ~ p(z_t | z_<t)
            dec, alpha = self._decode(z, dec, context)
            delta, w_write = self.write(dec[0])
            canvas = canvas + delta
            canvases.append(torch.sigmoid(canvas))
            writes.append(w_write)
            if alpha is not None:
                alphas.append(alpha)
            if keep_what:
                what.append(dec[0][:, self.cfg.dec_size // 2:])
        steps = torch.stack(canvases)                                           # (T, M, C, B, A)
        return Generated(images=steps[-1], canvases=steps, write=stack_windows(writes),
                         alpha=torch.stack(alphas, 1) if alphas else None,
                         h_what=torch.stack(what, 1) if what else None)


# ---- caption-conditioned DRAW: alignDRAW and its variants ---------------------------
VARIANTS = ("align", "noalign", "skipthought", "draw")
ALIGN_VALUES = ("states", "words", "both")


@dataclass(repr=False)
class CaptionDrawConfig(DrawSizes):
    """A DRAW that draws from a caption. ``variant`` picks how the caption enters step t:

    * ``align`` (alignDRAW): s_t = Σ_j α_j^t h^lang_j, the alignment of chapter 5;
    * ``noalign`` (noalignDRAW): s_t = the sentence vector, the same at every step;
    * ``skipthought``: s_t = a frozen, pretrained sentence embedding, the same at every step:
      with ``sentence_encoder = "external"`` given with the caption as ``sentence``
      (e.g. :class:`minidraw.text.FrozenSentenceEncoder`, ``sentence_size`` numbers); with
      ``"autoencoder"`` computed inside the model by a frozen BiLSTM that
      :func:`minidraw.text.pretrain_sentence_encoder` trained on the captions alone before the
      drawing model starts (works offline; 2m numbers);
    * ``draw``: no caption at all (unconditional DRAW, the sanity check).

    ``align_values`` says what the alignment averages (``align`` only). The paper's ``"states"``:
    s_t = Σ_j α_j^t h^lang_j. ``"words"``: the same weights α^t — still scored against the BiLSTM's
    states, which know each word's context — average the word embeddings E y_j instead, so s_t
    carries only which words the step reads, not a summary of the whole caption; ``"both"``:
    [h^lang_j ; E y_j]. The alignDRAW chapter measures why ``"words"`` draws unseen compositions.

    The size of s_t, ``cond_size``, follows from these settings: it is a property, never stored.
    """

    DERIVED: ClassVar[tuple[str, ...]] = ("cond_size",)
    # settings of training only, not of the model: weights trained with other values serve as init= (train.init_weights)
    TRAINING_ONLY: ClassVar[tuple[str, ...]] = ("what_adversary", "where_kl")

    variant: str = "align"
    vocab_size: int = 23    # word ids, <pad> included (MNIST with captions: 22 words + <pad>)
    embed_size: int = 128
    lang_size: int = 128    # m, per direction: h^lang_j has 2m dims
    align_size: int = 512
    sentence_size: int = 384  # skipthought + external: size of the given embedding (all-MiniLM-L6-v2: 384)
    sentence_encoder: str = "external"  # skipthought: "external" (given) or "autoencoder" (inside, frozen)
    sentence_pretrain_steps: int = 500   # skipthought + autoencoder: caption-autoencoder training steps
    align_values: str = "states"  # align: what α averages, "states" (the paper: h^lang_j), "words" (E y_j), "both"
    content_first: int = 0  # what_where: word ids content_first..content_last name what is drawn (digits, ...)
    content_last: int = 0
    # what_where, ours: the where path (its alignment's keys and s_t) reads every content word as one shared
    # token, so only the what path knows *which* digit; see CaptionDraw.context.
    blind_where: bool = False
    # with blind_where: are the alignment's keys blind too (True, as first built), or do they see the digits
    # (False: only the where LSTM's s_t reads the shared token, so α can still find "the digit that goes on
    # the left" while the where LSTM never reads which digit that is)
    blind_where_keys: bool = True
    # what_where, ours: what the where path's s_t averages, "words" (E y_j) or "states" (a projection of the
    # BiLSTM states h^lang_j, which know a word's place in the caption: "the digit after 'top of'")
    where_values: str = "words"
    # what_where, ours: the what LSTM draws one content word at a time, as a program of its own: at each step it
    # reads only the embedding of the content word α weighs most (not a mixture), and its state starts afresh
    # whenever that word changes, so it never learns in which slot, or after which word, it draws
    what_reset: bool = False
    # what_where, ours: s^what_t averages the content words with α renormalised over them,
    # Σ_j α_j [y_j content] E y_j / Σ_j α_j [y_j content], so the what LSTM reads *which* digit, never how much
    # of α falls on digit words — a profile that differs between slots, from which it can learn the slot
    what_normalise: bool = False
    # with what_normalise or what_reset, ours: and the share m_t = Σ_j α_j [y_j content] as one more number of the
    # what LSTM's input, beside the identity, not multiplied into it: s^what_t = [Σ_j α_j c_j E y_j / m_t ; m_t]
    # (what_reset: [E y_{k_t} ; m_t]). The what path gets back *when* the window is on a digit, as a scalar it
    # must read apart from *which* digit
    what_share: bool = False
    # what_where, ours, training only: an adversary learns to tell from h^what_t which of the caption's other
    # words (all but the content words: "left", "top", "corner", ...) the caption holds, and the what path is
    # trained, with weight λ = what_adversary, to leave it no better than the batch's word frequencies, so it
    # cannot know the layout it draws into. 0: none. Never part of the bound. See WhatAdversary.
    what_adversary: float = 0.0
    # what_where with where_latent, ours, training only: the KL term of z^where weighted β = where_kl in the training
    # objective, NLL + β Σ_t KL^where_t + Σ_t KL^what_t. β > 1 makes a nat in z^where dearer than one in z^what, so
    # the digit's shape moves into the what path and z^where keeps the placement. 1: the bound itself. The bound
    # that is logged, evaluated and reported is always the true one (β = 1).
    where_kl: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.where_kl >= 0:
            raise ValueError(f"where_kl is a weight β >= 0 on z^where's KL term (1: the bound), got {self.where_kl}")
        if self.where_kl != 1 and not (self.what_where and self.where_latent):
            raise ValueError("where_kl weights the KL of z^where, the where LSTM's half of z_t: it needs "
                             "what_where=True and where_latent=True")
        if not self.what_adversary >= 0:
            raise ValueError(f"what_adversary is a weight λ >= 0 (0: no adversary), got {self.what_adversary}")
        if self.what_adversary and not self.what_where:
            raise ValueError("what_adversary hides the caption's layout words from the what LSTM: "
                             "it needs what_where=True")
        self._require(1, "embed_size", "lang_size", "align_size", "sentence_size")
        self._require(0, "vocab_size", "sentence_pretrain_steps")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.align_values not in ALIGN_VALUES:
            raise ValueError(f"align_values must be one of {ALIGN_VALUES}, got {self.align_values!r}")
        self._require(0, "content_first", "content_last")
        if self.what_where:
            if self.variant != "align" or self.align_values != "words":
                raise ValueError("what_where needs variant='align' and align_values='words' (s_t: word embeddings)")
            if not 1 <= self.content_first <= self.content_last or self.content_last >= self.vocab_size:
                raise ValueError("what_where needs the content words' ids: 1 <= content_first <= content_last "
                                 f"< vocab_size ({self.vocab_size}), got {self.content_first}..{self.content_last}")
            if self.dec_size < 2 or self.z_size < 2:
                raise ValueError("what_where splits dec_size and z_size in two: give at least 2 of each")
        if self.where_values not in ("words", "states"):
            raise ValueError(f"where_values must be 'words' or 'states', got {self.where_values!r}")
        if self.what_normalise and (not self.what_where or self.what_reset):
            raise ValueError("what_normalise renormalises α over the content words of the what/where generator's "
                             "s^what: it needs what_where=True, and what_reset=False (which reads one word already)")
        if self.what_share and not (self.what_normalise or self.what_reset):
            raise ValueError("what_share gives the what path the share of α on the content words beside an identity "
                             "that does not carry it: it needs what_normalise=True or what_reset=True")
        if self.what_reset and not self.what_where:
            raise ValueError("what_reset restarts the what LSTM of the what/where generator: it needs what_where=True")
        if self.where_values != "words" and not self.what_where:
            raise ValueError("where_values chooses what the where path's s_t averages: it needs what_where=True")
        if not self.what_where and self.blind_where:
            raise ValueError("blind_where hides the content words from the where path: it needs what_where=True")
        if not self.blind_where_keys and not (self.blind_where and self.where_values == "words"):
            raise ValueError("blind_where_keys=False leaves the alignment's keys sighted and hides the digits from the "
                             "where LSTM's s_t only: it needs blind_where=True and where_values='words' (states that "
                             "read the digits would tell the where LSTM which they are)")
        if self.sentence_encoder not in ("external", "autoencoder"):
            raise ValueError(f"sentence_encoder must be 'external' or 'autoencoder', got {self.sentence_encoder!r}")

    @property
    def cond_size(self) -> int:
        """Size of s_t: 2m for ``align`` and ``noalign`` (the BiLSTM's states); for ``skipthought``
        the embedding's, ``sentence_size`` given, or 2m from the frozen in-model BiLSTM; 0 for ``draw``."""
        if self.variant == "skipthought":
            return 2 * self.lang_size if self.sentence_encoder == "autoencoder" else self.sentence_size
        if self.variant == "align":
            if self.what_where:                                  # [s_t ; s_t over the content words only]
                return 2 * self.embed_size + int(self.what_reset) + int(self.what_share)  # and r_t, or m_t
            return {"states": 2 * self.lang_size, "words": self.embed_size,
                    "both": 2 * self.lang_size + self.embed_size}[self.align_values]
        return 0 if self.variant == "draw" else 2 * self.lang_size

    def __repr__(self) -> str:
        """The settings, with the derived ``cond_size`` where :class:`DrawConfig` has its own."""
        items = [(f.name, getattr(self, f.name)) for f in fields(self)]
        items.insert([name for name, _ in items].index("z_size") + 1, ("cond_size", self.cond_size))
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in items) + ")"


class WhatAdversary(nn.Module):
    """``what_adversary``: an adversary f that reads h^what_t and guesses which of the caption's *other* words
    y ∈ {0, 1}^V it holds (every word but padding and the content words: the layout), and a term for the what
    path that makes the guess worthless. With BCE the binary cross-entropy summed over those words,

        aux = λ Σ_t ( BCE(f(sg h^what_t), y)  +  BCE(f_sg(h^what_t), ȳ) ),     ȳ = the batch's mean of y

    (sg: no gradient through it; f_sg: f with its weights held). f learns from the first term; the second pushes
    everything that feeds h^what_t (the what LSTM, its z, the encoder, α) to make f's guess the uninformed one,
    the word frequencies ȳ — towards the mean, not away from the truth: to make a guess wrong on purpose h^what
    would have to know the truth, and a reversed gradient trains exactly that in.

    ``nats`` = BCE(ȳ, y) − BCE(f(h^what_t), y), per step: how much f reads of the layout (0: nothing)."""

    def __init__(self, cfg, hidden: int = 64) -> None:
        super().__init__()
        told = torch.ones(cfg.vocab_size, dtype=torch.bool)
        told[0] = False                                                        # <pad>
        told[cfg.content_first: cfg.content_last + 1] = False                  # what the what path may know
        self.register_buffer("told", told, persistent=False)
        self.weight = cfg.what_adversary
        self.f = nn.Sequential(nn.Linear(cfg.dec_size - cfg.dec_size // 2, hidden), nn.Tanh(),
                               nn.Linear(hidden, int(told.sum())))

    def layout(self, captions: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, prior)``: which of the other words each caption ``(M, L)`` holds, ``(M, V')`` in {0, 1}, and the
        uninformed guess's cross-entropy BCE(ȳ, y) summed over the words, ``(M,)``: the most there is to read."""
        y = torch.zeros(captions.shape[0], self.told.numel(), device=captions.device)
        y = y.scatter(1, captions, 1.0)[:, self.told]                           # (M, V') the other words held
        y_bar = y.mean(0, keepdim=True).expand_as(y)                            # (M, V') uninformed
        return y, F.binary_cross_entropy(y_bar.clamp(1e-6, 1 - 1e-6), y, reduction="none").sum(-1)

    def forward(self, h_what: Tensor, captions: Tensor) -> tuple[Tensor, Tensor]:
        """``(aux (M,), nats ())`` for h^what of every step ``(M, T, H)`` and the captions ``(M, L)``."""
        y, prior = self.layout(captions)                                        # (M, V'), (M,)
        bce = lambda logits, target: F.binary_cross_entropy_with_logits(      # noqa: E731 summed over words
            logits.float(), target[:, None].expand(-1, logits.shape[1], -1), reduction="none").sum(-1)
        own = bce(self.f(h_what.detach()), y)                                   # (M, T) f learns
        held = {k: v.detach() for k, v in self.f.named_parameters()}
        y_bar = y.mean(0, keepdim=True).expand_as(y)                            # (M, V') uninformed
        confusion = bce(torch.func.functional_call(self.f, held, (h_what,)), y_bar)   # (M, T) h^what learns
        nats = (prior[:, None] - own).mean().detach()
        return self.weight * (own + confusion).sum(1), nats


class CaptionDraw(nn.Module):
    """alignDRAW and its variants: a language model, a conditioning rule, and the DRAW core.

    Every variant runs the same :class:`Draw` step; they differ only in the
    ``context`` that turns the caption into s_t.
    """

    def __init__(self, cfg: CaptionDrawConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.draw = Draw(cfg)
        self.language = (LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size)
                         if cfg.variant in ("align", "noalign") else None)
        query = cfg.dec_size // 2 if cfg.what_where else cfg.dec_size            # what_where: the where units ask
        self.align = Alignment(2 * cfg.lang_size, query, cfg.align_size) if cfg.variant == "align" else None
        # blind_where: the one embedding the where path reads in place of every content word
        self.content_token = nn.Parameter(torch.zeros(cfg.embed_size)) if cfg.blind_where else None
        # where_values="states": s^where_t = Σ_j α_tj P h^lang_j, the states projected to the words' size
        self.where_proj = (nn.Linear(2 * cfg.lang_size, cfg.embed_size, bias=False)
                           if cfg.what_where and cfg.where_values == "states" else None)
        # skipthought with an in-model encoder: a BiLSTM that is never trained here (its weights are
        # set once by text.pretrain_sentence_encoder and travel in the checkpoint)
        self.frozen_language = (LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size).requires_grad_(False)
                                if self.internal_encoder else None)
        self.adversary = WhatAdversary(cfg) if cfg.what_adversary else None    # training only

    @property
    def internal_encoder(self) -> bool:
        """True when the skipthought sentence vector is computed inside the model."""
        return self.cfg.variant == "skipthought" and self.cfg.sentence_encoder == "autoencoder"

    def train(self, mode: bool = True) -> "CaptionDraw":
        super().train(mode)
        if self.frozen_language is not None:
            self.frozen_language.eval()                                        # frozen: always inference mode
        return self

    def context(self, captions: Optional[Tensor], lengths: Optional[Tensor],
                sentence: Optional[Tensor] = None) -> Optional[Context]:
        """The callable h^dec_{t−1} -> (s_t, α_t) for a batch of captions ``(M, L)``."""
        variant = self.cfg.variant
        if variant == "draw":
            return None
        if variant == "skipthought":
            if sentence is None and self.frozen_language is not None and captions is not None:
                with torch.no_grad():
                    sentence = sentence_vector(*self.frozen_language(captions, lengths))  # (M, 2m), frozen
            if sentence is None:
                raise ValueError("the skipthought variant needs sentence embeddings (M, sentence_size)")
            return lambda h_dec: (sentence, None)
        if captions is None or lengths is None:
            raise ValueError(f"the {variant} variant needs captions (M, L) and their lengths (M,)")
        words = self.language.embed(captions) if variant == "align" else None  # E y_j (M, L, embed_size)
        seen = blind = words                                                   # what the BiLSTM and s^where read
        if self.cfg.what_where:
            content = (captions >= self.cfg.content_first) & (captions <= self.cfg.content_last)  # (M, L)
            if self.cfg.blind_where:                                           # content words -> one token:
                blind = torch.where(content[..., None], self.content_token.to(words.dtype), words)  # keys know slots
                seen = blind if self.cfg.blind_where_keys else words           # the keys blind too, or sighted
        h_lang, mask = self.language(captions, lengths, embedded=seen)        # (M, L, 2m), (M, L)
        if variant == "noalign":
            s = sentence_vector(h_lang, mask)                                  # (M, 2m), fixed over t
            return lambda h_dec: (s, None)
        keys = self.align.keys(h_lang)                                         # U h^lang, once per caption
        values = {"states": lambda: h_lang,                                    # what α averages into s_t
                  "words": lambda: words,                                     # E y_j (M, L, embed_size)
                  "both": lambda: torch.cat([h_lang, words], -1)}[self.cfg.align_values]()
        self.align.check_mask(mask)                                            # once, not at each step
        if self.cfg.what_where:
            where = self.cfg.dec_size // 2
            where_values = blind if self.where_proj is None else self.where_proj(h_lang)  # (M, L, embed_size)

            if not self.cfg.what_reset:
                def context(h_dec):
                    s, alpha = self.align(h_dec[:, :where], keys, where_values, mask, checked=True)  # blind: no digit
                    w = alpha * content                                        # α_j [y_j content]  (M, L)
                    share = w.sum(-1, keepdim=True)                            # m_t = Σ_j α_j [y_j content]  (M, 1)
                    if self.cfg.what_normalise:                                # / m_t
                        w = w / share.clamp_min(torch.finfo(w.dtype).tiny)
                    s_what = torch.bmm(w[:, None, :], words).squeeze(1)      # Σ_j w_j E y_j  (M, embed_size)
                    extra = [share] if self.cfg.what_share else []             # what_share: m_t beside it
                    return torch.cat([s, s_what, *extra], -1), alpha           # (M, 2·embed_size [+ 1])
                return context
            return self._restarting_context(where, keys, where_values, mask, content, words)
        return lambda h_dec: self.align(h_dec, keys, values, mask, checked=True)  # (s_t, α_t)

    def _restarting_context(self, where: int, keys: Tensor, where_values: Tensor, mask: Tensor, content: Tensor,
                            words: Tensor) -> Context:
        """``what_reset``: s_t = [s^where_t ; E y_{k_t} ; (m_t with what_share ;) r_t] with k_t the content word α_t weighs most and
        r_t = [k_t ≠ k_{t−1}] the what LSTM's restart (0 at the first step); E y_{k_t} passes gradients to α
        straight through, as the α-weighted mean of the content words' embeddings. The context remembers k_{t−1}:
        build a new one for each pass over the T steps (as ``forward`` and ``generate`` do)."""
        M = content.shape[0]
        order = (content.cumsum(-1) * content).long()                         # (M, L): 1, 2, ... on content words
        n = max(int(order.max()), 1)
        rows = torch.arange(M, device=content.device)
        where_of = torch.stack([(order == j).int().argmax(-1) for j in range(1, n + 1)], -1)  # (M, n): the token
        # index of each caption's j-th content word (0 where a caption has fewer: α never weighs it most)
        last: list[Optional[Tensor]] = [None]

        def context(h_dec):
            s, alpha = self.align(h_dec[:, :where], keys, where_values, mask, checked=True)
            w = alpha * content                                                # α_j [y_j content]  (M, L)
            share = w.sum(-1, keepdim=True)                                    # m_t  (M, 1)
            mass = torch.zeros(M, n + 1, device=alpha.device, dtype=alpha.dtype)
            mass.scatter_add_(1, order, w)                                     # (M, n+1): α on each content word
            k = mass[:, 1:].argmax(-1)                                         # (M,) 0-based: which content word
            s_what = words[rows, where_of[rows, k]]                            # (M, embed_size)  E y_{k_t}
            # straight through: the value is E y_{k_t}, the gradient that of the α-weighted average over the
            # content words, Σ_j α_j c_j E y_j / Σ_j α_j c_j — without it α gets no signal from the what path
            soft = torch.bmm(w[:, None, :], words).squeeze(1) / share.clamp_min(1e-6)
            s_what = s_what + soft - soft.detach()
            restart = (torch.zeros_like(k, dtype=s.dtype) if last[0] is None else (k != last[0]).to(s.dtype))
            last[0] = k
            extra = [share] if self.cfg.what_share else []                     # what_share: m_t beside it
            return torch.cat([s, s_what, *extra, restart[:, None]], -1), alpha
        return context

    def forward(self, images: Tensor, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                sentence: Optional[Tensor] = None, keep_canvases: bool = False,
                noise: Optional[Tensor] = None) -> DrawOutput:
        """One sample of the bound of ``images`` given their captions (α per step in ``.alpha``; in training,
        ``what_adversary``'s term in ``.aux``)."""
        adversary = self.adversary is not None and self.training
        out = self.draw(images, self.context(captions, lengths, sentence), keep_canvases, noise, keep_what=adversary)
        if adversary:
            out.aux, out.adversary_nats = self.adversary(out.h_what, captions)
        if self.training and self.cfg.where_kl != 1:                          # (β − 1) Σ_t KL^where_t, (M,)
            extra = (self.cfg.where_kl - 1) * out.latents.kl(dims=slice(0, z_where(self.cfg))).sum(1)
            out.aux = extra if out.aux is None else out.aux + extra
        return out

    @torch.no_grad()
    def generate(self, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                 sentence: Optional[Tensor] = None, M: Optional[int] = None,
                 temperature: float | tuple[float, float] = 1.0, keep_what: bool = False) -> Generated:
        """Draw one image per caption from the prior p(z_t | z_<t, y) (``M`` images for ``draw``), σ scaled by
        ``temperature`` (``what_where``: or by a pair (τ^where, τ^what)); ``keep_what`` (``what_where``): h^what_t of
        every step in ``.h_what``."""
        if M is None:
            given = [v for v in (captions, sentence) if v is not None]
            if not given and self.cfg.variant == "draw":
                raise ValueError("nothing says how many images to draw: the draw variant takes no caption, give M")
            if not given:
                raise ValueError("nothing to generate from: give captions (M, L) with their lengths (M,)"
                                 + (", or sentence embeddings (M, sentence_size)"
                                    if self.cfg.variant == "skipthought" else ""))
            M = len(given[0])
        if keep_what and not self.cfg.what_where:
            raise ValueError("keep_what keeps the what LSTM's states: this model has no what/where split")
        return self.draw.generate(M, self.context(captions, lengths, sentence), temperature, keep_what)

    @torch.no_grad()
    def iwae(self, images: Tensor, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
             sentence: Optional[Tensor] = None, K: int = 50) -> Tensor:
        """−L_K in nats per image ``(M,)`` given the captions."""
        rep = lambda v: None if v is None else v.repeat(K, *([1] * (v.dim() - 1)))  # noqa: E731
        return self.draw.iwae(images, K, lambda k: self.context(rep(captions), rep(lengths), rep(sentence)))


def __getattr__(name: str):
    # ``minidraw.draw.build`` still works: it lives in minidraw.configs, which imports this module
    if name == "build":
        from .configs import build
        return build
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
