"""Alignment: at every drawing step, which words of the caption to look at.

alignDRAW conditions each drawing step on the caption through a soft
*alignment* (Bahdanau et al., 2015). The caption has been read once by the
language model into ``h^lang_1 .. h^lang_L`` (each 2m numbers); at step t the
generator's previous state ``h^gen_{t−1}`` scores every word, a softmax over the
caption's real words turns the scores into weights, and the weighted average of
the word states is the step's *sentence representation* ``s_t``::

    e_j^t = vᵀ tanh(U h^lang_j + W h^gen_{t−1} + b)      (j = 1 .. L)
    α^t   = softmax_j(e^t)                              (over real words; padding gets e = −∞, α = 0)
    s_t   = Σ_j α_j^t h^lang_j                          (2m numbers)

``U h^lang_j`` does not depend on t, so :meth:`Alignment.keys` computes it once per
caption, outside the drawing loop; each step then costs one ``W h^gen_{t−1}``, an
addition, a tanh and a dot product with ``v`` per word.

Shapes: M captions, L word positions (padded), ``lang_size`` = 2m,
``dec_size`` = the generator's state, ``align_size`` = the alignment dimension
(512 in the paper's configurations).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Alignment(nn.Module):
    """Bahdanau alignment of a generator state against the caption's words.

    ``keys(h_lang)`` precomputes ``U h^lang_j``; ``forward(h_dec, keys, h_lang, mask)``
    returns ``s_t (M, lang_size)`` and ``α^t (M, L)``.
    """

    def __init__(self, lang_size: int, dec_size: int, align_size: int) -> None:
        super().__init__()
        self.lang_size, self.dec_size, self.align_size = lang_size, dec_size, align_size
        self.U = nn.Linear(lang_size, align_size, bias=False)  # U h^lang_j
        self.W = nn.Linear(dec_size, align_size)               # W h^gen_{t−1} + b (b is W's bias)
        self.v = nn.Linear(align_size, 1, bias=False)          # vᵀ (·)

    def keys(self, h_lang: Tensor) -> Tensor:
        """``U h^lang_j`` for every word: ``h_lang (M, L, lang_size)`` -> ``(M, L, align_size)``. Once per caption."""
        return self.U(h_lang)                                            # (M, L, align_size)

    @staticmethod
    def check_mask(mask: Tensor) -> None:
        """``ValueError`` when a caption's mask ``(M, L)`` is all padding (its α would be NaN)."""
        if not torch.all(mask.any(-1)):
            empty = torch.nonzero(~mask.any(-1)).flatten().tolist()
            raise ValueError(f"caption(s) {empty[:8]} have no real words (their mask is all padding); every "
                             "caption needs at least one word: drop empty captions or fix their lengths")

    def forward(self, h_dec: Tensor, keys: Tensor, h_lang: Tensor, mask: Tensor,
                checked: bool = False) -> tuple[Tensor, Tensor]:
        """One step: ``h_dec (M, dec_size)`` = h^gen_{t−1}, ``keys`` from :meth:`keys`,
        ``h_lang (M, L, D)`` the vectors α averages (the paper: the word states, D = lang_size; the
        word-valued alignment of :mod:`minidraw.compose` passes the word embeddings),
        ``mask (M, L)`` True on real words
        -> ``(s_t (M, D), α^t (M, L))``.
        ``checked=True``: the caller ran :meth:`check_mask` on ``mask`` once for all steps (the check
        reads a value back from the device)."""
        if not checked:
            self.check_mask(mask)                                        # a row of padding only: α would be NaN
        query = self.W(h_dec)[:, None, :]                                # (M, 1, align_size)  W h^gen_{t−1} + b
        e = self.v(torch.tanh(keys + query)).squeeze(-1)                 # (M, L)  e_j = vᵀ tanh(U h_j + W h + b)
        e = e.masked_fill(~mask, float("-inf"))                          # (M, L)  padding: e_j = −∞
        alpha = torch.softmax(e, dim=-1)                                 # (M, L)  α_j = exp e_j / Σ_k exp e_k
        s = torch.bmm(alpha[:, None, :], h_lang).squeeze(1)              # (M, lang_size)  s_t = Σ_j α_j h^lang_j
        return s, alpha

    def extra_repr(self) -> str:
        return f"lang_size={self.lang_size}, dec_size={self.dec_size}, align_size={self.align_size}"


def most_attended(alpha: Tensor, positions: Tensor, steps: slice = slice(None)) -> Tensor:
    """Of the candidate word positions ``positions (M, k)``, the one each caption attends to most
    over ``steps``: the argmax over candidates of Σ_{t ∈ steps} α^t_j, as ``(M,)`` indices into
    ``positions``' columns. ``alpha (M, T, L)`` is :attr:`DrawOutput.alpha` or :attr:`Generated.alpha`.

    E.g. the two digit words of "the digit 3 is on the left of the digit 7 ." are at positions
    (2, 10); does the first half of the steps look at the 3 and the second half at the 7?
    """
    mass = alpha[:, steps, :].sum(1)                                     # (M, L)  Σ_t α^t_j
    return mass.gather(1, positions).argmax(1)                           # (M,)
