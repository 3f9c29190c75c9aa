"""Pictures for the book: image grids with captions, and the package's own source.

The book never pastes package code into a chapter; it shows it with
:func:`show_source`, so what the reader sees is what runs.
"""
from __future__ import annotations

import inspect
import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def show_source(obj) -> "object":
    """The source of a function, class or module, syntax-highlighted in a notebook."""
    from IPython.display import Code
    return Code(inspect.getsource(obj), language="python")


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W)`` (grey) or ``(H, W, 3)`` for imshow."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return np.clip(a, 0, 1)


def image_grid(images: torch.Tensor | np.ndarray, captions: Sequence[str] | None = None,
               ncols: int = 4, size: float = 2.2, wrap: int = 28, fontsize: int = 8,
               title: str | None = None) -> plt.Figure:
    """Show ``images (M, C, B, A)`` in a grid, each with its caption wrapped underneath."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    extra = 0.0 if captions is None else 0.14 * (1 + max(len(textwrap.wrap(c, wrap)) for c in captions))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + extra) * nrows + 0.4 * bool(title)),
                             squeeze=False, layout="constrained")
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
