"""Caption fidelity: does a generated picture show what its caption says?

The paper judged its samples by eye and by bounds; neither says whether "the
digit 3 is on the left of the digit 7" came out as a 3 on the left and a 7 on
the right. On the two synthetic data sets the grammar says exactly what must be
where, so small classifiers can check it.

**MNIST with captions.** A caption names one or two digits, each in a *slot*
(:func:`~minidraw.data.mnist_captions.slot_corners`: a 28×28 window whose top-left
corner the data set jitters by 0..``jitter`` pixels). For each named digit:

1. *Its region.* Of two named digits each owns the half of the canvas nearer its
   slot (left / right of the middle column, above / below the middle row); the
   other half is blanked for it, so the neighbour's strokes can neither pull
   the window nor be read as part of the digit (:func:`slot_regions`).
2. *Find it.* Among the window corners of its slot — the jitter range widened by
   ``search`` pixels each way — take those holding at least 90 % of the most ink
   any of them holds (the whole digit), and of these the one whose ink's centre
   of mass is nearest the window's centre (14, 14). That is how MNIST itself
   centred its digits (the real test digits' centre of mass sits at (14.0, 14.0)
   ± 0.3 px), so the crop looks like what the classifier was trained on. The
   choice looks at the image only, never at the named digit: a search for "the
   most 3-like window" would find 3s that are not there. A window whose centre
   of mass is still more than ``max_offset`` = 4 px off holds a digit cut by the
   search range — one that is somewhere else — and counts as none.
3. *Read it.* Less than ``min_ink`` of ink (in pixels at full intensity; the
   faintest real digit has 27) is no digit; otherwise :class:`DigitClassifier`, a
   small CNN trained on the MNIST training pool with ±2 pixel shifts and Gaussian
   blurs (:data:`DIGIT_BLURS`), names it. The blurs matter: these generators draw
   soft digits, and trained on sharp digits alone the classifier reads only 90.6 %
   of the test digits right once blurred by σ = 1.2 px (98.5 % with the blurs, at
   the same 98.6–99 % on sharp ones) and takes a blurry 5 for an 8.

A digit is right when it is found and read as the named digit; a caption is
right when all its named digits are. Ink elsewhere is not judged: the captions
do not forbid it.

**Captioned shapes.** A caption names one or two objects (size, colour, shape),
each at a place the layout fixes up to a jitter of at most ±1.6 px per axis
(:func:`~minidraw.data.shapes.scenes_from_captions` gives these *canonical
centres*), and a background. The background is read as the nearest of the three
to the median colour of the image's outer ring (objects never touch it); a
pixel's *ink* is its distance from that colour. For each named object, at its
canonical centre:

* *shape, size, and whether it is there at all*: :class:`ShapeClassifier`, a
  small CNN, reads a 20×20 crop of the ink map as one of 3 shapes × 2 sizes or
  ``NONE``: no object centred here. It is trained on crops at the places
  captions name — an image's own canonical centres, the same moved up to ±6 px,
  and another caption's centres — labelled with the object whose true centre
  is within 2.5 px, or ``NONE`` when every object is 4 px or more away. So "at
  the named place" means within about 3 px of it. Training scenes are blurred
  in turn by σ = 0, 0.6, 1 px, so a generator's soft edges are no surprise.
  Being colour-blind (ink, not RGB), it finds held-out (shape, colour) pairs
  no harder than seen ones;
* *colour*: a vote of the pixels near the centre (weighted by a Gaussian of the
  named half-side), each for the nearest palette colour; pixels nearer the
  background (anti-aliased edges) do not vote. The palette is known, so nothing
  is learnt;
* and, as a check that needs no learning, at least ``min_cover`` of the disk of
  the named half-side must be foreground (ink >= 0.5; the least a real object
  covers is 0.35).

By default a caption is right when every object is there with the named shape,
colour and size and the background is the named one; ``attributes`` picks a
subset (e.g. ``("shape", "colour")``).

**Chance.** Pair each image with another's caption and a perfect checker still
accepts the few captions that the image happens to satisfy; :func:`mnist_oracle`
and :func:`shapes_oracle` say which, so a scrambled score can be compared with
chance rather than with zero.

**Classifiers** are trained once and cached in ``~/.cache/minidraw/classifiers``
(or ``cache_dir``), in a file named by a hash of the training data (for shapes:
a probe rendering), the settings and :data:`CACHE_VERSION`, written atomically
(temporary file, rename) and read with ``weights_only=True``. The file keeps the
classifier's test accuracy (``model.accuracy``) and where it was trained from
(``model.source``). An unreadable file is retrained, with a warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import mnist_captions as mc
from .data import shapes as sh
from .data.download import cache_dir as default_cache_dir
from .data.mnist import DigitPools, digit_pools
from .runtime import seeded

CACHE_VERSION = 1  # bump when a classifier, its training or its input changes
DIGIT = mc.DIGIT   # 28
MNIST_TEMPLATE_NAMES = ("left of", "right of", "top of", "bottom of",
                        "top left corner", "top right corner", "bottom left corner", "bottom right corner")
SHAPES_PLACEMENT_NAMES = tuple(sh.POSITIONS) + tuple(sh.RELATIONS)  # one object: 5 positions; two: 4 relations
SHAPE_ATTRIBUTES = ("shape", "colour", "size", "background")
SHAPE_CROP = 20    # side of the ink crop the shape classifier reads, pixels of a 32×32 image
SHAPE_CANVAS = 32
NONE = len(sh.SHAPES) * len(sh.SIZES)  # the shape classifier's "no object centred here" class
RELATIONS_H = ("on the left of", "on the right of")
BLUR_SIGMAS = (0.0, 0.0, 0.6, 1.0)  # training scenes are blurred by these in turn
DIGIT_BLURS = (0.0, 0.7, 1.2, 1.7)  # each training batch of digits is blurred by one of these (σ, pixels)


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


def train_digit_classifier(pools: DigitPools | None = None, epochs: int = 6, seed: int = 0,
                           progress: bool = False) -> tuple[DigitClassifier, float]:
    """Train :class:`DigitClassifier` on ``pools.train_images`` (±2 pixel shifts, blurs), measure it on
    ``pools.test_images``: ``(model, test accuracy in [0, 1])``. About 20 s on one CPU thread."""
    pools = digit_pools() if pools is None else pools
    to_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)[:, None]  # noqa: E731  (N, 1, 28, 28)
    x, y = to_x(pools.train_images), torch.from_numpy(pools.train_labels.astype(np.int64))
    with seeded(seed):                                                        # leave the caller's RNG alone
        model = _fit(DigitClassifier(), x, y, epochs, seed, shift=2, progress=progress, blurs=DIGIT_BLURS)
    acc = _accuracy(model, to_x(pools.test_images), torch.from_numpy(pools.test_labels.astype(np.int64)))
    return model, acc


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


def digit_classifier(pools: DigitPools | None = None, cache_dir: str | os.PathLike | None = None,
                     retrain: bool = False, epochs: int = 6, seed: int = 0,
                     progress: bool = False) -> DigitClassifier:
    """The :class:`DigitClassifier` for ``pools`` (default :func:`digit_pools`), from the cache or trained.

    The file ``<cache_dir>/digits-<hash>.pt`` (default ``~/.cache/minidraw/classifiers``) is
    named by a hash of the digits and settings; ``model.accuracy`` is its test accuracy.
    """
    pools = digit_pools() if pools is None else pools
    settings = {"kind": "digits", "version": CACHE_VERSION, "epochs": epochs, "seed": seed,
                "blurs": list(DIGIT_BLURS)}
    key = _digest(settings, pools.train_images, pools.train_labels, pools.test_images, pools.test_labels)
    source = f"DigitClassifier trained on {len(pools.train_images)} digits; {pools.source}"
    return _cached(_classifier_dir(cache_dir) / f"digits-{key}.pt", DigitClassifier,
                   lambda: train_digit_classifier(pools, epochs, seed, progress),
                   {"source": source, "settings": settings}, retrain)


# ---- results ---------------------------------------------------------------------------------
@dataclass
class FidelityResult:
    """Per-caption verdicts of a fidelity check, and their summaries (rates in percent).

    ``named (M, K)`` says which of the K = 2 object slots a caption names; ``per_object``
    ``(M, K)`` whether each named object was found as named (False where not named);
    ``correct (M,)`` whether the whole caption holds. ``template (M,)`` indexes
    ``template_names``; ``heldout (M,)`` (or None) marks captions of held-out scenes.
    ``details`` holds what the checker saw (predicted digits, shapes, colours, ...).
    """

    title: str
    texts: list[str]
    correct: np.ndarray          # (M,) bool
    per_object: np.ndarray       # (M, K) bool
    named: np.ndarray            # (M, K) bool
    template: np.ndarray         # (M,) int64 into template_names
    template_names: tuple[str, ...]
    heldout: np.ndarray | None = None  # (M,) bool
    details: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.correct)

    @property
    def rate(self) -> float:
        """Percent of captions shown correctly."""
        return 100.0 * float(self.correct.mean()) if len(self) else float("nan")

    @property
    def object_rate(self) -> float:
        """Percent of named objects (digits, shapes) found as named."""
        n = int(self.named.sum())
        return 100.0 * float(self.per_object[self.named].mean()) if n else float("nan")

    def by_template(self) -> dict[str, float]:
        """Percent correct per template (MNIST) or placement (shapes), for those present."""
        return {name: 100.0 * float(self.correct[self.template == t].mean())
                for t, name in enumerate(self.template_names) if (self.template == t).any()}

    def counts(self) -> dict[str, int]:
        return {name: int((self.template == t).sum())
                for t, name in enumerate(self.template_names) if (self.template == t).any()}

    def by_heldout(self) -> dict[str, float]:
        """Percent correct on captions of seen and of held-out scenes (needs ``heldout``)."""
        if self.heldout is None:
            raise ValueError("no held-out flags: pass heldout= to the check, or use with_heldout(flags)")
        return {name: 100.0 * float(self.correct[mask].mean())
                for name, mask in (("seen", ~self.heldout), ("held-out", self.heldout)) if mask.any()}

    def with_heldout(self, heldout) -> "FidelityResult":
        """The same result with held-out flags: a bool sequence, or a data set with ``is_heldout(text)``."""
        return replace(self, heldout=_heldout_flags(heldout, self.texts))

    def summary(self) -> str:
        text = (f"{self.title}: {self.rate:.1f} % of {len(self)} captions correct "
                f"({self.object_rate:.1f} % of {int(self.named.sum())} named objects)")
        if self.heldout is not None:
            text += "; " + ", ".join(f"{k} {v:.1f} %" for k, v in self.by_heldout().items())
        return text

    def table(self) -> str:
        """A plain-text table: all captions, seen / held-out, each template, named objects and
        (shapes) each attribute, in percent with counts."""
        rows = [("all captions", self.rate, len(self))]
        if self.heldout is not None:
            rows += [(f"  {name}", *_rate_n(self.correct[mask]))
                     for name, mask in (("seen", ~self.heldout), ("held-out", self.heldout)) if mask.any()]
        counts = self.counts()
        rows += [(f"  {name}", v, counts[name]) for name, v in self.by_template().items()]
        rows.append(("named objects", self.object_rate, int(self.named.sum())))
        for key in sorted(k for k in self.details if k.endswith("_ok")):
            ok = self.details[key]
            rows.append((f"  {key[:-3]} right", *_rate_n(ok[self.named] if ok.ndim == 2 else ok)))
        width = max(len(r[0]) for r in rows)
        lines = [self.title, f"{'':{width}}  correct      n"]
        lines += [f"{name:{width}}  {v:6.1f} % {n:6d}" for name, v, n in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<FidelityResult {self.summary()}>"

    def _repr_pretty_(self, p, cycle) -> None:  # IPython / Jupyter
        p.text(self.table())


def _rate_n(ok: np.ndarray) -> tuple[float, int]:
    return (100.0 * float(ok.mean()) if len(ok) else float("nan")), len(ok)


def _heldout_flags(heldout, texts: list[str]) -> np.ndarray | None:
    if heldout is None:
        return None
    if hasattr(heldout, "is_heldout"):
        return np.array([heldout.is_heldout(t) for t in texts], dtype=bool)
    flags = np.asarray(heldout.cpu() if isinstance(heldout, torch.Tensor) else heldout, dtype=bool).reshape(-1)
    if len(flags) != len(texts):
        raise ValueError(f"{len(flags)} held-out flags for {len(texts)} captions")
    return flags


def _check_images(images, texts: Sequence[str], channels: int, side: int | None, what: str) -> torch.Tensor:
    """``images`` as float32 ``(M, C, B, A)`` on the CPU, after checking shape, range and count."""
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    images = images.detach().float().cpu()
    expect = f"(M, {channels}, {side or 'S'}, {side or 'S'})"
    if images.ndim != 4 or images.shape[1] != channels or images.shape[2] != images.shape[3] \
            or (side is not None and images.shape[2] != side):
        raise ValueError(f"{what} images must be {expect} in [0, 1], got shape {tuple(images.shape)}")
    if isinstance(texts, str):
        raise ValueError("texts must be a list of captions, not one string")
    if len(texts) != len(images):
        raise ValueError(f"{len(images)} images but {len(texts)} captions")
    if images.numel() and (not torch.isfinite(images).all() or images.min() < -1e-3 or images.max() > 1 + 1e-3):
        raise ValueError(f"{what} images must hold values in [0, 1] (probabilities, not logits); got "
                         f"[{images.min().item():.3g}, {images.max().item():.3g}]")
    return images.clamp(0, 1)


def _parse_all(parse, texts: Sequence[str], what: str) -> list:
    out = []
    for i, t in enumerate(texts):
        try:
            out.append(parse(t))
        except ValueError as e:  # includes UnknownWordError / EmptyCaptionError
            raise ValueError(f"caption {i} is not a {what} caption: {e}") from None
    return out


# ---- MNIST with captions ------------------------------------------------------------------------
def _mnist_objects(parsed: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Templates ``(M,)``, named digits ``(M, 2)`` and their slots ``(M, 2)`` (-1: none)."""
    template = np.array([t for t, _, _ in parsed], dtype=np.int64).reshape(-1)
    digits = np.array([(d, e) for _, d, e in parsed], dtype=np.int64).reshape(-1, 2)
    slots = np.stack([template, np.where(digits[:, 1] >= 0, np.take(mc.PARTNER, template), -1)], 1)
    return template, digits, slots


def slot_regions(slots: np.ndarray, side: int = mc.CANVAS, jitter: int = 4) -> torch.Tensor:
    """Each named digit's share of the canvas, ``(M, K, B, A)`` float {0, 1}.

    A lone digit owns the whole canvas; of two, each owns the pixels nearer its slot's
    centre than its partner's (left / right of the middle column, or above / below the
    middle row), so that one digit's search never sees the other's ink.
    """
    centre = torch.from_numpy(mc.slot_corners(side, jitter) + (jitter + DIGIT - 1) / 2).float()  # (8, 2) y, x
    s = torch.from_numpy(slots)                                                # (M, K)
    c = centre[s.clamp_min(0)][..., None, None]                                # (M, K, 2, 1, 1)
    g = torch.arange(side, dtype=torch.float32)
    d2 = (g[:, None] - c[:, :, 0]) ** 2 + (g[None, :] - c[:, :, 1]) ** 2       # (M, K, B, A)
    own = d2 <= d2.flip(1)                                                     # nearer own centre than partner's
    alone = (s < 0).any(1)[:, None, None, None]                                # (M, 1, 1, 1) one digit
    return ((own | alone) & (s >= 0)[..., None, None]).float()


def _window_sums(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sums of every ``k``×``k`` window of ``x (N, C, B, A)``: ``(N, C, B-k+1, A-k+1)``, from an integral image."""
    s = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))                           # (N, C, B+1, A+1)
    return s[..., k:, k:] - s[..., :-k, k:] - s[..., k:, :-k] + s[..., :-k, :-k]


def find_digits(images: torch.Tensor, slots: np.ndarray, jitter: int = 4, search: int = 2,
                near_max: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each digit is: window corners ``(N, 2)`` (y, x), their ink ``(N,)`` and how far their
    ink's centre of mass is from the window's centre ``(N,)``, in pixels.

    ``images (N, 1, 60, 60)``, one digit's region each (:func:`slot_regions`), ``slots (N,)``
    the slot to search. Among the corners within the slot's jitter range widened by ``search``,
    those with ink >= ``near_max`` × the most, and of these the one whose centre of mass is
    nearest (14, 14).
    """
    side = images.shape[-1]
    n = side - DIGIT + 1                                                       # window positions per axis
    grid = torch.arange(side, dtype=torch.float32)
    stack = torch.cat([images, images * grid[:, None], images * grid[None, :]], 1)  # (N, 3, B, A): I, yI, xI
    sums = _window_sums(stack.double(), DIGIT).float()                        # (N, 3, n, n)
    ink = sums[:, 0]                                                           # (N, n, n)
    pos = torch.arange(n, dtype=torch.float32)
    com_y = sums[:, 1] / ink.clamp_min(1e-6) - pos[:, None]                    # (N, n, n) within the window
    com_x = sums[:, 2] / ink.clamp_min(1e-6) - pos[None, :]
    off = ((com_y - DIGIT / 2) ** 2 + (com_x - DIGIT / 2) ** 2).sqrt().flatten(1)  # (N, n*n)
    corner0 = torch.from_numpy(mc.slot_corners(side, jitter))[torch.from_numpy(slots)]  # (N, 2)
    lo = (corner0 - search).clamp(0, n - 1)[..., None, None]                   # (N, 2, 1, 1)
    hi = (corner0 + jitter + search).clamp(0, n - 1)[..., None, None]
    inside = ((pos[:, None] >= lo[:, 0]) & (pos[:, None] <= hi[:, 0])          # rows (N, n, 1)
              & (pos[None, :] >= lo[:, 1]) & (pos[None, :] <= hi[:, 1])).flatten(1)  # and columns: (N, n*n)
    ink = torch.where(inside, ink.flatten(1), torch.tensor(-1.0))              # (N, n*n)
    candidate = inside & (ink >= near_max * ink.max(1, keepdim=True).values)
    choice = torch.where(candidate, off, torch.tensor(float("inf"))).argmin(1, keepdim=True)  # (N, 1)
    corner = torch.cat([choice // n, choice % n], 1)                          # (N, 2)
    return corner.numpy(), ink.gather(1, choice)[:, 0].numpy(), off.gather(1, choice)[:, 0].numpy()


def _crops(images: torch.Tensor, rows: np.ndarray, corner: np.ndarray, size: int) -> torch.Tensor:
    """Windows ``(N, C, size, size)`` of ``images[rows]`` at top-left ``corner (N, 2)``."""
    r = torch.from_numpy(rows)[:, None, None]
    ys = (torch.from_numpy(corner[:, 0])[:, None] + torch.arange(size))[:, :, None]  # (N, size, 1)
    xs = (torch.from_numpy(corner[:, 1])[:, None] + torch.arange(size))[:, None, :]  # (N, 1, size)
    return images.permute(0, 2, 3, 1)[r, ys, xs].permute(0, 3, 1, 2)               # (N, C, size, size)


def mnist_fidelity(images, texts: Sequence[str], classifier: nn.Module, heldout=None, jitter: int = 4,
                   search: int = 2, min_ink: float = 15.0, max_offset: float = 4.0) -> FidelityResult:
    """Check generated MNIST-with-captions images ``(M, 1, 60, 60)`` in [0, 1] against ``texts``.

    ``classifier``: a :func:`digit_classifier`. ``heldout``: per-caption flags or a data
    set with ``is_heldout`` (e.g. the ``MnistCaptions`` the captions came from).
    ``details``: ``digit (M, 2)`` the digit read at each named place (-1: not named, too
    little ink, or off-centre), ``named_digit (M, 2)``, the classifier's ``confidence (M, 2)``,
    the window chosen: ``corner (M, 2, 2)`` (y, x), its ``ink (M, 2)`` and the ``offset (M, 2)``
    of its centre of mass from the window's centre. Memory: about 60 KB per caption.
    """
    images = _check_images(images, texts, 1, mc.CANVAS, "MNIST-with-captions")
    template, digits, slots = _mnist_objects(_parse_all(mc.parse_caption, texts, "MNIST-with-captions"))
    named = slots >= 0                                                         # (M, 2)
    rows, cols = np.nonzero(named)
    regions = images * slot_regions(slots, mc.CANVAS, jitter)                  # (M, 2, B, A)
    own = regions[rows, cols][:, None]                                         # (N, 1, B, A) one digit's share
    found, found_ink, found_off = find_digits(own, slots[rows, cols], jitter, search)
    corner = np.zeros((*named.shape, 2), dtype=np.int64)                       # (M, 2, 2) y, x
    ink, offset = np.zeros(named.shape), np.full(named.shape, np.inf)         # (M, 2)
    corner[rows, cols], ink[rows, cols], offset[rows, cols] = found, found_ink, found_off
    read = np.full(named.shape, -1, dtype=np.int64)
    conf = np.zeros(named.shape, dtype=np.float32)
    if len(rows):
        p, d = _predict(classifier, _crops(own, np.arange(len(rows)), found, DIGIT)).max(1)  # (N,)
        read[rows, cols], conf[rows, cols] = d.numpy(), p.numpy()
    read = np.where(named & (ink >= min_ink) & (offset <= max_offset), read, -1)
    per_object = named & (read == digits)
    correct = (per_object | ~named).all(1) & named.any(1)
    return FidelityResult("caption fidelity, MNIST with captions", list(texts), correct, per_object, named,
                          template, MNIST_TEMPLATE_NAMES, _heldout_flags(heldout, list(texts)),
                          {"digit": read, "confidence": conf, "ink": ink, "offset": offset, "corner": corner,
                           "named_digit": digits})


def mnist_oracle(scene_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Would a perfect checker accept ``texts[i]`` for the true scene ``scene_texts[i]`` describes? ``(M,)``.

    A caption holds when each (slot, digit) it names is in the scene ("3 left of 7"
    and "7 right of 3" are one scene). For the chance level of scrambled pairs.
    """
    def facts(text):
        t, d, e = mc.parse_caption(text)
        return {(t, d)} | ({(mc.PARTNER[t], e)} if e >= 0 else set())
    return np.array([facts(c) <= facts(s) for s, c in zip(scene_texts, texts)], dtype=bool)


# ---- captioned shapes -----------------------------------------------------------------------------
def background_of(images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Median colour of each image's outer ring ``(M, 3)`` and the nearest background ``(M,)``."""
    ring = torch.cat([images[..., 0, :], images[..., -1, :], images[..., 1:-1, 0], images[..., 1:-1, -1]], -1)
    colour = ring.median(-1).values                                            # (M, 3)
    palette = torch.from_numpy(sh.BACKGROUND_RGB)                              # (3, 3)
    return colour, torch.cdist(colour, palette).argmin(1).numpy()


def ink_map(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """How far each pixel is from the background colour, ``(M, 1, B, A)`` in [0, 1]
    (1 = a palette colour at full coverage, which is >= 0.5 from every background)."""
    d2 = ((images - background[:, :, None, None]) ** 2).sum(1, keepdim=True)   # (M, 1, B, A)
    return (d2.sqrt() / 0.5).clamp(0, 1)


def _shape_crops(ink: torch.Tensor, rows: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> torch.Tensor:
    """20×20 ink crops ``(N, 1, 20, 20)`` around centres ``(cx, cy)`` in pixels (zeros outside)."""
    h = SHAPE_CROP // 2
    padded = F.pad(ink, (h, h, h, h))
    corner = np.stack([np.round(cy).astype(np.int64), np.round(cx).astype(np.int64)], 1)  # top-left in padded
    return _crops(padded, rows, corner, SHAPE_CROP)


def _to_canvas(images: torch.Tensor) -> torch.Tensor:
    if images.shape[-1] == SHAPE_CANVAS:
        return images
    return F.interpolate(images, size=(SHAPE_CANVAS, SHAPE_CANVAS), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


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


def _shape_training_data(split: str, n_scenes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ink crops ``(N, 1, 20, 20)`` and labels ``(N,)`` from ``n_scenes`` scenes of ``split``.

    Crops are centred where captions put objects: each scene's own canonical centres,
    the same moved by up to ±6 pixels, and the canonical centres of another scene's
    caption. A crop whose centre is within 2.5 px of a true object's centre is labelled
    with that object's shape and size, one 4 px or more from every object ``NONE``;
    those in between are ambiguous and left out.
    """
    data = sh.ShapesCaptions(split, seed=seed, length=n_scenes, size=SHAPE_CANVAS)
    batch = data.batch(np.arange(n_scenes))
    canon = sh.scenes_from_captions(batch.texts(data.vocab))                   # canonical layout
    rng = np.random.default_rng(seed)
    rows, k = np.nonzero(canon.shape >= 0)
    other = rng.permutation(n_scenes)
    o_rows, o_k = np.nonzero(canon.shape[other] >= 0)
    q_rows = np.concatenate([rows, rows, o_rows])                             # (N,) which image
    q_x = np.concatenate([canon.x[rows, k], canon.x[rows, k], canon.x[other[o_rows], o_k]]) * SHAPE_CANVAS
    q_y = np.concatenate([canon.y[rows, k], canon.y[rows, k], canon.y[other[o_rows], o_k]]) * SHAPE_CANVAS
    moved = slice(len(rows), 2 * len(rows))
    q_x[moved] += rng.uniform(-6, 6, len(rows))
    q_y[moved] += rng.uniform(-6, 6, len(rows))
    tx, ty = batch.meta["x"].numpy()[q_rows], batch.meta["y"].numpy()[q_rows]  # (N, 2) true centres, -1: none
    dist = np.where(tx >= 0, np.hypot(tx - q_x[:, None], ty - q_y[:, None]), np.inf)  # (N, 2)
    near = dist.argmin(1)
    cls = (batch.meta["shape"].numpy() * len(sh.SIZES) + batch.meta["size"].numpy())[q_rows, near]
    d = dist.min(1)
    label = np.where(d <= 2.5, cls, NONE)
    keep = (d <= 2.5) | (d >= 4.0)
    images = batch.images.clone()                                              # (n, 3, B, A)
    for level, sigma in enumerate(BLUR_SIGMAS):                                 # a generator's soft edges
        images[level::len(BLUR_SIGMAS)] = blur(images[level::len(BLUR_SIGMAS)], sigma)
    colour, _ = background_of(images)
    ink = ink_map(images, colour)
    x = _shape_crops(ink, q_rows[keep], q_x[keep], q_y[keep])
    return x, torch.from_numpy(label[keep].astype(np.int64))


def train_shape_classifier(n_scenes: int = 4000, epochs: int = 3, seed: int = 0,
                           progress: bool = False) -> tuple[ShapeClassifier, float]:
    """Train :class:`ShapeClassifier` on crops of ``n_scenes`` ``train`` scenes (see
    :func:`_shape_training_data`): ``(model, accuracy)``, the accuracy on such crops of 2000
    ``test`` scenes, objects and empty places alike. About 15 s on one CPU thread."""
    x, y = _shape_training_data("train", n_scenes, seed)
    with seeded(seed):
        model = _fit(ShapeClassifier(), x, y, epochs, seed, shift=1, progress=progress)
    return model, _accuracy(model, *_shape_training_data("test", 2000, seed))


def shape_classifier(cache_dir: str | os.PathLike | None = None, retrain: bool = False, n_scenes: int = 4000,
                     epochs: int = 3, seed: int = 0, progress: bool = False) -> ShapeClassifier:
    """The :class:`ShapeClassifier`, from the cache (``<cache_dir>/shapes-<hash>.pt``) or trained.

    The hash covers the settings and a probe rendering of a few scenes, so a change to the
    data set's geometry or drawing retrains it.
    """
    settings = {"kind": "shapes", "version": CACHE_VERSION, "n_scenes": n_scenes, "epochs": epochs, "seed": seed,
                "blur": BLUR_SIGMAS}
    probe = sh.ShapesCaptions("train", seed=seed, size=SHAPE_CANVAS).batch(np.arange(8))
    key = _digest(settings, probe.images.numpy(), probe.captions.numpy())
    source = f"ShapeClassifier trained on the objects of {n_scenes} captioned-shapes train scenes (seed {seed})"
    return _cached(_classifier_dir(cache_dir) / f"shapes-{key}.pt", ShapeClassifier,
                   lambda: train_shape_classifier(n_scenes, epochs, seed, progress),
                   {"source": source, "settings": settings}, retrain)


def shapes_fidelity(images, texts: Sequence[str], classifier: nn.Module, heldout=None,
                    attributes: Sequence[str] = SHAPE_ATTRIBUTES, min_cover: float = 0.25) -> FidelityResult:
    """Check generated captioned-shapes images ``(M, 3, S, S)`` in [0, 1] against ``texts``.

    ``classifier``: a :func:`shape_classifier`. ``attributes``: which of shape, colour,
    size (per object) and background (per image) a caption must get right; an object
    must always be present at its place. Images of another side than 32 are resized to 32.
    ``details``: ``shape``, ``colour``, ``size`` ``(M, 2)`` as read (-1: nothing there),
    ``background (M,)`` as read, ``cover (M, 2)``, ``present_ok (M, 2)`` and ``<attribute>_ok``
    for each checked attribute.
    """
    unknown = set(attributes) - set(SHAPE_ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; choose from {SHAPE_ATTRIBUTES}")
    images = _to_canvas(_check_images(images, texts, 3, None, "captioned-shapes"))
    try:
        scene = sh.scenes_from_captions(list(texts))                           # canonical layout
    except ValueError:
        _parse_all(sh.parse_caption, texts, "captioned-shapes")                # says which caption
        raise
    named = scene.shape >= 0                                                   # (M, 2)
    cx, cy = scene.x * SHAPE_CANVAS, scene.y * SHAPE_CANVAS                    # (M, 2) pixels
    r = sh.RADIUS[np.maximum(scene.size, 0)] * SHAPE_CANVAS                    # (M, 2) named half-side
    bg_colour, bg = background_of(images)
    ink = ink_map(images, bg_colour)                                           # (M, 1, B, A)

    # presence and colour: pixels near each named centre
    grid = torch.arange(SHAPE_CANVAS, dtype=torch.float32) + 0.5
    dx = grid[None, None, None, :] - torch.from_numpy(cx).float()[..., None, None]  # (M, 2, 1, A)
    dy = grid[None, None, :, None] - torch.from_numpy(cy).float()[..., None, None]  # (M, 2, B, 1)
    d2 = dx ** 2 + dy ** 2                                                     # (M, 2, B, A)
    rr = torch.from_numpy(r).float()[..., None, None]                          # (M, 2, 1, 1)
    fg = ink >= 0.5                                                            # (M, 1, B, A)
    cover = (fg & (d2 <= rr ** 2)).sum((2, 3)).float() / (np.pi * rr[..., 0, 0] ** 2)  # (M, 2)
    present = named & (cover.numpy() >= min_cover)
    palette = torch.from_numpy(sh.COLOUR_RGB)                                  # (6, 3)
    pix = images.permute(0, 2, 3, 1)                                           # (M, B, A, 3)
    dist = ((pix[..., None, :] - palette) ** 2).sum(-1)                    # (M, B, A, 6) squared
    dist_bg = ((pix - bg_colour[:, None, None, :]) ** 2).sum(-1, keepdim=True)  # (M, B, A, 1)
    nearest = torch.cat([dist, dist_bg], -1).argmin(-1)                        # (M, B, A) 6 = background
    votes = F.one_hot(nearest, 7)[..., :6].float()                             # (M, B, A, 6)
    weight = torch.exp(-d2 / (2 * rr ** 2))                                    # (M, 2, B, A)
    colour_score = torch.einsum("mkba,mbac->mkc", weight, votes)              # (M, 2, 6)
    colour = np.where(present, colour_score.argmax(-1).numpy(), -1)

    # shape and size: the CNN on ink crops around each named centre
    rows, k = np.nonzero(named)
    probs = _predict(classifier, _shape_crops(ink, rows, cx[rows, k], cy[rows, k]))  # (N, 7)
    cls = np.full(named.shape, -1, dtype=np.int64)
    if len(rows):
        cls[rows, k] = probs.argmax(1).numpy()
    present &= cls != NONE
    colour = np.where(present, colour, -1)
    shape = np.where(present, cls // len(sh.SIZES), -1)
    size = np.where(present, cls % len(sh.SIZES), -1)

    checks = {"shape": shape == scene.shape, "colour": colour == scene.colour, "size": size == scene.size}
    per_object = present.copy()
    for a in attributes:
        if a in checks:
            per_object &= checks[a]
    correct = (per_object | ~named).all(1) & named.any(1)
    background_ok = bg == scene.background
    if "background" in attributes:
        correct &= background_ok
    placement = np.where(scene.n_objects == 2, len(sh.POSITIONS) + scene.relation, scene.position)
    details = {"shape": shape, "colour": colour, "size": size, "background": bg,
               "cover": cover.numpy(), "present_ok": present}
    details.update({f"{a}_ok": checks[a] & present for a in attributes if a in checks})
    if "background" in attributes:
        details["background_ok"] = background_ok
    return FidelityResult("caption fidelity, captioned shapes", list(texts), correct, per_object, named,
                          placement.astype(np.int64), SHAPES_PLACEMENT_NAMES,
                          _heldout_flags(heldout, list(texts)), details)


def shapes_oracle(scene_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Would a perfect checker accept ``texts[i]`` for the scene ``scene_texts[i]`` describes? ``(M,)``.

    Each named object (at its place: a position, or the low/high side of a relation's
    axis) and the background must be in the scene. Places are compared by role, not
    by pixel: "A left of B" puts A where "A left of C" does, up to a pixel or so. Every
    attribute counts, as in :func:`shapes_fidelity`'s default.
    """
    def facts(text):
        p = sh.parse_caption(text)
        if p["position"] is not None:
            places = [("at", p["position"])]
        else:
            axis = "h" if p["relation"] in RELATIONS_H else "v"
            first_low = p["relation"] in ("on the left of", "above")        # the first-named is left / on top
            places = [(axis, first_low), (axis, not first_low)]
        return {(place, obj) for place, obj in zip(places, p["objects"])} | {("background", p["background"])}
    return np.array([facts(c) <= facts(s) for s, c in zip(scene_texts, texts)], dtype=bool)

