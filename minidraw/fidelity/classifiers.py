"""The fidelity checkers' classifiers, how they are trained, and their cache.

:class:`DigitClassifier` reads a 28×28 digit; :class:`ShapeClassifier` reads a 20×20 ink crop
as one of 3 shapes × 2 sizes or ``NONE``. Both are small CNNs trained by :func:`_fit` (Adam,
one-cycle rate, shifts and blurs as augmentation). :func:`_cached` keeps a trained classifier
in a file named by a hash of its training data and settings (:data:`CACHE_VERSION` included),
written atomically and read with ``weights_only=True``; an unreadable file is retrained.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.download import cache_dir as default_cache_dir
from ..data.shapes_scene import SHAPES, SIZES

CACHE_VERSION = 1  # bump when a classifier, its training or its input changes
NONE = len(SHAPES) * len(SIZES)  # the shape classifier's "no object centred here" class


# ---- the classifiers ----------------------------------------------------------------------
class DigitClassifier(nn.Module):
    """A small CNN: ``(N, 1, 28, 28)`` intensities in [0, 1] -> ``(N, 10)`` logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # (N, 16, 14, 14)
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, 7, 7)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 128), nn.ReLU(),
                                  nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ShapeClassifier(nn.Module):
    """A small CNN: ink crops ``(N, 1, 20, 20)`` -> ``(N, 7)`` logits: is an object centred in the
    crop, and which? Class = shape * 2 + size, or ``NONE`` (6): no object centred here."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (N, 16, 10, 10)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 32, 5, 5)
            nn.Flatten(), nn.Linear(32 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, NONE + 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``images (M, C, B, A)`` with std ``sigma`` pixels (edges replicated)."""
    if sigma <= 0:
        return images
    h = max(1, int(np.ceil(3 * sigma)))
    g = torch.exp(-torch.arange(-h, h + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).to(images)
    c = images.shape[1]
    x = F.pad(images, (h, h, h, h), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)       # along rows
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)    # along columns


def _shift(x: torch.Tensor, s: int, gen: torch.Generator) -> torch.Tensor:
    """Move each image ``(N, 1, H, W)`` by up to ``s`` pixels each way (zeros come in)."""
    if s == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s))                                          # (N, 1, H+2s, W+2s)
    dy, dx = (torch.randint(0, 2 * s + 1, (n,), generator=gen) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, :, None]                       # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]                       # (N, 1, W)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, shift: int,
         progress: bool, batch_size: int = 64, lr: float = 3e-3, blurs: Sequence[float] = ()) -> nn.Module:
    """Adam with a one-cycle learning rate, cross-entropy, random shifts (and, with ``blurs``, a
    Gaussian blur of a σ drawn from ``blurs`` per batch) as augmentation."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr)
    per_epoch = len(x) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * per_epoch)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(per_epoch):
            b = perm[i * batch_size: (i + 1) * batch_size]
            xb = _shift(x[b], shift, gen)
            if blurs:
                xb = blur(xb, float(blurs[int(torch.randint(len(blurs), (), generator=gen))]))
            loss = F.cross_entropy(model(xb), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if progress:
            print(f"  {type(model).__name__} epoch {epoch + 1}/{epochs}: loss {total / per_epoch:.4f}", flush=True)
    return model.eval()


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Softmax probabilities ``(N, classes)``, in batches, in eval mode."""
    was = model.training
    model.eval()
    out = [F.softmax(model(x[i: i + batch_size]), -1) for i in range(0, len(x), batch_size)]
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, 1)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((_predict(model, x).argmax(1) == y).float().mean())


# ---- caching --------------------------------------------------------------------------------
def _digest(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.tobytes() if isinstance(p, np.ndarray) else json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _cached(path: Path, make: Callable[[], nn.Module], train: Callable[[], tuple[nn.Module, float]],
            info: dict, retrain: bool) -> nn.Module:
    """Load the classifier at ``path``, or train it and save it there atomically.

    The returned model carries ``accuracy`` (test accuracy in [0, 1]), ``source``,
    ``cache_path``, ``from_cache`` (False when trained by this call) and ``train_seconds``.
    """
    if path.is_file() and not retrain:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            model = make()
            model.load_state_dict(ckpt["model"])
            model.accuracy, model.source = float(ckpt["accuracy"]), str(ckpt["source"])
            model.train_seconds = float(ckpt.get("train_seconds", float("nan")))
            model.cache_path, model.from_cache = path, True
            return model.eval()
        except Exception as e:
            warnings.warn(f"cached classifier {path} is unreadable ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else ''}); training it again", stacklevel=3)
    start = time.perf_counter()
    model, acc = train()
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"model": model.state_dict(), "accuracy": acc, "train_seconds": seconds,
                        "version": CACHE_VERSION, **info}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    model.accuracy, model.source, model.train_seconds = acc, info["source"], seconds
    model.cache_path, model.from_cache = path, False
    return model.eval()


def _classifier_dir(cache_dir: str | os.PathLike | None) -> Path:
    return default_cache_dir("classifiers") if cache_dir is None else Path(cache_dir).expanduser()
