"""The paper's qualitative experiments as functions: flipping words, novel compositions, the most
attended words, and the prior's temperature.

**Flipping** (the paper's school bus that turns yellow, red, green, blue): one caption, one word
(or phrase) replaced by each of several alternatives, every variant drawn with the *same noise* —
the same ε for every z_t, because each variant is drawn from the same seed with the same batch
shape — so the pictures differ only where the word's effect does. :func:`flip` returns the images
and the caption checker's verdict on each (:func:`minidraw.scoring.caption_fidelity`).

**Novel compositions** (the paper's "a stop sign is flying in blue skies"): captions whose
(shape, colour) or (slot, digit) pairs never occurred in training — the data sets' ``heldout``
split — drawn and checked beside captions of seen compositions (``test``):
:func:`novel_compositions`.

**Most attended words**: for each drawing step the words with the largest α^t_j
(:func:`most_attended_words`, the per-step cousin of :func:`minidraw.align.most_attended`), and
the average α each word of the vocabulary receives over many captions (:func:`attention_per_word`).

**What the what path knows of the layout** (``what_where`` models): a fresh copy of the adversary of
``what_adversary`` (:class:`minidraw.compose.WhatAdversary`) trained on the what LSTM's states h^what_t while
the model draws, asked which of the caption's words other than the content words (the layout: "left",
"top", "corner", ...) the caption holds; :func:`layout_probe` gives the nats per step it reads beyond the
words' frequencies, on captions it was not trained on. 0: the what path cannot tell the layout.

**Which noise breaks a drawing** (``what_where`` models): :func:`noise_sources` draws the same captions with the
where path's latents z^where and the what path's z^what at separate temperatures, 0 (the prior's mean) or 1, and
checks them: which of the two paths' noise turns a right drawing wrong.

**Temperature**: the same caption drawn with the prior's σ scaled by 0, 0.5, 1
(:func:`temperatures`): at 0 every z_t is the prior's mean, so what changes is what the noise adds.

Shapes: ``V`` variants (words), ``n`` drawings each, images ``(C, B, A)`` in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .compose import WhatAdversary
from .data import mnist_captions, shapes, shapes_grammar
from .measures import generate
from .scoring import caption_fidelity
from .runtime import evaluating
from .sample import encode_captions, max_words_for, sample
from .text import Vocabulary, tokenize


# ---- drawing with the same noise -------------------------------------------------------------
@torch.no_grad()
def draw_same_noise(model, vocab: Vocabulary, captions: Sequence[str], n: int = 1, seed: int = 0,
                    temperature: float = 1.0) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``n`` drawings of each caption, every caption with the same noise: ``images (V, n, C, B, A)``
    and ``alpha (V, n, T, L)`` (None for models without alignment; L: the longest caption).

    Each caption is drawn by :func:`minidraw.sample.sample` from ``seed`` in a batch of ``n``, so
    the ε of every z_t — drawn in the same order with the same shapes — is the same for every
    caption; row ``i`` of one caption and row ``i`` of another share their noise.
    """
    images, alphas = [], []
    for caption in captions:
        out = sample(model, vocab, caption, n, seed, temperature)
        images.append(out.images.float().cpu())
        alphas.append(None if getattr(out, "alpha", None) is None else out.alpha.float().cpu())
    if any(a is None for a in alphas):
        return torch.stack(images), None
    L = max(a.shape[-1] for a in alphas)
    return torch.stack(images), torch.stack([torch.nn.functional.pad(a, (0, L - a.shape[-1])) for a in alphas])


def check_words(vocab: Vocabulary, phrases: Sequence[str]) -> None:
    """One ``ValueError`` naming every word of ``phrases`` outside ``vocab``, and the vocabulary."""
    unknown = sorted({w for p in phrases for w in tokenize(p) if w not in vocab or w == vocab.words[0]})
    if unknown:
        raise ValueError(f"unknown word(s) {', '.join(repr(w) for w in unknown)}: not in this model's "
                         f"vocabulary ({' '.join(vocab.content_words)})")


def flipped_captions(caption: str, position_or_word: int | str, alternatives: Sequence[str]) -> list[str]:
    """``caption`` with one word — at token ``position_or_word`` (0-based), or the first occurrence
    of that word or phrase — replaced by each alternative (a word or a phrase)."""
    tokens = tokenize(caption)
    if isinstance(position_or_word, (int, np.integer)):
        if not 0 <= position_or_word < len(tokens):
            raise ValueError(f"position {position_or_word} is outside the caption's {len(tokens)} words")
        start, old = int(position_or_word), [tokens[int(position_or_word)]]
    else:
        old = tokenize(position_or_word)
        starts = [i for i in range(len(tokens) - len(old) + 1) if tokens[i:i + len(old)] == old]
        if not old or not starts:
            raise ValueError(f"{position_or_word!r} does not occur in the caption {caption!r}")
        start = starts[0]
    return [" ".join(tokens[:start] + tokenize(alt) + tokens[start + len(old):]) for alt in alternatives]


def _dataset_for(vocab: Vocabulary, split: str = "test"):
    """The captioned data set whose vocabulary is ``vocab``: its checker judges the drawings."""
    if vocab == shapes_grammar.VOCAB:
        return shapes.ShapesCaptions(split)
    if vocab == mnist_captions.VOCAB:
        return mnist_captions.MnistCaptions(split)
    raise ValueError("no caption checker for this vocabulary (only MNIST with captions and captioned shapes)")


@dataclass
class Flip:
    """What :func:`flip` drew: ``texts (V,)``, ``words (V,)``, ``images (V, n, C, B, A)``, the
    checker's ``correct (V, n)`` and ``alpha (V, n, T, L)`` (None without alignment)."""

    texts: list[str]
    words: list[str]
    images: torch.Tensor
    correct: Optional[np.ndarray]
    alpha: Optional[torch.Tensor] = None

    def rates(self) -> dict[str, float]:
        """Percent of drawings the checker passes, per alternative word."""
        if self.correct is None:
            raise ValueError("these drawings were not checked (check=False)")
        return {w: 100.0 * float(c.mean()) for w, c in zip(self.words, self.correct)}

    @property
    def rate(self) -> float:
        """Percent of all drawings the checker passes."""
        return 100.0 * float(self.correct.mean())


def flip(model, vocab: Vocabulary, caption: str, position_or_word: int | str, alternatives: Sequence[str],
         seed: int = 0, n: int = 1, data=None, classifiers=None, check: bool = True,
         temperature: float = 1.0) -> Flip:
    """Draw ``caption`` with one word replaced by each of ``alternatives``, all with the same noise.

    ``position_or_word``: the token index (0-based) or the word/phrase to replace (its first
    occurrence; e.g. ``"on the left of"`` for a relation). ``data``: the data set whose checker
    judges the drawings (default: the test split of the data set of ``vocab``); ``classifiers``:
    the checker's cache folder. An unknown word among the alternatives is one ``ValueError``
    naming it and the vocabulary. Flipping a word to itself draws the identical picture.
    """
    check_words(vocab, list(alternatives))
    texts = flipped_captions(caption, position_or_word, alternatives)
    encode_captions(vocab, texts, max_words_for(vocab))                      # too long, empty: say so now
    images, alpha = draw_same_noise(model, vocab, texts, n, seed, temperature)
    correct = None
    if check:
        data = _dataset_for(vocab) if data is None else data
        flat = images.flatten(0, 1)                                           # (V·n, C, B, A)
        verdict = caption_fidelity(flat, [t for t in texts for _ in range(n)], data, classifiers)
        correct = verdict.correct.reshape(len(texts), n)
    return Flip(texts, list(alternatives), images, correct, alpha)


# ---- novel compositions ----------------------------------------------------------------------
@dataclass
class Drawn:
    """Drawings of a split's captions: ``images (n, C, B, A)``, ``texts (n,)``, ``correct (n,)``."""

    texts: list[str]
    images: torch.Tensor
    correct: np.ndarray

    @property
    def rate(self) -> float:
        return 100.0 * float(self.correct.mean())


def novel_compositions(model, data, n: int = 200, seed: int = 0, classifiers=None) -> dict[str, Drawn]:
    """One drawing from each of the first ``n`` captions of seen (``test``) and of held-out
    compositions (``heldout``), each checked: ``{"seen": Drawn, "held-out": Drawn}``.

    ``data``: ``"mnist"`` or ``"shapes"``, or a pair ``(seen, heldout)`` of data sets.
    """
    if isinstance(data, str):
        make = {"mnist": mnist_captions.MnistCaptions, "shapes": shapes.ShapesCaptions}.get(data)
        if make is None:
            raise ValueError(f"data must be 'mnist' or 'shapes' (or a pair of data sets), got {data!r}")
        seen = make("test")
        data = (seen, make("heldout", pools=seen.pools) if data == "mnist" else make("heldout"))
    out = {}
    for name, dataset in zip(("seen", "held-out"), data):
        images, _ = generate(model, dataset, n, seed=seed)
        texts = dataset.texts(np.arange(len(images)))
        out[name] = Drawn(texts, images, caption_fidelity(images, texts, dataset, classifiers).correct)
    return out


# ---- what the what path knows ----------------------------------------------------------------
def layout_probe(model, data, n: int = 2000, steps: int = 1500, seed: int = 0, generate: bool = True,
                 lr: float = 3e-3, part: str = "what") -> dict[str, float]:
    """Train a fresh :class:`minidraw.compose.WhatAdversary` on h^what_t of ``n`` captions of ``data`` (the model
    drawing from the prior with ``generate``, else its posterior pass over the data's images) and score it on
    ``n // 4`` others: ``{"train": nats, "test": nats}`` per step that it reads of the layout words beyond their
    frequencies, and ``"all"``: the most there is to read, the words' cross-entropy under their frequencies
    (the model is not changed; its random state is restored). ``part``: the states probed, ``"what"`` (h^what_t)
    or ``"where"`` (h^where_t, which reads the layout words: how much there is to hide)."""
    if part not in ("what", "where"):
        raise ValueError(f"part must be 'what' or 'where', got {part!r}")
    if not getattr(model.cfg, "what_where", False):
        raise ValueError("layout_probe reads the what or the where LSTM of a what/where model (what_where=True)")
    where = model.where_size                                         # h^gen = [h^where ; h^what]
    pick = slice(where, None) if part == "what" else slice(0, where)

    def states(index):
        b = data.batch(index)
        with evaluating(model, seed) as device, torch.no_grad():
            ids, lengths = b.captions.to(device), b.lengths.to(device)
            if generate:
                return model.generate(ids, lengths, keep_states=True).states[..., pick], ids
            return model(b.images.to(device), ids, lengths, keep_states=True).states[..., pick], ids

    (h, ids), (h_test, ids_test) = states(np.arange(n)), states(np.arange(n, n + n // 4))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = WhatAdversary(model.cfg, 1.0, in_size=h.shape[-1]).to(h.device)
        opt = torch.optim.Adam(probe.parameters(), lr=lr)
        for _ in range(steps):                                       # h is fixed: only the guess f learns
            i = torch.randint(0, n, (256,))
            aux, _ = probe(h[i], ids[i])
            opt.zero_grad()
            aux.mean().backward()
            opt.step()
        with torch.no_grad():
            return {"train": float(probe(h, ids)[1]), "test": float(probe(h_test, ids_test)[1]),
                    "all": float(probe.layout(ids_test)[1].mean())}


# ---- which noise breaks a drawing ---------------------------------------------------------------
def noise_sources(model, data, templates: Sequence[int] = (2, 3), n: int = 400, seed: int = 0,
                  pairs: Sequence[tuple[float, float]] = ((1, 1), (0, 0), (0, 1), (1, 0)),
                  classifiers=None) -> dict[tuple[float, float], float]:
    """Caption fidelity (%) of the first ``n`` captions of ``data`` whose template is one of ``templates`` (MNIST
    with captions: 2, 3 are "top of", "bottom of"), drawn with z^where and z^what at each pair of temperatures
    (τ^where, τ^what) of ``pairs`` and the same seed: at (0, 1) only the what path's latents are sampled, at (1, 0)
    only the where path's (``what_where`` models)."""
    if not getattr(model.cfg, "what_where", False):
        raise ValueError("noise_sources samples z^where and z^what apart: it needs a what/where model (what_where=True)")
    scan = np.arange(100 * n)                                                  # the data's own order, filtered
    index = scan[np.isin(data.scenes(scan)["template"], templates)][:n]
    if len(index) < n:
        raise ValueError(f"{type(data).__name__} has fewer than {n} captions of templates {list(templates)}")
    b, texts = data.batch(index), data.texts(index)
    out = {}
    for pair in pairs:
        with evaluating(model, seed) as device:
            images = model.generate(b.captions.to(device), b.lengths.to(device), temperature=tuple(pair)).images
        out[tuple(pair)] = 100.0 * float(caption_fidelity(images.float().cpu(), texts, data, classifiers).correct.mean())
    return out


# ---- alignment -------------------------------------------------------------------------------
def most_attended_words(alpha: torch.Tensor | np.ndarray, words: Sequence[str] | str,
                        k: int = 3) -> list[list[tuple[str, float]]]:
    """For each step t, the ``k`` words with the largest α^t_j, largest first, with their α:
    ``alpha (T, L)`` of one caption (padding columns beyond ``len(words)`` are ignored)."""
    words = tokenize(words) if isinstance(words, str) else list(words)
    a = alpha.detach().cpu().double().numpy() if isinstance(alpha, torch.Tensor) else np.asarray(alpha, float)
    if a.ndim != 2 or a.shape[1] < len(words):
        raise ValueError(f"alpha must be (T, L) with L >= {len(words)} words, got {a.shape}")
    a = a[:, :len(words)]
    order = np.argsort(-a, axis=1, kind="stable")[:, :k]                       # (T, k)
    return [[(words[j], float(a[t, j])) for j in row] for t, row in enumerate(order)]


def attention_per_word(alpha: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor,
                       vocab: Vocabulary) -> dict[str, float]:
    """The average α a word receives per step where it occurs, over many captions: which words
    does the model ever look at? ``alpha (M, T, L)``, ``captions (M, L)``, ``lengths (M,)``.
    Words are ranked largest first; a uniform alignment gives each word 1/(caption length)."""
    M, T, L = alpha.shape
    ids = captions[:, :L]
    mask = torch.arange(L)[None, :] < lengths[:, None]                         # (M, L)
    mass = alpha.float().mean(1)                                               # (M, L) mean over steps
    total = torch.zeros(len(vocab)).index_add_(0, ids[mask], mass[mask])
    count = torch.zeros(len(vocab)).index_add_(0, ids[mask], torch.ones(int(mask.sum())))
    seen = count > 0
    avg = {vocab.words[i]: float(total[i] / count[i]) for i in torch.nonzero(seen)[:, 0].tolist()}
    return dict(sorted(avg.items(), key=lambda kv: -kv[1]))


# ---- temperature -----------------------------------------------------------------------------
def temperatures(model, vocab: Vocabulary, caption: str, temps: Sequence[float] = (0.0, 0.5, 1.0),
                 n: int = 8, seed: int = 0) -> dict[float, torch.Tensor]:
    """``n`` drawings of ``caption`` at each prior temperature (σ scaled by it), the same seed for
    each: ``{temperature: images (n, C, B, A)}``. At 0 all ``n`` are the same picture."""
    return {float(t): sample(model, vocab, caption, n, seed, float(t)).images.float().cpu() for t in temps}


# ---- the caption editor (needs a kernel) -------------------------------------------------------------------
def caption_editor(models: dict, caption: str, n: int = 16, seed: int = 0):
    """An ipywidgets caption editor: type a caption, press Enter or *draw*; ``n`` samples and the first one drawn
    step by step, its words lit by α. ``models``: ``{name: (model, vocabulary)}``; a caption goes to the first
    model whose vocabulary holds all its words, and one no model knows is answered with the words they know.

    Every picture is a bare :class:`~matplotlib.figure.Figure` rendered to PNG or HTML (``pyplot=False``), never
    one of pyplot's open figures: in JupyterLab a widget's callback can run on another thread (kernel comms over
    subshells) while the inline backend shows and closes pyplot's figures, which left stray copies in the log
    console and, once, no grid in the widget."""
    import html

    import ipywidgets as widgets

    from .viz import animate_drawing, animation_html, image_grid, png

    box = widgets.Text(value=caption, description="caption", continuous_update=False,
                       layout=widgets.Layout(width="80%"))
    button = widgets.Button(description="draw")
    grid, steps, message = widgets.Image(format="png"), widgets.HTML(), widgets.HTML()
    known = widgets.HTML("<small>" + "<br>".join(f"<b>{name} words:</b> {html.escape(' '.join(v.content_words))}"
                                                 for name, (_, v) in models.items()) + "</small>")

    def draw(_=None) -> None:
        text = box.value
        found = [mv for mv in models.values() if all(w in mv[1] for w in tokenize(text))]
        model, vocab = found[0] if found else next(iter(models.values()))
        try:
            out = sample(model, vocab, text, n, seed)          # unknown words: a ValueError naming them
        except ValueError as e:
            message.value = f"<pre>{html.escape(str(e))}</pre>"
            return
        message.value = ""
        grid.value = png(image_grid(out.images.cpu(), ncols=8, size=1.0, title=text, pyplot=False))
        if out.alpha is not None:                              # the first drawing, its words lit by α
            anim = animate_drawing(out.canvases[:, 0].cpu(), out.write.pick(0), model.cfg.write_N, title="sample 1",
                                   words=tokenize(text), alpha=out.alpha[0].cpu(), size=3.0, pyplot=False)
            steps.value = animation_html(anim)

    button.on_click(draw)
    box.observe(draw, names="value")                           # Enter (or leaving the box) draws too
    editor = widgets.VBox([known, widgets.HBox([box, button]), message, grid, steps])
    editor.draw = draw                                         # for a first drawing, or a test
    return editor
