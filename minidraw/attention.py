"""DRAW's differentiable attention: reading and writing through Gaussian filterbanks.

The image is A × B pixels — A is the **width**, B the **height** (the DRAW
paper's notation) — and a batch of images has shape ``(M, C, B, A)``. An
attention *window* is an N × N grid of 2-D Gaussian filters
(Gregor et al., 2015), described by five numbers per example:

* the grid centre ``(g_X, g_Y)``, in pixels;
* the stride ``δ`` between neighbouring filters;
* the variance ``σ²`` of every filter (an isotropic Gaussian);
* an intensity ``γ`` that scales what is read (and divides what is written).

A linear layer of a hidden state emits ``(g̃_X, g̃_Y, log σ², log δ̃, log γ)``;
:func:`window_from_params` maps them to the window, scaled so that ``g̃ ∈ [-1, 1]``
covers the image and ``δ̃ = 1`` spreads the grid over all of it::

    g_X = (A+1)/2 (g̃_X + 1)      g_Y = (B+1)/2 (g̃_Y + 1)      δ = (max(A,B) − 1)/(N − 1) · δ̃

The filters' means form a grid symmetric about the centre, ``i = 1..N``::

    μ_X^i = g_X + (i − N/2 − 0.5) δ          μ_Y^j = g_Y + (j − N/2 − 0.5) δ

The 2-D filters are separable, so two matrices describe them all: ``F_X (N, A)``
and ``F_Y (N, B)``, with ``a = 1..A`` (``b = 1..B``) the 1-based pixel coordinates
(so ``g = (A+1)/2`` is the exact centre of the image)::

    F_X[i, a] = exp(−(a − μ_X^i)² / (2σ²)) / Z_X^i,     Z_X^i = Σ_a exp(−(a − μ_X^i)² / (2σ²))

and each row sums to one (``Z`` is clamped at a small ``eps`` so that a filter
that falls off the image reads zero instead of dividing by zero). Then

    read:   the glimpse   γ · F_Y x F_Xᵀ           (B×A image -> N×N)
    write:  the canvas    (1/γ) · F_Yᵀ w F_X        (N×N patch -> B×A)

per channel. Everything is a product of smooth functions of the window
parameters, so gradients flow into the layer that chose the window — unlike
a hard crop, whose position is an integer.

**The grid in the original code.** The Theano code that alignDRAW was released
with, and the DRAW implementation it names as its reference (Jörg Bornschein's),
compute the means with a 0-based ``i = 0..N−1`` in the same formula,
``μ^i = g + (i − N/2 − 0.5) δ``. That shifts the whole grid by −δ: its mean is
``g − δ``, not ``g``, so the window is not centred where ``g`` says
(alignDRAW's file also lacks ``from __future__ import division``, so under
Python 2 an odd N, such as COCO's N = 9, shifts it by −δ/2 instead). Both also
count pixels from 0. We use the paper's symmetric grid and 1-based pixels. A
trained network absorbs either convention into its window layer; only the
meaning of ``g`` changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

LOG2_E = math.log2(math.e)


@dataclass
class Window:
    """One attention window per example; every field has shape ``(M,)``."""

    g_x: Tensor     # grid centre, x (column), pixels 1..A
    g_y: Tensor     # grid centre, y (row), pixels 1..B
    sigma2: Tensor  # variance of each Gaussian filter, σ²
    delta: Tensor   # stride between filter centres, δ
    gamma: Tensor   # intensity γ

    def pick(self, i: int) -> "Window":
        """Example ``i``'s window(s), on the CPU: fields ``(M,)`` -> scalars, ``(M, T)`` (a drawing's) -> ``(T,)``."""
        return Window(**{f.name: getattr(self, f.name)[i].detach().cpu() for f in fields(self)})


def window_from_params(p: Tensor, A: int, B: int, N: int) -> Window:
    """Map ``p (M, 5) = (g̃_X, g̃_Y, log σ², log δ̃, log γ)`` to a :class:`Window` on an A×B image."""
    gx_t, gy_t, log_sigma2, log_delta_t, log_gamma = p.unbind(-1)  # each (M,)
    g_x = (A + 1) / 2 * (gx_t + 1)                                 # (M,)  g_X = (A+1)/2 (g̃_X + 1)
    g_y = (B + 1) / 2 * (gy_t + 1)                                 # (M,)  g_Y = (B+1)/2 (g̃_Y + 1)
    delta = (max(A, B) - 1) / max(N - 1, 1) * log_delta_t.exp()    # (M,)  δ = (max(A,B)−1)/(N−1) · δ̃
    return Window(g_x=g_x, g_y=g_y, sigma2=log_sigma2.exp(), delta=delta, gamma=log_gamma.exp())


def filter_centres(g: Tensor, delta: Tensor, N: int) -> Tensor:
    """The means ``μ (M, N)`` of the N filters along one axis, a grid symmetric about ``g``."""
    i = torch.arange(1, N + 1, dtype=g.dtype, device=g.device)      # (N,)  i = 1..N
    return g[..., None] + (i - N / 2 - 0.5) * delta[..., None]      # (M, N)  μ^i = g + (i − N/2 − 0.5) δ


def filterbank(g: Tensor, delta: Tensor, sigma2: Tensor, N: int, size: int, eps: float = 1e-8) -> Tensor:
    """N 1-D Gaussian filters over ``size`` pixels, each row normalised to sum 1: ``(M, N, size)``.

    ``g``, ``delta``, ``sigma2`` are ``(M,)``: the grid centre, stride and variance along this axis
    (any shapes that broadcast together work the same way: ``(M, 2)`` centres give ``(M, 2, N, size)``).
    """
    mu = filter_centres(g, delta, N)                                 # (M, N)
    a = torch.arange(1, size + 1, dtype=g.dtype, device=g.device)    # (size,)  pixel coordinates a = 1..size
    # exp(−(a − μ^i)²/2σ²) written 2^(−(a − μ^i)² · log₂e/2σ²): the same numbers up to rounding, the
    # scale worked out once per window, and exp2 keeps its speed in the Gaussian's far tails, where
    # torch's CPU exp slows down ~10× (arguments whose exp underflows)
    F = torch.exp2((a - mu[..., None]).square() * (-LOG2_E / (2 * sigma2[..., None, None])))  # (M, N, size)
    Z = F.sum(-1, keepdim=True).clamp_min(eps)                       # (M, N, 1)  Z_i = max(Σ_a exp(...), eps)
    return F * (1 / Z)                                               # (M, N, size)  F / Z: one division per row


def filterbanks(w: Window, N: int, A: int, B: int) -> tuple[Tensor, Tensor]:
    """The window's horizontal and vertical filterbanks: ``F_X (M, N, A)``, ``F_Y (M, N, B)``."""
    if A == B:                                        # a square image: both axes in one pass
        F = filterbank(torch.stack([w.g_x, w.g_y], -1), w.delta[..., None], w.sigma2[..., None], N, A)
        return F[..., 0, :, :], F[..., 1, :, :]       # (M, 2, N, A) -> F_X, F_Y
    F_X = filterbank(w.g_x, w.delta, w.sigma2, N, A)  # (M, N, A)
    F_Y = filterbank(w.g_y, w.delta, w.sigma2, N, B)  # (M, N, B)
    return F_X, F_Y


def glimpse(image: Tensor, F_X: Tensor, F_Y: Tensor) -> Tensor:
    """Filter ``image (M, C, B, A)`` through the window: ``F_Y image F_Xᵀ`` per channel, ``(M, C, N, N)``."""
    return F_Y[:, None] @ image @ F_X.transpose(-1, -2)[:, None]  # (M, C, N, N) = (M,1,N,B)(M,C,B,A)(M,1,A,N)


def read(x: Tensor, x_hat: Tensor, F_X: Tensor, F_Y: Tensor, gamma: Tensor) -> Tensor:
    """DRAW's read: ``γ · [F_Y x F_Xᵀ, F_Y x̂ F_Xᵀ]`` flattened to ``(M, 2·C·N·N)`` (x's glimpse first)."""
    both = torch.cat([glimpse(x, F_X, F_Y), glimpse(x_hat, F_X, F_Y)], dim=1)  # (M, 2C, N, N)
    return gamma[:, None] * both.flatten(1)                                     # (M, 2CNN)  γ · [..]


def write(patch: Tensor, F_X: Tensor, F_Y: Tensor, gamma: Tensor) -> Tensor:
    """DRAW's write: ``(1/γ) F_Yᵀ patch F_X`` per channel, ``patch (M, C, N, N)`` -> ``(M, C, B, A)``."""
    patch = patch / gamma[:, None, None, None]                      # (M, C, N, N)  w / γ: on N×N numbers, not B×A
    return F_Y.transpose(-1, -2)[:, None] @ patch @ F_X[:, None]    # (M, C, B, A) = (M,1,B,N)(M,C,N,N)(M,1,N,A)


class ReadAttention(nn.Module):
    """Read an N×N glimpse of the image and of the error image where ``h`` says.

    ``forward(x, x_hat, h)``: images ``(M, C, B, A)``, state ``h (M, hidden_size)`` ->
    ``r (M, size)`` with ``size = 2·C·N·N``, and the :class:`Window` used.
    """

    def __init__(self, hidden_size: int, A: int, B: int, C: int, N: int) -> None:
        super().__init__()
        self.A, self.B, self.C, self.N = A, B, C, N
        self.size = 2 * C * N * N
        self.window = nn.Linear(hidden_size, 5)  # h -> (g̃_X, g̃_Y, log σ², log δ̃, log γ)

    def forward(self, x: Tensor, x_hat: Tensor, h: Tensor) -> tuple[Tensor, Window]:
        w = window_from_params(self.window(h), self.A, self.B, self.N)  # each field (M,)
        F_X, F_Y = filterbanks(w, self.N, self.A, self.B)                # (M, N, A), (M, N, B)
        return read(x, x_hat, F_X, F_Y, w.gamma), w                      # (M, 2CNN)

    def extra_repr(self) -> str:
        return f"A={self.A}, B={self.B}, C={self.C}, N={self.N}"


class WriteAttention(nn.Module):
    """Write a C×N×N patch, emitted from ``h``, onto an A×B canvas where ``h`` says.

    ``forward(h)``: ``h (M, hidden_size)`` -> the canvas update ``(M, C, B, A)`` and the :class:`Window`.
    """

    def __init__(self, hidden_size: int, A: int, B: int, C: int, N: int) -> None:
        super().__init__()
        self.A, self.B, self.C, self.N = A, B, C, N
        self.window = nn.Linear(hidden_size, 5)          # h -> (g̃_X, g̃_Y, log σ², log δ̃, log γ)
        self.patch = nn.Linear(hidden_size, C * N * N)   # h -> w_t

    def forward(self, h: Tensor) -> tuple[Tensor, Window]:
        w = window_from_params(self.window(h), self.A, self.B, self.N)  # each field (M,)
        F_X, F_Y = filterbanks(w, self.N, self.A, self.B)                # (M, N, A), (M, N, B)
        patch = self.patch(h).view(-1, self.C, self.N, self.N)           # (M, C, N, N)  w_t
        return write(patch, F_X, F_Y, w.gamma), w                        # (M, C, B, A)

    def extra_repr(self) -> str:
        return f"A={self.A}, B={self.B}, C={self.C}, N={self.N}"
