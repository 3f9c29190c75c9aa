"""The LAPGAN baseline (the paper's LAPGAN row): a caption-conditioned two-level Laplacian-pyramid GAN.

Mansimov et al. (2016) compare alignDRAW with a LAPGAN (Denton et al., 2015) conditioned on the
caption. Its finer level is the sharpener (:class:`~minidraw.sharpen.Sharpener`); this module adds
the coarse level, :class:`LapGan`, a conditional GAN that draws the picture at half size,
b×a = ⌈B/2⌉×⌈A/2⌉, from noise and the caption — fully connected, as LAPGAN's coarsest levels
were — trained on ``d(x)`` with the sharpener's loss, R1 penalty and one-step arrangement
(:func:`~minidraw.sharpen.gan_losses`)::

    x₀ = G₀([z ; s(y)])                    z ~ N(0, I), x₀ in R^(C×b×a), clipped to [0, 1] to draw
    L_D₀ = −log σ(D₀(d(x), y)) − log(1 − σ(D₀(x₀, y))),   L_G₀ = −log σ(D₀(x₀, y))

A sample is ``u(x₀)``, the upsampled coarse picture; :class:`LapGanPyramid` hands it to a sharpener
as l, which adds the finer level. Like the paper's LAPGAN it has no likelihood, so no bound: it is
measured by SSI and caption fidelity only.

Shapes: M images, C channels, B rows (height) and A columns (width); b×a the coarse level's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .outputs import ConfigDict
from .sharpen import GanOutput, Sharpener, check_shape, downsample, gan_losses, gan_test_metrics, upsample
from .text import LanguageModel, sentence_vector


@dataclass(repr=False)
class LapGanConfig(ConfigDict):
    """The LAPGAN baseline's coarse level: a fully connected caption-conditioned GAN at half the size."""

    A: int = 32             # width of the full picture (the coarse level is ⌈A/2⌉ wide)
    B: int = 32             # height (⌈B/2⌉ at the coarse level)
    C: int = 3              # channels
    vocab_size: int = 0     # word ids, <pad> included (0: set by the data)
    embed_size: int = 32
    lang_size: int = 64     # m per direction: s(y) has 2m numbers
    z_size: int = 64        # G₀'s noise
    g_hidden: int = 512     # units of G₀'s two hidden layers
    d_hidden: int = 256     # units of D₀'s hidden layer
    r1: float = 1.0         # γ of the R1 penalty on real coarse pictures; 0: none

    def __post_init__(self) -> None:
        self._require(2, "A", "B")
        self._require(1, "C", "embed_size", "lang_size", "z_size", "g_hidden", "d_hidden")
        self._require(0, "vocab_size")
        if not self.r1 >= 0:
            raise ValueError(f"r1 must be 0 or more, got {self.r1}")

    @property
    def coarse(self) -> tuple[int, int, int]:
        """(C, b, a): the coarse level's shape, what 2×2 average pooling leaves of (C, B, A)."""
        return self.C, -(-self.B // 2), -(-self.A // 2)

    def __repr__(self) -> str:
        return f"LapGanConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


@dataclass
class GanSamples:
    """What :meth:`LapGan.generate` and :meth:`LapGanPyramid.generate` draw."""

    images: Tensor           # (M, C, B, A) u(x₀) in [0, 1] (sharpened, from the pyramid)
    coarse: Tensor           # (M, C, b, a) x₀ clipped to [0, 1]


class CoarseGenerator(nn.Module):
    """G₀([z ; s(y)]) -> x₀ ``(M, C, b, a)``: two hidden ReLU layers and a linear output, clipped to [0, 1]
    only when drawing — as in the sharpener, D sees values outside the range and pushes G back, where a
    sigmoid would saturate and G would stall on a black picture (it did)."""

    def __init__(self, cfg: LapGanConfig) -> None:
        super().__init__()
        self.shape, h = cfg.coarse, cfg.g_hidden
        self.language = LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size)
        self.net = nn.Sequential(nn.Linear(cfg.z_size + 2 * cfg.lang_size, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                 nn.Linear(h, cfg.C * self.shape[1] * self.shape[2]))

    def forward(self, z: Tensor, captions: Tensor, lengths: Tensor) -> Tensor:
        s = sentence_vector(*self.language(captions, lengths))             # (M, 2m)  s(y)
        return self.net(torch.cat([z, s], -1)).view(-1, *self.shape)       # (M, C, b, a), unclipped


class CoarseDiscriminator(nn.Module):
    """D₀([x₀ ; s'(y)]) -> one logit per example ``(M,)``: a hidden LeakyReLU layer."""

    def __init__(self, cfg: LapGanConfig) -> None:
        super().__init__()
        C, b, a = cfg.coarse
        self.language = LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size)
        self.net = nn.Sequential(nn.Linear(C * b * a + 2 * cfg.lang_size, cfg.d_hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(cfg.d_hidden, 1))

    def forward(self, image: Tensor, captions: Tensor, lengths: Tensor) -> Tensor:
        s = sentence_vector(*self.language(captions, lengths))             # (M, 2m)  s'(y)
        return self.net(torch.cat([image.flatten(1), s], -1)).squeeze(-1)  # (M,)


class LapGan(nn.Module):
    """The LAPGAN baseline's coarse level: :meth:`forward` is one GAN step's losses on real pictures
    (pooled to the coarse size); :meth:`generate` draws ``u(x₀)`` for captions — give it to a
    :class:`~minidraw.sharpen.Sharpener` (``sharpen``) for the finer level."""

    def __init__(self, cfg: LapGanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.G = CoarseGenerator(cfg)
        self.D = CoarseDiscriminator(cfg)

    def _check(self, images: Tensor) -> None:
        check_shape(images, self.cfg, "LAPGAN")

    def forward(self, images: Tensor, captions: Tensor, lengths: Tensor) -> GanOutput:
        """The losses of one step on real ``images (M, C, B, A)`` in [0, 1] and their captions."""
        self._check(images)
        real = downsample(images)                                          # (M, C, b, a)  d(x)
        z = torch.randn(images.shape[0], self.cfg.z_size, device=images.device, dtype=images.dtype)
        fake = self.G(z, captions, lengths)                                # (M, C, b, a)  x₀
        return gan_losses(self.D, real, fake, (captions, lengths), self.cfg.r1)

    @torch.no_grad()
    def test_metrics(self, batches) -> dict[str, float]:
        """``test_d_loss``, ``test_g_loss``, ``test_d_acc_real``, ``test_d_acc_fake`` on held-back batches."""
        return gan_test_metrics(self, batches)

    @torch.no_grad()
    def generate(self, captions: Tensor, lengths: Tensor, sentence: None = None, temperature: float = 1.0) -> GanSamples:
        """One picture per caption: x₀ = G₀(z, y) with z ~ N(0, τ² I), and u(x₀) at full size. (``sentence``:
        unused, for the drawing models' signature.)"""
        z = torch.randn(captions.shape[0], self.cfg.z_size, device=captions.device) * temperature
        coarse = self.G(z.to(next(self.parameters()).dtype), captions, lengths).clamp(0, 1)   # (M, C, b, a)
        return GanSamples(upsample(coarse, (self.cfg.B, self.cfg.A)).clamp(0, 1), coarse)     # u(x₀)


class LapGanPyramid(nn.Module):
    """The LAPGAN baseline as one drawing model: the coarse level :class:`LapGan`, then a
    :class:`~minidraw.sharpen.Sharpener` of the same data for the finer level. ``generate`` draws; there is
    no bound (its kind in :mod:`minidraw.models` says so)."""

    def __init__(self, coarse: LapGan, sharpener: Sharpener) -> None:
        super().__init__()
        shape = lambda c: (c.C, c.B, c.A)                                 # noqa: E731
        if shape(coarse.cfg) != shape(sharpener.cfg):
            raise ValueError(f"the coarse level draws {'×'.join(map(str, shape(coarse.cfg)))} pictures but the "
                             f"sharpener takes {'×'.join(map(str, shape(sharpener.cfg)))}: give both of one data set")
        self.coarse, self.sharpener, self.cfg = coarse, sharpener, coarse.cfg

    @torch.no_grad()
    def generate(self, captions: Tensor, lengths: Tensor, sentence: None = None, temperature: float = 1.0) -> GanSamples:
        """``sharpen(u(x₀))``: the coarse picture upsampled, then the finer level added."""
        low = self.coarse.generate(captions, lengths, temperature=temperature)
        return GanSamples(self.sharpener.sharpen(low.images, captions, lengths), low.coarse)
