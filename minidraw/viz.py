"""Pictures for the book: image grids with captions, and the package's own source.

The book never pastes package code into a chapter; it shows it with
:func:`show_source`, so what the reader sees is what runs.
"""
from __future__ import annotations

import inspect
import io
import os
import re
import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
import numpy as np
import torch

from .rundir import read_metrics


def show_source(obj) -> None:
    """Display the source of a function, class or module, syntax-highlighted in a notebook.

    It displays rather than returns, so several calls in one cell show every listing.
    """
    from IPython.display import Code, display
    display(Code(inspect.getsource(obj), language="python"))


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W)`` (grey) or ``(H, W, 3)`` for imshow."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return np.clip(a, 0, 1)


def figure(figsize: tuple[float, float], pyplot: bool = True, **kwargs) -> Figure:
    """A new figure: pyplot's (shown by ``plt.show()`` and by a notebook's inline backend) or, with
    ``pyplot=False``, a bare :class:`~matplotlib.figure.Figure` that no backend shows by itself — what a widget's
    callback needs, since it may run on another thread while the inline backend shows and closes pyplot's figures."""
    return plt.figure(figsize=figsize, **kwargs) if pyplot else Figure(figsize=figsize, **kwargs)


def png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (e.g. for an ``ipywidgets.Image``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def image_grid(images: torch.Tensor | np.ndarray, captions: Sequence[str] | None = None,
               ncols: int = 4, size: float = 2.2, wrap: int = 28, fontsize: int = 8,
               title: str | None = None, pyplot: bool = True) -> plt.Figure:
    """Show ``images (M, C, B, A)`` in a grid, each with its caption wrapped underneath. ``pyplot=False``: a
    :class:`~matplotlib.figure.Figure` outside pyplot's list of open figures (see :func:`figure`)."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    extra = 0.0 if captions is None else 0.14 * (1 + max(len(textwrap.wrap(c, wrap)) for c in captions))
    fig = figure((size * ncols, (size + extra) * nrows + 0.4 * bool(title)), pyplot, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(to_numpy_image(images[k]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if captions is not None:
            ax.set_title("\n".join(textwrap.wrap(captions[k], wrap)), fontsize=fontsize)
    if title:
        fig.suptitle(title)
    return fig


def window_box(g_x: float, g_y: float, delta: float, N: int) -> tuple[float, float, float, float]:
    """``(x0, y0, width, height)`` of an attention grid in imshow's 0-based pixel coordinates.

    The filter centres span g ± (N/2 − 0.5)·δ in the 1-based coordinates of
    :mod:`minidraw.attention`; imshow puts pixel a = 1 at 0, hence the −1.
    """
    half = (N / 2 - 0.5) * delta
    return g_x - half - 1, g_y - half - 1, 2 * half, 2 * half


def _add_box(ax, box, color="red"):
    import matplotlib.patches as patches
    return ax.add_patch(patches.Rectangle(box[:2], box[2], box[3], fill=False, color=color, lw=1.5))


def drawing_strip(canvases: torch.Tensor, window=None, N: int | None = None, steps: Sequence[int] | None = None,
                  size: float = 1.6, title: str | None = None) -> plt.Figure:
    """One drawing as a row of canvases ``(T, C, B, A)`` at ``steps``, each with its write window.

    ``window`` is a :class:`~minidraw.attention.Window` with ``(T,)`` fields (one example).
    """
    T = canvases.shape[0]
    steps = list(steps) if steps is not None else sorted({int(round(s)) for s in np.linspace(0, T - 1, min(T, 8))})
    fig, axes = plt.subplots(1, len(steps), figsize=(size * len(steps), size + 0.3), squeeze=False,
                             layout="constrained")
    for ax, t in zip(axes[0], steps):
        ax.imshow(to_numpy_image(canvases[t]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if window is not None:
            _add_box(ax, window_box(float(window.g_x[t]), float(window.g_y[t]), float(window.delta[t]), N))
        ax.set_title(f"t = {t + 1}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _word_layout(words: Sequence[str], chars: int) -> list[tuple[int, int]]:
    """``(line, first character)`` of each word, words set greedily into lines of ``chars`` characters."""
    place, line, col = [], 0, 0
    for w in words:
        if col and col + 1 + len(w) > chars:
            line, col = line + 1, 0
        col += 1 if col else 0                                             # the space before a word
        place.append((line, col))
        col += len(w)
    return place


# matplotlib's player buttons are font-awesome 4 icons from a CDN; these glyphs need no font and no network
_BUTTONS = {"fa fa-play fa-flip-horizontal": "◀", "fa fa-fast-backward": "|◀◀", "fa fa-step-backward": "|◀",
            "fa fa-fast-forward": "▶▶|", "fa fa-step-forward": "▶|", "fa fa-pause": "❚❚", "fa fa-play": "▶",
            "fa fa-minus": "−", "fa fa-plus": "+"}


def animation_html(anim) -> str:
    """``anim.to_jshtml()`` that loads nothing from the internet: matplotlib's player links font-awesome from a CDN
    for its buttons' icons; here the link goes and each icon becomes a plain character."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", anim.to_jshtml())
    for icon, glyph in _BUTTONS.items():
        html = html.replace(f'<i class="{icon}"></i>', glyph)
    if "fa fa-" in html or "https://" in html:
        raise RuntimeError("matplotlib's animation player changed: it still needs font-awesome or the network")
    return html


def animate_drawing(canvases: torch.Tensor, window=None, N: int | None = None, title: str | None = None,
                    interval: int = 150, size: float = 2.5, words: Sequence[str] | None = None,
                    alpha: torch.Tensor | np.ndarray | None = None, cmap: str = "Oranges", pyplot: bool = True):
    """A matplotlib animation of one drawing ``(T, C, B, A)``, the write window boxed in red.

    With ``words`` (the caption's tokens) the caption is written under the canvas,
    and with ``alpha (T, L)`` (alignment weights, L ≥ len(words), padding columns
    ignored) each word's background is shaded by α_t,j / max_j α_t,j at step t:
    the words the model is drawing from light up.

    In a notebook show it with ``IPython.display.HTML(animation_html(anim))`` (it works in the
    rendered book, no kernel needed, and offline); ``anim.save("drawing.gif")`` writes a GIF.
    """
    from matplotlib import animation
    T = canvases.shape[0]
    words = list(words) if words else []
    if alpha is not None:
        if not words:
            raise ValueError("alignment weights need the caption's words to shade")
        alpha = alpha.detach().cpu().numpy() if isinstance(alpha, torch.Tensor) else np.asarray(alpha)
        if alpha.shape[0] != T or alpha.shape[1] < len(words):
            raise ValueError(f"alpha must have shape (T, L) with T = {T}, L >= {len(words)} words; "
                             f"got {alpha.shape}")
        alpha = alpha[:, :len(words)]                                      # (T, n) real words only
    fontsize, margin = 8, 0.03
    chars = max(8, int((1 - 2 * margin) * size * 72 / (0.6 * fontsize)))  # monospace: 0.6 em per character
    place = _word_layout(words, chars)
    lines = place[-1][0] + 1 if place else 0
    strip = 0.05 + 0.22 * lines                                           # inches of caption under the canvas
    height = size + 0.3 + (strip if words else 0.0)
    fig = figure((size, height), pyplot)
    ax = fig.add_axes((0, (height - size - 0.3) / height, 1, size / height))
    ax.axis("off")
    im = ax.imshow(to_numpy_image(canvases[0]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    box = _add_box(ax, (0, 0, 0, 0)) if window is not None else None
    label = ax.set_title("", fontsize=9)
    texts = []
    if words:
        wax = fig.add_axes((margin, 0.02 / height, 1 - 2 * margin, (strip - 0.04) / height))
        wax.set_xlim(0, chars)
        wax.set_ylim(lines, 0)
        wax.axis("off")
        for w, (line, col) in zip(words, place):
            texts.append(wax.text(col + len(w) / 2, line + 0.5, w, ha="center", va="center", fontsize=fontsize,
                                  family="monospace", bbox=dict(boxstyle="round,pad=0.15", edgecolor="none",
                                                                facecolor="white")))
    colours = plt.get_cmap(cmap)

    def frame(t):
        im.set_data(to_numpy_image(canvases[t]))
        if box is not None:
            x0, y0, w, h = window_box(float(window.g_x[t]), float(window.g_y[t]), float(window.delta[t]), N)
            box.set_bounds(x0, y0, w, h)
        if alpha is not None:
            weight = alpha[t] / max(float(alpha[t].max()), 1e-12)          # (n,) in [0, 1], 1 = most attended
            for text, a in zip(texts, weight):
                text.get_bbox_patch().set_facecolor(colours(0.75 * float(a)))  # ≤ 0.75: the word stays legible
        label.set_text(f"{title + ': ' if title else ''}t = {t + 1}/{T}")
        return (im, label, *texts) if box is None else (im, box, label, *texts)

    anim = animation.FuncAnimation(fig, frame, frames=T, interval=interval, blit=False)
    if pyplot:
        plt.close(fig)
    return anim


# ---- alignment: one convention for the whole book ----------------------------------------------
ALIGNMENT_CMAP = "viridis"


def alignment_map(ax, alpha: torch.Tensor | np.ndarray, words: Sequence[str], title: str | None = None,
                  mark_top: bool = True, colorbar: bool = False, vmax: float | None = None):
    """α over words and steps: **words on the y-axis (top to bottom, in reading order), steps
    t = 1..T on the x-axis**, colour map :data:`ALIGNMENT_CMAP` from 0. ``alpha`` is ``(T, L)`` for
    one caption (padding columns beyond ``len(words)`` are dropped). With ``mark_top`` a white dot
    marks each step's most-attended word; ``vmax`` fixes the top of the colour scale (e.g. 1, to
    compare maps). Returns the image."""
    a = alpha.detach().cpu().numpy() if isinstance(alpha, torch.Tensor) else np.asarray(alpha)
    a = a[:, :len(words)].T                                                    # (L, T)
    im = ax.imshow(a, aspect="auto", cmap=ALIGNMENT_CMAP, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_yticks(range(len(words)), words, fontsize=8)
    T = a.shape[1]
    ticks = range(T) if T <= 20 else range(0, T, 4)
    ax.set_xticks(list(ticks), [str(t + 1) for t in ticks], fontsize=8)
    ax.set_xlabel("step $t$")
    if mark_top:
        ax.plot(np.arange(T), a.argmax(0), "o", color="white", ms=3)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="$\\alpha^t_j$", fraction=0.04)
    return im


def canvases_with_alignment(canvases: torch.Tensor, alpha: torch.Tensor | None, words: Sequence[str] | None,
                            title: str | None = None):
    """The canvas after each step (top row) over the alignment map of :func:`alignment_map`, the
    steps lined up: ``canvases (T, C, H, W)`` in [0, 1] and ``alpha (T, L)`` of one drawing."""
    T = canvases.shape[0]
    fig = plt.figure(figsize=(max(8, 0.75 * T), 4.4 if alpha is not None else 1.4), layout="constrained")
    grid = fig.add_gridspec(2 if alpha is not None else 1, T, height_ratios=[1, 2] if alpha is not None else [1])
    for t in range(T):
        ax = fig.add_subplot(grid[0, t])
        ax.imshow(to_numpy_image(canvases[t]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"t={t + 1}", fontsize=7)
        ax.axis("off")
    if alpha is not None:
        alignment_map(fig.add_subplot(grid[1, :]), alpha, words, "alignment α: words × steps (dot: the most attended)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---- training curves ---------------------------------------------------------------------------
def plot_metrics(out: str | os.PathLike) -> Figure:
    """The training curve from ``metrics.jsonl``, saved as ``metrics.png``: the bound per step (and
    the test bound); for the sharpener, each player's loss and D's accuracy on real and fake."""
    rows = read_metrics(out)
    gan = any("d_loss" in r for r in rows)
    fig = Figure(figsize=(10 if gan else 6, 3.5), layout="constrained")
    axes = fig.subplots(1, 2 if gan else 1, squeeze=False)[0]
    ax = axes[0]
    for name, label in ((("d_loss", "L_D"), ("g_loss", "L_G")) if gan else (("bound", "training batch"),)):
        ax.plot([r["step"] for r in rows if name in r], [r[name] for r in rows if name in r], alpha=0.5, label=label)
    tests = [r for r in rows if "test_bound" in r]
    if tests:
        ax.errorbar([r["step"] for r in tests], [r["test_bound"] for r in tests],
                    [r["test_se"] for r in tests], marker="o", label="test")
    ax.set_xlabel("step"), ax.set_ylabel("loss (nats per image)" if gan else "−L (nats per image)"), ax.legend()
    if gan:
        for name, label in (("d_acc_real", "D right on real"), ("d_acc_fake", "D right on sharpened")):
            axes[1].plot([r["step"] for r in rows if name in r], [r[name] for r in rows if name in r], alpha=0.5,
                         label=label)
        axes[1].axhline(0.5, color="grey", lw=0.8, ls="--")
        axes[1].set_xlabel("step"), axes[1].set_ylabel("accuracy"), axes[1].legend()
    fig.savefig(Path(out) / "metrics.png", dpi=100)
    return fig
