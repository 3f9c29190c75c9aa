"""What a fidelity check returns (:class:`FidelityResult`) and the input checks both checkers share."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch


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


def _crops(images: torch.Tensor, rows: np.ndarray, corner: np.ndarray, size: int) -> torch.Tensor:
    """Windows ``(N, C, size, size)`` of ``images[rows]`` at top-left ``corner (N, 2)``."""
    r = torch.from_numpy(rows)[:, None, None]
    ys = (torch.from_numpy(corner[:, 0])[:, None] + torch.arange(size))[:, :, None]  # (N, size, 1)
    xs = (torch.from_numpy(corner[:, 1])[:, None] + torch.arange(size))[:, None, :]  # (N, 1, size)
    return images.permute(0, 2, 3, 1)[r, ys, xs].permute(0, 3, 1, 2)               # (N, C, size, size)
