"""Captioned shapes, the world: what a scene holds and where its objects stand.

A scene is one or two objects on a plain background. An object is a size
(small, large), a colour (6) and a shape (circle, square, triangle). One object
sits at a *position* (four corners or the middle); two objects stand in a
*relation* (on the left of, on the right of, above, below) — side by side or
stacked, never overlapping. :class:`Scene` holds ``M`` scenes as attribute
arrays; :func:`layout` places their objects. Drawing a scene is
:mod:`minidraw.data.shapes_render`, its caption :mod:`minidraw.data.shapes_grammar`,
the data set :mod:`minidraw.data.shapes`.

**Geometry.** Coordinates are fractions of the canvas side, so a :class:`Scene`
draws at any resolution. Every object fits a square box of half-side ``r``
(:data:`RADIUS`, per size); boxes keep :data:`MARGIN` from the border and
:data:`GAP` from each other, with up to :data:`JITTER` of random shift.

Shape comments use the book's symbols: ``M`` scenes.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
SIZES = ("small", "large")
BACKGROUNDS = ("black", "gray", "white")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "middle")  # one object
RELATIONS = ("on the left of", "on the right of", "above", "below")           # two objects

RADIUS = np.array([0.12, 0.20])  # half-side of an object's box per size, fraction of the canvas
MARGIN = 0.05                    # box to canvas border
GAP = 0.04                       # box to box, two-object scenes
JITTER = 0.10                    # largest random shift of a centre
# Two large objects side by side need 2*MARGIN + GAP + 4*0.20 = 0.94 <= 1 of the canvas.

# x and y "side" of each position: -1 low (left/top), +1 high (right/bottom), 0 middle.
_POSITION_SIDE = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1], [0, 0]])  # (5, 2) x, y


@dataclass(frozen=True)
class Scene:
    """Explicit descriptions of ``M`` scenes, as attribute arrays (numpy).

    Attributes are indices into :data:`SHAPES`, :data:`COLOURS`, ... ; slot 0 is the
    object the caption names first. A missing second object (one-object scenes)
    holds -1 in every slot-1 field. ``x``, ``y`` are box centres as fractions of the
    canvas side (``y`` down), so one scene renders at any size.
    """

    shape: np.ndarray       # (M, 2) int64
    colour: np.ndarray      # (M, 2) int64
    size: np.ndarray        # (M, 2) int64, index into SIZES (not the canvas size)
    x: np.ndarray           # (M, 2) float64 in (0, 1)
    y: np.ndarray           # (M, 2) float64 in (0, 1)
    background: np.ndarray  # (M,) int64
    n_objects: np.ndarray   # (M,) int64, 1 or 2
    relation: np.ndarray    # (M,) int64 index into RELATIONS, -1 for one object
    position: np.ndarray    # (M,) int64 index into POSITIONS, -1 for two objects

    def __len__(self) -> int:
        return len(self.background)

    def __getitem__(self, rows) -> "Scene":
        """The scenes ``rows`` (an index, slice or array) as a smaller :class:`Scene`."""
        rows = np.array([rows]) if isinstance(rows, (int, np.integer)) else rows
        return Scene(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def meta(self, size: int = 32) -> dict[str, torch.Tensor]:
        """The scene as ``CaptionBatch.meta``: centres ``x``, ``y`` and half-sides ``radius``
        in pixels of a ``size``-pixel canvas (pixel ``j`` spans ``[j, j + 1)``), -1 where absent."""
        present = self.shape >= 0
        px = lambda v: torch.from_numpy(np.where(present, v * size, -1.0).astype(np.float32))  # noqa: E731
        radius = RADIUS[np.maximum(self.size, 0)]
        meta = {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k), dtype=np.int64))
                for k in ("shape", "colour", "size", "background", "n_objects", "relation", "position")}
        meta.update(x=px(self.x), y=px(self.y), radius=px(radius))
        return meta


def layout(size: np.ndarray, n_objects: np.ndarray, relation: np.ndarray, position: np.ndarray,
           jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box centres ``x, y (M, 2)`` (fractions) from sizes, placement and ``jitter (M, 2, 2)`` in [0, 1].

    ``jitter[b, k]`` shifts object ``k`` along the (relation's, other) axis, or
    along (x, y) for a lone object; 0.5 everywhere is the canonical layout. One
    object: each axis is pushed to its side
    (``MARGIN + r`` from the border, moved inwards by up to ``JITTER``) or centred.
    Two objects: along the relation's axis the first-named object is on the low
    side (left of / above) or the high side; the jitter there shrinks as the boxes
    grow so that they always keep ``GAP`` apart. Across, both are centred.
    """
    r = RADIUS[np.maximum(size, 0)]                                   # (M, 2)
    u = jitter                                                        # (M, 2, 2)
    # one object at a position
    side = _POSITION_SIDE[np.maximum(position, 0)]                    # (M, 2) x, y
    near = MARGIN + r[:, :1] + u[:, 0] * JITTER                       # (M, 2) distance from the border
    one = np.where(side < 0, near, np.where(side > 0, 1 - near, 0.5 + (u[:, 0] - 0.5) * JITTER))
    # two objects in a relation
    slack = 1 - 2 * MARGIN - GAP - 2 * r.sum(1, keepdims=True)        # (M, 1) room left for jitter
    shift = u[..., 0] * np.minimum(JITTER, slack / 2)                 # (M, 2)
    low, high = MARGIN + r + shift, 1 - MARGIN - r - shift            # (M, 2) each object on either side
    first_low = np.isin(relation, (0, 2))[:, None]                    # left of / above
    main = np.where(first_low, np.stack([low[:, 0], high[:, 1]], 1), np.stack([high[:, 0], low[:, 1]], 1))
    cross = 0.5 + (u[..., 1] - 0.5) * JITTER                          # (M, 2)
    vertical = (relation >= 2)[:, None]                               # above / below
    two_x, two_y = np.where(vertical, cross, main), np.where(vertical, main, cross)
    single = (n_objects == 1)[:, None]
    x = np.where(single, np.stack([one[:, 0], np.full(len(r), -1.0)], 1), two_x)
    y = np.where(single, np.stack([one[:, 1], np.full(len(r), -1.0)], 1), two_y)
    return x, y
