"""alignDRAW, noalignDRAW and skipthoughtDRAW: the paper's caption-conditioned DRAW.

A language model reads the caption once; the DRAW core (:mod:`minidraw.draw`) draws it in T steps,
and at step t a *context* turns the caption into the vector s_t that the generator reads beside z_t::

    h^lang_j = [→h_j ; ←h_j]                                    the BiLSTM's state of word j   (M, L, 2m)
    align:       s_t = Σ_j α_j^t h^lang_j,  α^t = align(h^lang, h^gen_{t−1})                   (M, 2m)
    noalign:     s_t = s = (1/L) Σ_j h^lang_j                  the sentence vector, every step
    skipthought: s_t = a frozen, pretrained sentence embedding, every step
    h^gen_t = LSTM_gen(h^gen_{t−1}, [z_t ; s_t])

The paper calls the generator's state h^gen; the DRAW core names it h^dec. The canvas is A wide and B high
(the paper's A and B). The prior p(z_t | z_<t, y) is the core's learned one, conditioned on the caption
through h^gen_{t−1}. Our extension — word-valued alignment and a generator split into *what* and *where* —
is a subclass of this model in :mod:`minidraw.compose`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Optional

import torch
from torch import Tensor, nn

from .align import Alignment
from .draw import Context, Draw, DrawSizes
from .outputs import DrawOutput, Generated
from .text import LanguageModel, sentence_vector

VARIANTS = ("align", "noalign", "skipthought")
SENTENCE_ENCODERS = ("external", "autoencoder")


@dataclass(repr=False)
class CaptionDrawConfig(DrawSizes):
    """The paper's caption-conditioned DRAW. ``variant`` picks how the caption enters step t:

    * ``align`` (alignDRAW): s_t = Σ_j α_j^t h^lang_j, the alignment of the alignment chapter;
    * ``noalign`` (noalignDRAW): s_t = the sentence vector, the same at every step;
    * ``skipthought``: s_t = a frozen, pretrained sentence embedding, the same at every step:
      with ``sentence_encoder = "external"`` given with the caption as ``sentence``
      (e.g. :class:`minidraw.text.FrozenSentenceEncoder`, ``sentence_size`` numbers); with
      ``"autoencoder"`` computed inside the model by a frozen BiLSTM that
      :func:`minidraw.text.pretrain_sentence_encoder` trained on the captions alone before the
      drawing model starts (works offline; 2m numbers).

    The size of s_t, ``cond_size``, follows from these settings: it is a property, never stored.
    """

    DERIVED: ClassVar[tuple[str, ...]] = ("cond_size",)

    variant: str = "align"
    vocab_size: int = 23    # word ids, <pad> included (MNIST with captions: 22 words + <pad>)
    embed_size: int = 128
    lang_size: int = 128    # m, per direction: h^lang_j has 2m dims
    align_size: int = 512
    sentence_size: int = 384             # skipthought + external: size of the given embedding (all-MiniLM-L6-v2)
    sentence_encoder: str = "external"   # skipthought: "external" (given) or "autoencoder" (inside, frozen)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(1, "embed_size", "lang_size", "align_size", "sentence_size")
        self._require(0, "vocab_size")
        if self.variant not in VARIANTS:
            hint = "; an unconditional DRAW is DrawConfig" if self.variant == "draw" else ""
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}{hint}")
        if self.sentence_encoder not in SENTENCE_ENCODERS:
            raise ValueError(f"sentence_encoder must be one of {SENTENCE_ENCODERS}, got {self.sentence_encoder!r}")

    @property
    def cond_size(self) -> int:
        """Size of s_t: 2m for ``align`` and ``noalign`` (the BiLSTM's states); for ``skipthought``
        the embedding's, ``sentence_size`` given, or 2m from the frozen in-model BiLSTM."""
        if self.variant == "skipthought" and self.sentence_encoder == "external":
            return self.sentence_size
        return 2 * self.lang_size

    def __repr__(self) -> str:
        """The settings, with the derived ``cond_size`` where :class:`~minidraw.draw.DrawConfig` has its own."""
        items = [(f.name, getattr(self, f.name)) for f in fields(self)]
        items.insert([name for name, _ in items].index("z_size") + 1, ("cond_size", self.cond_size))
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in items) + ")"


class CaptionDraw(nn.Module):
    """alignDRAW and its variants: a language model, a conditioning rule, and the DRAW core.

    Every variant runs the same :class:`~minidraw.draw.Draw` step; they differ only in the
    ``context`` that turns the caption into s_t.
    """

    def __init__(self, cfg: CaptionDrawConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.draw = self.core(cfg)
        self.language = (LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size)
                         if cfg.variant in ("align", "noalign") else None)
        self.align = (Alignment(2 * cfg.lang_size, self.query_size, cfg.align_size)
                      if cfg.variant == "align" else None)
        # skipthought with an in-model encoder: a BiLSTM that is never trained here (its weights are
        # set once by text.pretrain_sentence_encoder and travel in the checkpoint)
        self.frozen_language = (LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size).requires_grad_(False)
                                if self.internal_encoder else None)

    @staticmethod
    def core(cfg: CaptionDrawConfig) -> Draw:
        """The DRAW core that draws; a subclass may give its own."""
        return Draw(cfg)

    @property
    def query_size(self) -> int:
        """The size of the generator state h^gen_{t−1} that the alignment scores the words against."""
        return self.cfg.dec_size

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
                sentence: Optional[Tensor] = None) -> Context:
        """The callable h^gen_{t−1} -> (s_t, α_t) for a batch of captions ``(M, L)``."""
        variant = self.cfg.variant
        if variant == "skipthought":
            if sentence is None and self.frozen_language is not None and captions is not None:
                with torch.no_grad():
                    sentence = sentence_vector(*self.frozen_language(captions, lengths))  # (M, 2m), frozen
            if sentence is None:
                raise ValueError("the skipthought variant needs sentence embeddings (M, sentence_size)")
            return lambda h_gen: (sentence, None)
        if captions is None or lengths is None:
            raise ValueError(f"the {variant} variant needs captions (M, L) and their lengths (M,)")
        h_lang, mask = self.language(captions, lengths)                      # (M, L, 2m), (M, L)
        if variant == "noalign":
            s = sentence_vector(h_lang, mask)                                  # (M, 2m), fixed over t
            return lambda h_gen: (s, None)
        keys = self.align.keys(h_lang)                                         # U h^lang, once per caption
        self.align.check_mask(mask)                                            # once, not at each step
        return lambda h_gen: self.align(h_gen, keys, h_lang, mask, checked=True)  # s_t = Σ_j α_j h^lang_j, α_t

    def forward(self, images: Tensor, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                sentence: Optional[Tensor] = None, keep_canvases: bool = False,
                noise: Optional[Tensor] = None, keep_states: bool = False) -> DrawOutput:
        """One sample of the bound of ``images (M, C, B, A)`` given their captions (α per step in ``.alpha``)."""
        return self.draw(images, self.context(captions, lengths, sentence), keep_canvases, noise, keep_states)

    def _count(self, captions: Optional[Tensor], sentence: Optional[Tensor], M: Optional[int]) -> int:
        if M is not None:
            return M
        given = [v for v in (captions, sentence) if v is not None]
        if not given:
            raise ValueError("nothing to generate from: give captions (M, L) with their lengths (M,)"
                             + (", or sentence embeddings (M, sentence_size)"
                                if self.cfg.variant == "skipthought" else ""))
        return len(given[0])

    @torch.no_grad()
    def generate(self, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                 sentence: Optional[Tensor] = None, M: Optional[int] = None,
                 temperature: float = 1.0, keep_states: bool = False, noise: Optional[Tensor] = None) -> Generated:
        """Draw one image per caption from the prior p(z_t | z_<t, y), σ scaled by ``temperature``;
        ``keep_states``: h^gen_t of every step in ``.states``; ``noise``: the ε of every z_t, ``(T, M, z_size)``."""
        M = self._count(captions, sentence, M)
        return self.draw.generate(M, self.context(captions, lengths, sentence), temperature, keep_states, noise)

    @torch.no_grad()
    def iwae(self, images: Tensor, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
             sentence: Optional[Tensor] = None, K: int = 50) -> Tensor:
        """−L_K in nats per image ``(M,)`` given the captions."""
        rep = lambda v: None if v is None else v.repeat(K, *([1] * (v.dim() - 1)))  # noqa: E731
        return self.draw.iwae(images, K, lambda k: self.context(rep(captions), rep(lengths), rep(sentence)))
