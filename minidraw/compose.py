"""Ours, beside the paper: alignDRAW that draws compositions it never saw.

Two changes to the paper's alignDRAW (:mod:`minidraw.aligndraw`), and two training terms:

* **Word-valued alignment.** The same weights α^t — still scored against the BiLSTM's states, which know
  each word's context — average the word embeddings E y_j instead of the states::

      s_t = Σ_j α_j^t E y_j                                         (M, embed_size)

  so s_t carries only which words the step reads, not a summary of the whole caption.
* **What and where** (``what_where``). The generator is two LSTMs in one state h^gen = [h^where ; h^what]:

      h^where_t = LSTM_where(h^where_{t−1}, [z^where_t ; s_t])          s_t = Σ_j α_j^t E y_j
      h^what_t  = LSTM_what(h^what_{t−1},  [z^what_t ; s^what_t])       s^what_t = Σ_j α_j^t [y_j content] E y_j

  *Where* asks the alignment and places the write window; *what* writes the patch and reads only the
  content words (the digits), so a digit it has drawn in one slot it can draw in any. Each half of z_t has
  its own prior, from its own LSTM.
* **Training only** (:class:`CompositionObjective`, never part of the model or its saved configuration):
  an adversary that keeps the caption's layout words out of h^what (``what_adversary``, λ), and the KL of
  z^where weighed β (``where_kl``) in the objective NLL + β KL^where + KL^what. The bound that is logged,
  evaluated and reported is always the true one.

The compositions chapter of the book derives each of these and measures what it does to held-out compositions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .aligndraw import CaptionDraw, CaptionDrawConfig
from .attention import WriteAttention, filterbanks, window_from_params, write
from .draw import Context, Draw
from .outputs import Generated, Objective


@dataclass(repr=False)
class ComposeDrawConfig(CaptionDrawConfig):
    """alignDRAW with word-valued alignment and, with ``what_where``, the what/where generator.
    ``content_first`` .. ``content_last``: the word ids that name what is drawn (MNIST's digits)."""

    what_where: bool = True
    content_first: int = 0
    content_last: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant != "align":
            raise ValueError(f"word-valued alignment needs variant='align', got {self.variant!r}")
        self._require(0, "content_first", "content_last")
        if self.what_where:
            if not 1 <= self.content_first <= self.content_last < self.vocab_size:
                raise ValueError("what_where needs the content words' ids: 1 <= content_first <= content_last "
                                 f"< vocab_size ({self.vocab_size}), got {self.content_first}..{self.content_last}")
            if self.dec_size < 2 or self.z_size < 2:
                raise ValueError("what_where splits dec_size and z_size in two: give at least 2 of each")

    @property
    def cond_size(self) -> int:
        """Size of s_t: E y_j's, or [s_t ; s^what_t] with ``what_where``."""
        return 2 * self.embed_size if self.what_where else self.embed_size


class WhatWhereDecoder(nn.Module):
    """The generator as two LSTMs in one state ``[h^where ; h^what]``; behaves as one ``nn.LSTMCell`` on
    ``[z_t ; s_t ; s^what_t]``, so the DRAW core runs it unchanged."""

    def __init__(self, cfg: ComposeDrawConfig) -> None:
        super().__init__()
        self.z_where, self.h_where, self.e = cfg.z_size // 2, cfg.dec_size // 2, cfg.embed_size
        self.where = nn.LSTMCell(self.z_where + self.e, self.h_where)
        self.what = nn.LSTMCell(cfg.z_size - self.z_where + self.e, cfg.dec_size - self.h_where)
        self.z_size = cfg.z_size

    def forward(self, inp: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        z, e, n = inp[:, : self.z_size], self.e, self.z_size                   # z_t (M, z_size)
        s, s_what = inp[:, n: n + e], inp[:, n + e: n + 2 * e]                  # s_t, s^what_t (M, e)
        hw, cw = self.where(torch.cat([z[:, : self.z_where], s], -1),
                            (state[0][:, : self.h_where], state[1][:, : self.h_where]))
        hc, cc = self.what(torch.cat([z[:, self.z_where:], s_what], -1),
                           (state[0][:, self.h_where:], state[1][:, self.h_where:]))
        return torch.cat([hw, hc], -1), torch.cat([cw, cc], -1)


class WhatWherePrior(nn.Module):
    """p(z^where_t | h^where_{t−1}) and p(z^what_t | h^what_{t−1}): each half of z from its own LSTM;
    returns ``[μ ; log σ]`` like the single ``nn.Linear`` prior."""

    def __init__(self, cfg: ComposeDrawConfig) -> None:
        super().__init__()
        self.z_where, self.h_where = cfg.z_size // 2, cfg.dec_size // 2
        self.where = nn.Linear(self.h_where, 2 * self.z_where)
        self.what = nn.Linear(cfg.dec_size - self.h_where, 2 * (cfg.z_size - self.z_where))

    def forward(self, h: Tensor) -> Tensor:
        mw, lw = self.where(h[:, : self.h_where]).chunk(2, -1)
        mc, lc = self.what(h[:, self.h_where:]).chunk(2, -1)
        return torch.cat([mw, mc, lw, lc], -1)


class WhatWhereWrite(WriteAttention):
    """The write window from h^where, the patch w_t from h^what."""

    def __init__(self, cfg: ComposeDrawConfig) -> None:
        super().__init__(cfg.dec_size, cfg.A, cfg.B, cfg.C, cfg.write_N)
        self.h_where = cfg.dec_size // 2
        self.window = nn.Linear(self.h_where, 5)                   # (g̃_X, g̃_Y, log σ², log δ̃, log γ)
        self.patch = nn.Linear(cfg.dec_size - self.h_where, cfg.C * cfg.write_N ** 2)

    def forward(self, h: Tensor):
        w = window_from_params(self.window(h[:, : self.h_where]), self.A, self.B, self.N)
        F_X, F_Y = filterbanks(w, self.N, self.A, self.B)                      # (M, N, A), (M, N, B)
        patch = self.patch(h[:, self.h_where:]).view(-1, self.C, self.N, self.N)   # (M, C, N, N)
        return write(patch, F_X, F_Y, w.gamma), w                              # (M, C, B, A)


class WhatWhereDraw(Draw):
    """The DRAW core with the what/where generator, prior and write. The plain ones are built first and then
    replaced, so that a seed gives the initial weights it gave when this was a switch of the core."""

    def __init__(self, cfg: ComposeDrawConfig) -> None:
        super().__init__(cfg)
        self.prior = WhatWherePrior(cfg) if cfg.learned_prior else None
        self.decoder = WhatWhereDecoder(cfg)
        self.write = WhatWhereWrite(cfg)


class ComposeDraw(CaptionDraw):
    """alignDRAW with word-valued alignment and, with ``what_where``, the what/where generator."""

    cfg: ComposeDrawConfig

    @staticmethod
    def core(cfg: ComposeDrawConfig) -> Draw:
        return WhatWhereDraw(cfg) if cfg.what_where else Draw(cfg)

    @property
    def query_size(self) -> int:
        return self.cfg.dec_size // 2 if self.cfg.what_where else self.cfg.dec_size   # the where units ask

    @property
    def where_size(self) -> int:
        """How many units of h^gen are h^where (the first ones)."""
        return self.cfg.dec_size // 2

    def context(self, captions: Optional[Tensor], lengths: Optional[Tensor],
                sentence: Optional[Tensor] = None) -> Context:
        if captions is None or lengths is None:
            raise ValueError("alignDRAW needs captions (M, L) and their lengths (M,)")
        words = self.language.embed(captions)                                  # E y_j  (M, L, embed_size)
        h_lang, mask = self.language(captions, lengths, embedded=words)        # (M, L, 2m), (M, L)
        keys = self.align.keys(h_lang)                                         # U h^lang, once per caption
        self.align.check_mask(mask)                                            # once, not at each step
        if not self.cfg.what_where:
            return lambda h_gen: self.align(h_gen, keys, words, mask, checked=True)   # s_t = Σ_j α_j E y_j
        content = ((captions >= self.cfg.content_first) & (captions <= self.cfg.content_last)).to(words.dtype)
        where = self.where_size

        def context(h_gen: Tensor) -> tuple[Tensor, Tensor]:
            s, alpha = self.align(h_gen[:, :where], keys, words, mask, checked=True)   # h^where asks
            w = alpha * content                                                # α_j [y_j content]  (M, L)
            s_what = torch.bmm(w[:, None, :], words).squeeze(1)                # Σ_j α_j [y_j content] E y_j
            return torch.cat([s, s_what], -1), alpha                           # (M, 2·embed_size), (M, L)
        return context

    @torch.no_grad()
    def generate(self, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                 sentence: Optional[Tensor] = None, M: Optional[int] = None,
                 temperature: float | tuple[float, float] = 1.0, keep_states: bool = False,
                 noise: Optional[Tensor] = None) -> Generated:
        """As :meth:`CaptionDraw.generate`; with ``what_where``, ``temperature`` may be a pair (τ^where, τ^what)
        that scales z^where and z^what apart."""
        if isinstance(temperature, (tuple, list)):
            if not (self.cfg.what_where and len(temperature) == 2):
                raise ValueError("a pair of temperatures (z^where, z^what) needs a what/where generator; "
                                 f"give one number, got {temperature!r}")
            zw = self.cfg.z_size // 2
            p = next(self.parameters())
            temperature = torch.tensor([float(temperature[0])] * zw + [float(temperature[1])] * (self.cfg.z_size - zw),
                                       device=p.device, dtype=p.dtype)          # (z_size,)
        return super().generate(captions, lengths, sentence, M, temperature, keep_states, noise)


# ---- training only ----------------------------------------------------------------------------------------
class WhatAdversary(nn.Module):
    """An adversary f that reads h^what_t and guesses which of the caption's *other* words y ∈ {0, 1}^V it holds
    (every word but padding and the content words: the layout), and a term for the what path that makes the
    guess worthless. With BCE the binary cross-entropy summed over those words,

        aux = λ Σ_t ( BCE(f(sg h^what_t), y)  +  BCE(f_sg(h^what_t), ȳ) ),     ȳ = the batch's mean of y

    (sg: no gradient through it; f_sg: f with its weights held). f learns from the first term; the second pushes
    everything that feeds h^what_t (the what LSTM, its z, the encoder, α) to make f's guess the uninformed one,
    the word frequencies ȳ — towards the mean, not away from the truth: to make a guess wrong on purpose h^what
    would have to know the truth, and a reversed gradient trains exactly that in.

    ``nats`` = BCE(ȳ, y) − BCE(f(h^what_t), y), per step: how much f reads of the layout (0: nothing)."""

    def __init__(self, cfg: ComposeDrawConfig, weight: float, hidden: int = 64, in_size: Optional[int] = None) -> None:
        super().__init__()
        told = torch.ones(cfg.vocab_size, dtype=torch.bool)
        told[0] = False                                                        # <pad>
        told[cfg.content_first: cfg.content_last + 1] = False                  # what the what path may know
        self.register_buffer("told", told, persistent=False)
        self.weight = weight
        in_size = cfg.dec_size - cfg.dec_size // 2 if in_size is None else in_size    # h^what_t's size
        self.f = nn.Sequential(nn.Linear(in_size, hidden), nn.Tanh(),
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


@dataclass
class TrainingOutput:
    """What :class:`CompositionObjective` hands the trainer: the true bound, and the training-only terms."""

    bound: Tensor                           # (M,) −L, nats: what is logged
    aux: Optional[Tensor] = None            # (M,) added to −L for the gradient, never part of it
    adversary_nats: Optional[Tensor] = None  # nats per step the adversary reads of the layout

    def metrics(self) -> dict[str, float]:
        e = self.adversary_nats
        return {} if e is None else {"adversary_nats": round(float(e), 5)}


class CompositionObjective(Objective):
    """The training objective of a :class:`ComposeDraw`: −L, plus λ's adversary term (``what_adversary``) and
    (β − 1) Σ_t KL^where_t (``where_kl``), so the objective is NLL + β KL^where + KL^what + the adversary's."""

    def __init__(self, model: ComposeDraw, what_adversary: float = 0.0, where_kl: float = 1.0) -> None:
        super().__init__(model)
        if not what_adversary >= 0:
            raise ValueError(f"what_adversary is a weight λ >= 0 (0: no adversary), got {what_adversary}")
        if not where_kl >= 0:
            raise ValueError(f"where_kl is a weight β >= 0 on z^where's KL term (1: the bound), got {where_kl}")
        if (what_adversary or where_kl != 1) and not model.cfg.what_where:
            raise ValueError("what_adversary and where_kl act on the what/where generator: they need "
                             "model.what_where=true")
        self.adversary = WhatAdversary(model.cfg, what_adversary) if what_adversary else None
        self.where_kl = where_kl

    def forward(self, images: Tensor, captions: Tensor, lengths: Tensor) -> TrainingOutput:
        adversary = self.adversary if self.active else None                    # terms_from: not yet, −L alone
        out = self.model(images, captions, lengths, keep_states=adversary is not None)
        result = TrainingOutput(out.bound)
        if adversary is not None:
            h_what = out.states[..., self.model.where_size:]                   # (M, T, H) h^what_t
            result.aux, result.adversary_nats = adversary(h_what, captions)
        if self.where_kl != 1 and self.active:                                 # (β − 1) Σ_t KL^where_t, (M,)
            extra = (self.where_kl - 1) * out.latents.kl(dims=slice(0, self.model.cfg.z_size // 2)).sum(1)
            result.aux = extra if result.aux is None else result.aux + extra
        return result
