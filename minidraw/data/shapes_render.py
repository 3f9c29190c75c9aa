"""Captioned shapes, the drawing: a :class:`~minidraw.data.shapes_scene.Scene` as an RGB image.

Shapes are signed-distance functions in pixels (negative inside); a pixel's
coverage is ``clip(0.5 - sdf, 0, 1)``, about one pixel of anti-aliasing. Objects
are composited over the background in caption order, in the flat colours
:data:`COLOUR_RGB` and :data:`BACKGROUND_RGB`. Drawing is vectorised over the
batch (loops run over the two object slots and three shapes only).

Shape comments use the book's symbols: ``M`` scenes (``m`` in a block), images
``B × A`` pixels (height × width; here ``A = B = size``).
"""
from __future__ import annotations

import numpy as np
import torch

from .shapes_scene import RADIUS, Scene

COLOUR_RGB = np.array([[0.90, 0.10, 0.10],   # red
                       [0.10, 0.75, 0.15],   # green
                       [0.15, 0.30, 0.95],   # blue
                       [0.95, 0.85, 0.10],   # yellow
                       [0.85, 0.15, 0.85],   # magenta
                       [0.10, 0.80, 0.85]],  # cyan
                      dtype=np.float32)      # (6, 3): every pair, and each vs. a background, >= 0.5 apart
BACKGROUND_RGB = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]], dtype=np.float32)  # (3, 3)
SQUARE = 0.85                    # a square's half-side relative to r (a full box looks too big)


# Each shape's coverage clip(0.5 - sdf, 0, 1) of the pixels at offsets dx (m, 1, A)
# and dy (m, B, 1) from its centre, for box half-sides r (m, 1, 1), all in pixels.
# The signed distances are built from per-row and per-column pieces, so each costs
# only a few passes over the (m, B, A) pixels.
def _clip(d: np.ndarray) -> np.ndarray:
    return np.clip(d, 0.0, 1.0, out=d)


def _circle(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    d = np.sqrt(dx * dx + dy * dy)                                    # (m, B, A) distance to the centre
    return _clip(np.subtract(0.5 + r, d, out=d))


def _square(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Half-side ``SQUARE * r``; sdf = max(|dx|, |dy|) - h, so coverage is the smaller of
    a column profile and a row profile."""
    h = 0.5 + SQUARE * r
    return np.minimum(np.clip(h - np.abs(dx), 0.0, 1.0), np.clip(h - np.abs(dy), 0.0, 1.0))


def _triangle(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Apex at the box's top centre, base along its bottom. sdf = the largest of the
    three edges' signed distances, max(dy - r, (2|dx| - dy - r) / sqrt 5): exact near the
    edges, which is where coverage is decided."""
    k = np.float32(1 / np.sqrt(5))
    d = (0.5 + (r - 2 * np.abs(dx)) * k) + dy * k                     # (m, B, A) slanted edges
    return np.minimum(_clip(d), np.clip(0.5 + r - dy, 0.0, 1.0), out=d)


_COVERAGE = (_circle, _square, _triangle)  # in SHAPES order


_BLOCK_PIXELS = 1 << 16  # scenes are drawn in blocks of this many pixels (64 at 32×32)


def render(scene: Scene, size: int = 32) -> torch.Tensor:
    """Draw ``scene`` on a ``size`` × ``size`` canvas: images ``(M, 3, B, A)`` float32 in [0, 1],
    ``A = B = size`` (the paper's width and height).

    Vectorised over blocks of scenes; blocks keep the temporaries small enough to
    stay in cache and be reused by the allocator (whole-batch temporaries cost more
    in page faults than in arithmetic).
    """
    n, pixels = len(scene), size * size
    image = np.empty((n, 3, pixels), dtype=np.float32)                # (M, 3, B*A)
    block = max(1, _BLOCK_PIXELS // pixels)
    for start in range(0, n, block):
        _draw(scene[start: start + block], size, image[start: start + block])
    return torch.from_numpy(image.reshape(n, 3, size, size))


def _draw(scene: Scene, size: int, out: np.ndarray) -> None:
    """Draw scenes into ``out (m, 3, B*A)``.

    Each slot's coverage ``a_k (m, B, A)`` is computed only for the scenes whose
    slot holds that shape. Compositing object 1 over object 0 over the background
    is linear in the three colours: ``image = bg (1-a0)(1-a1) + c0 a0 (1-a1) + c1 a1``,
    one small matrix product per scene.
    """
    n, pixels = len(scene), size * size
    grid = np.arange(size, dtype=np.float32) + 0.5                    # pixel centres, (A,) = (B,)
    cover = np.zeros((2, n, size, size), dtype=np.float32)            # (2, m, B, A) coverage per slot
    for k in range(2):
        for s, coverage in enumerate(_COVERAGE):
            rows = np.flatnonzero(scene.shape[:, k] == s)             # scenes with shape s in slot k
            if rows.size == 0:
                continue
            cx = (scene.x[rows, k] * size).astype(np.float32)[:, None, None]  # (m, 1, 1)
            cy = (scene.y[rows, k] * size).astype(np.float32)[:, None, None]
            r = (RADIUS[scene.size[rows, k]] * size).astype(np.float32)[:, None, None]
            cover[k, rows] = coverage(grid[None, None, :] - cx, grid[None, :, None] - cy, r)  # (m, B, A)
    a0, a1 = cover.reshape(2, n, pixels)                              # (m, B*A) each
    weight = np.empty((n, 3, pixels), dtype=np.float32)               # (m, 3 sources, B*A)
    np.subtract(1.0, a1, out=weight[:, 1])                            # 1 - a1
    np.multiply(weight[:, 1], 1.0 - a0, out=weight[:, 0])             # background
    weight[:, 1] *= a0                                                # object 0
    weight[:, 2] = a1                                                 # object 1
    colours = np.stack([BACKGROUND_RGB[scene.background],             # (m, 3 channels, 3 sources),
                        COLOUR_RGB[np.maximum(scene.colour[:, 0], 0)],  # contiguous: matmul uses BLAS
                        COLOUR_RGB[np.maximum(scene.colour[:, 1], 0)]], 2)
    np.matmul(colours, weight, out=out)                               # (m, 3 channels, B*A)

