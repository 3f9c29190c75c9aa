"""What every model hands back, and the configuration plumbing every model shares.

:class:`DrawOutput` (one pass: the bound and everything computed on the way, with DRAW's
per-step Gaussians in :class:`Latents`) and :class:`Generated` (drawings) are returned by DRAW,
alignDRAW and the baseline VAEs alike; :class:`ConfigDict` gives each model's configuration dataclass its
``to_dict`` / ``from_dict`` (what a checkpoint stores) and its checks;
:func:`check_images` guards every model's input; :class:`Objective` wraps a model in the terms only
training adds. This module imports no model, so :mod:`minidraw.draw` and :mod:`minidraw.baselines`
both build on it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, ClassVar, Optional

import torch
from torch import Tensor, nn

from .bound import gaussian_kl, gaussian_log_prob

if TYPE_CHECKING:
    from .attention import Window


class ConfigDict:
    """``to_dict`` / ``from_dict`` for a model's configuration dataclass (checkpoints store the dict).

    Only settings are stored. A value derived from them (``DERIVED``, e.g. ``cond_size``) is a
    property: ``from_dict`` accepts it (older checkpoints stored it) but checks that it agrees
    with the settings, so a stale derived value can never survive a change of setting.
    """

    DERIVED: ClassVar[tuple[str, ...]] = ()
    # Settings that were removed from the package, each with the value that gives the model it still builds: a
    # file that stored that value loads (the setting is dropped), one that stored another is refused by name.
    WITHDRAWN: ClassVar[dict[str, object]] = {}

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        for name, value in cls.WITHDRAWN.items():
            if name in d and name not in known:
                if d[name] != value:
                    raise ValueError(f"{cls.__name__}: this configuration sets {name}={d[name]!r}, a setting that was "
                                     f"removed from minidraw (only {name}={value!r} is built now); load it with the "
                                     "minidraw release that trained it")
                d = {k: v for k, v in d.items() if k != name}
        unknown = sorted(set(d) - known - set(cls.DERIVED))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**{k: v for k, v in d.items() if k in known})
        for name in cls.DERIVED:
            if name in d and d[name] != getattr(cfg, name):
                raise ValueError(f"{cls.__name__}: {name}={d[name]!r} disagrees with the other settings, which give "
                                 f"{name}={getattr(cfg, name)!r}; {name} is derived from them: leave it out")
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    def _require(self, minimum: int, *names: str) -> None:
        """``ValueError`` naming the setting unless each of ``names`` is a whole number ≥ ``minimum``."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}: "
                                 f"give {name}={max(minimum, 1) if minimum else 0} or more")


def _compiling() -> bool:
    """Inside ``torch.compile``'s tracing (where a data-dependent check would break the graph)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling and is_compiling())


def check_images(x: Tensor, shape: tuple[int, int, int], dtype: torch.dtype) -> None:
    """``ValueError`` with the fix unless ``x`` is ``(M, *shape)`` images of the model's float
    ``dtype`` with values in [0, 1] (the Bernoulli likelihood's pixels): the model's boundary."""
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"images of shape {tuple(x.shape)}, this model draws (M, C, B, A) = (M, {', '.join(map(str, shape))})")
    if not torch.is_floating_point(x):
        raise ValueError(f"images are {x.dtype}; the model takes floats in [0, 1]: give images.float() / 255")
    if x.dtype != dtype:
        raise ValueError(f"images are {x.dtype} but the model's weights are {dtype}: give images.to({dtype})")
    if x.numel() and not _compiling():
        low, high = torch.aminmax(x.detach())
        if not (low >= 0 and high <= 1):                                      # NaN fails too
            raise ValueError(f"image values lie in [{low.item():.4g}, {high.item():.4g}]; the model takes values in "
                             "[0, 1] (pixel intensities): divide 0..255 images by 255")


@dataclass
class Latents:
    """The Gaussians of every step of one DRAW pass, each ``(M, T, z_size)``: the noise ε, the posterior
    q(z_t | ·) = N(μ_t, σ_t²) and the prior p(z_t | z_<t) = N(μ^p_t, σ^p_t²), with z_t = μ_t + σ_t ε_t."""

    eps: Tensor
    mu: Tensor
    logsigma: Tensor
    mu_p: Tensor
    logsigma_p: Tensor

    @property
    def z(self) -> Tensor:
        """The sampled z_t = μ_t + σ_t ε_t, ``(M, T, z_size)``."""
        return self.mu + torch.exp(self.logsigma) * self.eps

    def kl(self, dims: slice = slice(None)) -> Tensor:
        """KL(q(z_t | ·) || p(z_t | z_<t)) per step, ``(M, T)``; of the numbers ``dims`` of z_t only, when given."""
        return gaussian_kl(self.mu[..., dims], self.logsigma[..., dims], self.mu_p[..., dims],
                           self.logsigma_p[..., dims]).sum(-1)

    def log_q(self) -> Tensor:
        """log q(z | x) of the sampled z, summed over steps: ``(M,)``."""
        return gaussian_log_prob(self.z, self.mu, self.logsigma).sum(-1)

    def log_p(self) -> Tensor:
        """log p(z) of the sampled z, summed over steps: ``(M,)``."""
        return gaussian_log_prob(self.z, self.mu_p, self.logsigma_p).sum(-1)


@dataclass
class DrawOutput:
    """Everything one pass computed. Bounds are −L in nats per image (lower is better).

    ``log_qz`` and ``log_pz`` are only needed by importance weighting, not by the bound: a model
    may leave them ``None`` and give ``latents`` instead, and they are computed from it when first read.
    """

    canvas: Tensor             # (M, C, B, A) final canvas c_T (logits; the image is σ(c_T))
    nll: Tensor                # (M,) −log p(x | z)
    kl: Tensor                 # (M, T) KL(q(z_t|·) || p(z_t|z_<t)) per step
    log_qz: Optional[Tensor]   # (M,) log q(z | x) of the sampled z, summed over steps
    log_pz: Optional[Tensor]   # (M,) log p(z) of the sampled z, summed over steps
    read: Optional[Window]     # fields (M, T)
    write: Optional[Window]    # fields (M, T)
    canvases: Optional[Tensor] = None  # (T, M, C, B, A) c_t after each step, when asked for
    alpha: Optional[Tensor] = None     # (M, T, L) alignment per step, when the context gives one
    latents: Optional[Latents] = None  # DRAW: every step's Gaussians, from which log_qz and log_pz follow
    states: Optional[Tensor] = None    # (M, T, dec_size) the generator's h^dec_t of every step, when asked for

    @property
    def bound(self) -> Tensor:
        """−L = NLL + Σ_t KL_t, ``(M,)`` nats: the loss to minimise."""
        return self.nll + self.kl.sum(1)


def _from_latents(name: str, method: str) -> property:
    """A :class:`DrawOutput` field that, left ``None`` by the model, is computed from ``latents`` on first read."""
    def get(self: DrawOutput) -> Optional[Tensor]:
        if self.__dict__.get(name) is None and self.latents is not None:
            self.__dict__[name] = getattr(self.latents, method)()
        return self.__dict__.get(name)

    def set(self: DrawOutput, value: Optional[Tensor]) -> None:
        self.__dict__[name] = value

    return property(get, set, doc=f"``{name}``, computed from ``latents`` when the model left it out")


DrawOutput.log_qz = _from_latents("log_qz", "log_q")
DrawOutput.log_pz = _from_latents("log_pz", "log_p")


@dataclass
class Generated:
    images: Tensor             # (M, C, B, A) σ(c_T) in [0, 1]
    canvases: Tensor           # (T, M, C, B, A) σ(c_t) after each step
    write: Window              # fields (M, T)
    alpha: Optional[Tensor] = None  # (M, T, L)
    states: Optional[Tensor] = None  # (M, T, dec_size) the generator's h^dec_t of every step, when asked for


class Objective(nn.Module):
    """A model and the terms that only training adds to its loss, with any weights of their own (never part of the
    bound). The trainer optimises the objective, but saves, evaluates and exports ``model`` alone: nothing
    training-only is ever part of it (:class:`minidraw.compose.CompositionObjective` is one)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.active = True       # False: the training-only terms are left out, the objective is −L alone

    def terms_state(self) -> dict[str, Tensor]:
        """The objective's own weights, without the model's: what a checkpoint keeps to resume it."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("model.")}

    def load_terms(self, terms: dict[str, Tensor]) -> None:
        """Put back weights :meth:`terms_state` gave; the model's own stay as they are."""
        self.load_state_dict({**terms, **{f"model.{k}": v for k, v in self.model.state_dict().items()}})
