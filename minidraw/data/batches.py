"""Batches that are a function of the step: how a run replays exactly what it drew.

The trainer asks for the batch of step k, not "the next batch": :class:`Batches` computes it from
(seed, process rank, k), so a run resumed at step k — on one process or many — sees the batches the
uninterrupted run would have seen. :func:`fixed_batches` gives the first n examples (test sets);
:func:`caption_batches` an endless stream for notebooks.
"""
from __future__ import annotations

import numpy as np
import torch

Batch = tuple  # of tensors: the model's positional arguments, (images,) or (images, captions, lengths)


class Batches:
    """``batches(step)``: the (slice of the) global batch of a step, reproducible from the seed.

    ``source`` is a tensor of images or a captioned data set (anything with ``batch(indices)``).
    Epoch e is ``np.random.default_rng([seed, e]).permutation(n)``; a generated data set
    (``endless = True``) is an infinite stream, so its epoch e visits indices ``e·n + permutation``
    — new scenes every epoch — while a finite one (COCO) revisits its n examples.
    With ``world`` processes, rank r takes the r-th contiguous slice of the global batch.
    """

    def __init__(self, source, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1, device="cpu"):
        if batch_size % world:
            raise ValueError(f"the global batch {batch_size} does not split evenly over {world} processes")
        self.source, self.batch_size, self.seed, self.rank, self.world, self.device = (
            source, batch_size, seed, rank, world, device)
        self.n = len(source)
        self.per_epoch = self.n // batch_size
        if self.per_epoch == 0:
            raise ValueError(f"batch size {batch_size} exceeds the {self.n} training examples")

    def indices(self, step: int) -> np.ndarray:
        epoch, k = divmod(step - 1, self.per_epoch)                       # steps count from 1
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        glob = order[k * self.batch_size:(k + 1) * self.batch_size]      # (batch_size,)
        per = self.batch_size // self.world
        mine = glob[self.rank * per:(self.rank + 1) * per]
        return mine + epoch * self.n if getattr(self.source, "endless", False) else mine

    def __call__(self, step: int) -> Batch:
        idx = self.indices(step)
        if isinstance(self.source, torch.Tensor):
            return (self.source[torch.from_numpy(idx)].to(self.device),)
        b = self.source.batch(idx).to(self.device)
        return b.images, b.captions, b.lengths


def fixed_batches(source, n: int, batch_size: int = 500, device="cpu") -> list[Batch]:
    """The first ``n`` examples of a data set (or tensor of images) as a list of batches."""
    out = []
    for i in range(0, min(n, len(source)), batch_size):
        idx = np.arange(i, min(n, len(source), i + batch_size))
        if isinstance(source, torch.Tensor):
            out.append((source[torch.from_numpy(idx)].to(device),))
        else:
            b = source.batch(idx).to(device)
            out.append((b.images, b.captions, b.lengths))
    return out


def caption_batches(dataset, batch_size: int, seed: int = 0, device="cpu"):
    """Endless ``(images, captions, lengths)`` batches of a captioned data set (for notebooks)."""
    batches = Batches(dataset, batch_size, seed, device=device)
    return (batches(step) for step in range(1, 1 << 62))
