"""Scoring captions against pictures and scenes: caption fidelity, scene agreement, BLEU-4.

**Caption fidelity** (ours): does a picture drawn from a caption show what the
caption says? The checkers of :mod:`minidraw.fidelity` read each named object at
its named place; :func:`caption_fidelity` picks the one that fits the data set.

**Scene agreement** (ours): do two captions describe the same scene? For the closed
grammars (MNIST with captions, captioned shapes) a caption parses into its scene's
*facts* — an object and its place, the background (:func:`facts_for`) — so two
wordings of one scene agree. :func:`agreement` scores, per caption, *exact* (the
facts are equal) and *slots* (the share of facts both share). MS-COCO has no
grammar: :func:`bleu4` scores it with corpus BLEU-4 (``sacrebleu``:
``pip install "minidraw[coco]"``).

**The captioner on real pictures**: :func:`accuracy` is the image-to-text
captioner's (:mod:`minidraw.captioner`) agreement with the true captions of real
test pictures — the ceiling of the cycle measure (:mod:`minidraw.cycle`), and the
captioner's learning curve in training (:func:`accuracy_evaluation`).
"""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import Tensor

from .data import mnist_captions, shapes, shapes_grammar
from .data.select import heldout_for
from .errors import UserError
from .fidelity import FidelityResult, digit_classifier, mnist_fidelity, shape_classifier, shapes_fidelity
from .runtime import evaluating

if TYPE_CHECKING:
    from .captioner import Captioner
    from .text import Vocabulary

Facts = Callable[[str], frozenset]   # a caption -> its scene's facts (ValueError outside the grammar)


# ---- a drawing against its caption --------------------------------------------------------------
def caption_fidelity(images: Tensor, texts: list[str], dataset, classifiers=None) -> FidelityResult:
    """Fidelity of ``images (M, C, B, A)`` to ``texts`` with the checker that fits ``dataset`` (MNIST
    captions or shapes); its classifier comes from the cache folder ``classifiers`` (default
    ~/.cache/minidraw/classifiers) or is trained there."""
    if isinstance(dataset, mnist_captions.MnistCaptions):
        return mnist_fidelity(images, texts, digit_classifier(dataset.pools, cache_dir=classifiers))
    if isinstance(dataset, shapes.ShapesCaptions):
        return shapes_fidelity(images, texts, shape_classifier(cache_dir=classifiers))
    raise ValueError(f"caption fidelity is defined for MNIST with captions and captioned shapes, "
                     f"not {type(dataset).__name__}")


# ---- a caption against a caption ----------------------------------------------------------------
def facts_for(vocab: Vocabulary) -> Optional[Facts]:
    """The ``scene_facts`` reader of the closed grammar that ``vocab`` belongs to (MNIST with captions,
    captioned shapes), or ``None`` (COCO: score with BLEU instead)."""
    for grammar in (mnist_captions, shapes_grammar):
        if vocab == grammar.VOCAB:
            return grammar.scene_facts
    return None


def agreement(predicted: list[str], truth: list[str], facts: Facts) -> tuple[Tensor, Tensor]:
    """Per caption: ``exact (M,)`` — the predicted caption describes the same scene as the true one
    (``facts`` of both equal; two wordings of one scene agree) — and ``slots (M,)``, the share of
    scene facts both share, ``|P ∩ T| / max(|P|, |T|)`` (a fact per digit or object and its place, and
    the background for shapes). A prediction outside the grammar scores 0 on both."""
    exact, slots = [], []
    for p, t in zip(predicted, truth):
        want = facts(t)                                                  # T
        try:
            got = facts(p)                                               # P
        except ValueError:                                               # UnknownWordError is a ValueError too
            exact.append(False)
            slots.append(0.0)
            continue
        exact.append(got == want)
        slots.append(len(got & want) / max(len(got), len(want)))         # |P ∩ T| / max(|P|, |T|)
    return torch.tensor(exact), torch.tensor(slots)


class MissingDependencyError(UserError, ImportError):
    """An optional package a measure needs is not installed; the message says what to install."""


def require_sacrebleu() -> ModuleType:
    """The ``sacrebleu`` module, or a :class:`MissingDependencyError` that says how to install it."""
    try:
        import sacrebleu
    except ImportError:
        raise MissingDependencyError('BLEU-4 (the cycle measure on MS-COCO) needs sacrebleu, which is not installed: '
                                     'pip install sacrebleu (or pip install "minidraw[coco]")') from None
    return sacrebleu


def bleu4(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU-4 (sacrebleu's, 0–100) of ``hypotheses``, one reference caption each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} captions but {len(references)} references")
    return float(require_sacrebleu().corpus_bleu(list(hypotheses), [list(references)]).score)


# ---- the captioner on real pictures -------------------------------------------------------------
@torch.no_grad()
def accuracy(model: Captioner, dataset, n: int, width: int = 1, batch_size: int = 250) -> dict[str, float]:
    """``{"exact", "slots"}`` in %, of ``model`` captioning the first ``n`` real images of ``dataset``
    (MNIST with captions or captioned shapes), scored by :func:`agreement`."""
    facts = facts_for(dataset.vocab)
    if facts is None:
        raise ValueError(f"scene agreement needs a closed grammar (MNIST with captions, captioned shapes), not "
                         f"{type(dataset).__name__}; score COCO with BLEU")
    exact, slots = [], []
    with evaluating(model, 0) as dev:
        for lo in range(0, n, batch_size):
            b = dataset.batch(range(lo, min(n, lo + batch_size)))
            got = model.caption(b.images.to(dev), dataset.vocab, width)
            e, s = agreement(got, b.texts(dataset.vocab), facts)
            exact.append(e)
            slots.append(s)
    return {"exact": 100 * torch.cat(exact).float().mean().item(), "slots": 100 * torch.cat(slots).mean().item()}


def accuracy_evaluation(test, n: int) -> Callable[[Captioner], dict[str, float]]:
    """``model -> {"exact_seen", "slots_seen", "exact_heldout", "slots_heldout"}`` on the first ``n`` real
    images of ``test`` and of its held-out compositions: the captioner's learning curve."""
    splits = {"seen": test, "heldout": heldout_for(test)}

    def evaluation(model: Captioner) -> dict[str, float]:
        row = {}
        for name, split in splits.items():
            if split is not None:
                row.update({f"{k}_{name}": v for k, v in accuracy(model, split, n).items()})
        return row
    return evaluation
