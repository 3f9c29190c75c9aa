"""Adversarial sharpening: a caption-conditioned LAPGAN step that adds back the edges.

alignDRAW's pictures are blurry by construction: the final canvas is a Bernoulli *mean*,
and a mean over many plausible digits is soft. The paper sharpens its samples with
one level of a Laplacian-pyramid GAN (Denton et al., 2015). One pyramid level splits an
image ``x`` into a low-pass part and the detail it lacks::

    l = u(d(x))          d: 2×2 average pooling, u: bilinear upsampling back to B×A
    h = x − l            the residual ("high-pass"), so that  x = l + h  exactly

A generator G learns to produce a plausible residual for a blurry image, given the
caption and noise; a discriminator D learns to tell real pairs ``(l + h, l)`` from
generated ones ``(l + G(l, y, n), l)``. No reconstruction cost ties G's residual to
any one true image — that is why the edges come out sharp rather than averaged (the
optional L1 term below adds one back, for blurry images that have one right answer).

**Networks** (sizes default to the released generator's: 3 convolutions, kernels
7, 7, 5 and 128, 128, C filters, ReLU between)::

    G([n ; P s(y) ; l]) → ĥ       n: a noise channel, s(y): the caption's sentence vector
                                   (its own BiLSTM), P: a linear map to one B×A channel
    D([x ; l ; P' s'(y)]) → logit  strided convolutions, then a linear layer

**Objective**: the non-saturating GAN loss (Goodfellow et al., 2014), the one LAPGAN
and most later work use because G's gradient does not vanish when D wins early::

    L_D = −log σ(D(x, l, y)) − log(1 − σ(D(x̃, l, y)))      x̃ = l + ĥ
    L_G = −log σ(D(x̃, l, y))

**L1** (optional, ``l1 = λ > 0``; pix2pix, Isola et al., 2017)::

    L_G += λ · mean_pixels |x̃ − x|

A pyramid's l is x's own blurry copy, so the sharpened image has one right answer, up to texture.
The L1 term pulls G towards it: colours and flat backgrounds stay put, which the adversarial loss
alone does not promise. D still judges the edges, which L1 alone would leave soft (an L1-optimal
image is a median, as blurry as it dares).

(x̃ is clipped to [0, 1] only when sharpening: clipped in training, a residual that strays
out of range gets no gradient back.)

**R1** (Mescheder et al., 2018): D's gradient with respect to real images is penalised,
``L_D += (γ/2) |∇_x D(x, l, y)|²``, so that D cannot make its decision arbitrarily steep
around the real images. Without it the small D wins within a few hundred steps (it is right on
every real and every sharpened image) and G learns little. G's last layer starts at zero, so
training starts from ``x̃ = l``: no residual, and D's first task is the real one.

**One optimiser step for both players.** The trainer takes one loss and one step for
every model. :class:`Sharpener` returns ``L_D + L_G`` per example, arranged so that
L_D's gradient reaches only D (x̃ is detached) and L_G's reaches only G (D's weights
enter L_G detached, through :func:`torch.func.functional_call`): one backward pass
then gives each player the gradient of its own loss, and the optimiser updates both
at once — simultaneous gradient descent, a standard way to train GANs.

The paper's LAPGAN baseline stacks a coarse GAN under this level: :mod:`minidraw.lapgan`, built from
the pyramid operations, the losses and :class:`Sharpener` here.

Shapes: M images, C channels, B rows (height) and A columns (width), as everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .outputs import ConfigDict
from .runtime import evaluating
from .text import LanguageModel, sentence_vector


# ---- one level of a Laplacian pyramid ----------------------------------------------------------
def downsample(x: Tensor) -> Tensor:
    """d(x): 2×2 average pooling, ``(M, C, B, A)`` -> ``(M, C, ⌈B/2⌉, ⌈A/2⌉)`` (odd sizes pad by
    replicating the last row / column)."""
    B, A = x.shape[-2:]
    if B % 2 or A % 2:
        x = F.pad(x, (0, A % 2, 0, B % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """u(x): bilinear upsampling to ``size = (B, A)``."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def low_pass(x: Tensor) -> Tensor:
    """l = u(d(x)): the blurry image a pyramid level keeps, ``(M, C, B, A)``."""
    return upsample(downsample(x), tuple(x.shape[-2:]))


def pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """The Laplacian pyramid of ``x``: ``levels`` residuals h_k = x_k − u(x_{k+1}), finest first,
    then the coarsest image x_levels (each level half the size of the one before)."""
    out = []
    for _ in range(levels):
        small = downsample(x)
        out.append(x - upsample(small, tuple(x.shape[-2:])))             # h_k  (M, C, B_k, A_k)
        x = small
    return out + [x]


def reconstruct(levels: list[Tensor]) -> Tensor:
    """Invert :func:`pyramid`: x_k = u(x_{k+1}) + h_k from the coarsest level up."""
    x = levels[-1]
    for h in reversed(levels[:-1]):
        x = upsample(x, tuple(h.shape[-2:])) + h
    return x


def check_shape(images: Tensor, cfg, what: str) -> None:
    """``ValueError`` naming the shape wanted unless ``images`` are ``(M, C, B, A)`` of ``cfg``'s sizes."""
    want = (cfg.C, cfg.B, cfg.A)
    if images.dim() != 4 or tuple(images.shape[1:]) != want:
        raise ValueError(f"images must have shape (M, C, B, A) = (M, {want[0]}, {want[1]}, {want[2]}) for this "
                         f"{what}, got {tuple(images.shape)}")


# ---- configuration and networks -----------------------------------------------------------------
@dataclass(repr=False)
class SharpenConfig(ConfigDict):
    """A caption-conditioned one-level LAPGAN. The defaults are the released generator's sizes."""

    A: int = 32             # width
    B: int = 32             # height
    C: int = 3              # channels
    vocab_size: int = 0     # word ids, <pad> included (0: set by the data, e.g. COCO's vocabulary)
    embed_size: int = 32
    lang_size: int = 64     # m per direction: the sentence vector has 2m numbers
    g_hidden: int = 128     # filters of G's two hidden convolutions
    g_kernel: int = 7       # their kernel size
    g_last_kernel: int = 5  # the kernel of G's output convolution (C filters)
    d_hidden: int = 64      # filters of D's first convolution (its second has twice as many)
    r1: float = 1.0         # γ of the R1 penalty (γ/2)·|∇_x D(x)|² on real images; 0: none
    # λ of an L1 term tying the sharpened image to the real one, L_G += λ · mean |x̃ − x| (pix2pix, Isola et
    # al., 2017); 0: the pure adversarial objective of LAPGAN. As l comes from x, x̃ has one right answer
    # up to its texture, and the L1 term pulls G to it while D keeps the edges hard
    l1: float = 0.0

    # l = u(d(x)) always: files from before stored blur="pyramid" and an empty drawer beside it
    WITHDRAWN: ClassVar[dict[str, object]] = {"blur": "pyramid", "drawer": ""}

    def __post_init__(self) -> None:
        self._require(1, "A", "B", "C", "embed_size", "lang_size", "g_hidden", "g_kernel", "g_last_kernel",
                      "d_hidden")
        self._require(0, "vocab_size")
        if not self.r1 >= 0:
            raise ValueError(f"r1 must be 0 or more, got {self.r1}")
        if not self.l1 >= 0:
            raise ValueError(f"l1 must be 0 or more, got {self.l1}")
        for name in ("g_kernel", "g_last_kernel"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd (a 'same' convolution), got {getattr(self, name)}")

    def __repr__(self) -> str:
        return f"SharpenConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


class CaptionMap(nn.Module):
    """The caption as one image-sized channel: ``P s(y)``, reshaped to ``(M, 1, B, A)``."""

    def __init__(self, cfg: SharpenConfig) -> None:
        super().__init__()
        self.B, self.A = cfg.B, cfg.A
        self.language = LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size)
        self.project = nn.Linear(2 * cfg.lang_size, cfg.B * cfg.A)

    def forward(self, captions: Tensor, lengths: Tensor) -> Tensor:
        s = sentence_vector(*self.language(captions, lengths))            # (M, 2m)  s(y)
        return self.project(s).view(-1, 1, self.B, self.A)                 # (M, 1, B, A)  P s(y)


class Generator(nn.Module):
    """G([n ; P s(y) ; l]) -> the residual ĥ ``(M, C, B, A)``: three 'same' convolutions."""

    def __init__(self, cfg: SharpenConfig) -> None:
        super().__init__()
        k, k3, h = cfg.g_kernel, cfg.g_last_kernel, cfg.g_hidden
        self.caption = CaptionMap(cfg)
        self.net = nn.Sequential(
            nn.Conv2d(cfg.C + 2, h, k, padding=k // 2), nn.ReLU(),
            nn.Conv2d(h, h, k, padding=k // 2), nn.ReLU(),
            nn.Conv2d(h, cfg.C, k3, padding=k3 // 2))
        nn.init.zeros_(self.net[-1].weight), nn.init.zeros_(self.net[-1].bias)   # start from ĥ = 0: x̃ = l

    def forward(self, blurry: Tensor, captions: Tensor, lengths: Tensor, noise: Tensor) -> Tensor:
        inputs = torch.cat([noise, self.caption(captions, lengths), blurry], 1)  # (M, C+2, B, A)
        return self.net(inputs)                                                   # (M, C, B, A)  ĥ


class Discriminator(nn.Module):
    """D([x ; l ; P' s'(y)]) -> one logit per example ``(M,)``: is x the real image behind l?"""

    def __init__(self, cfg: SharpenConfig) -> None:
        super().__init__()
        d = cfg.d_hidden
        self.caption = CaptionMap(cfg)
        self.net = nn.Sequential(
            nn.Conv2d(2 * cfg.C + 1, d, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(d, 2 * d, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Flatten())
        side = lambda n: (((n + 1) // 2) + 1) // 2                         # noqa: E731 - two stride-2 convs
        self.out = nn.Linear(2 * d * side(cfg.B) * side(cfg.A), 1)

    def forward(self, image: Tensor, blurry: Tensor, captions: Tensor, lengths: Tensor) -> Tensor:
        inputs = torch.cat([image, blurry, self.caption(captions, lengths)], 1)  # (M, 2C+1, B, A)
        return self.out(self.net(inputs)).squeeze(-1)                            # (M,)  logit


@dataclass
class GanOutput:
    """One training step's losses per example ``(M,)``; ``loss = d_loss + g_loss`` is what the
    trainer minimises (each player's gradient reaches only that player)."""

    loss: Tensor         # (M,)  L_D + L_G
    d_loss: Tensor       # (M,)  L_D
    g_loss: Tensor       # (M,)  L_G
    d_real: Tensor       # (M,)  D's logit on the real image
    d_fake: Tensor       # (M,)  D's logit on the sharpened one
    l1: Optional[Tensor] = None   # (M,)  mean |x̃ − x| per image, when the objective has the L1 term

    def metrics(self) -> dict[str, float]:
        """Batch means for the training log: the two losses, D's accuracy on real and fake, and the L1
        distance of the sharpened images from the real ones where the objective has it."""
        out = {"d_loss": self.d_loss.mean().item(), "g_loss": self.g_loss.mean().item(),
               "d_acc_real": (self.d_real > 0).float().mean().item(),
               "d_acc_fake": (self.d_fake < 0).float().mean().item()}
        if self.l1 is not None:
            out["l1"] = self.l1.mean().item()
        return out


# ---- one GAN step's losses, shared with the LAPGAN baseline (minidraw.lapgan) ---------------------
def gan_test_metrics(model: nn.Module, batches) -> dict[str, float]:
    """A GAN's training-log numbers on held-back ``batches`` in eval mode with fixed noise."""
    with evaluating(model, 0) as dev:
        outs = [model(*(a.to(dev) for a in b)) for b in batches]
    cat = lambda name: torch.cat([getattr(o, name) for o in outs]).float()  # noqa: E731
    joined = GanOutput(*(cat(f.name) for f in fields(GanOutput) if f.name != "l1"),
                       l1=cat("l1") if outs[0].l1 is not None else None)
    return {f"test_{k}": v for k, v in joined.metrics().items()}           # the training log's numbers, held back


def gan_losses(D: nn.Module, real: Tensor, fake: Tensor, cond: tuple, r1: float) -> GanOutput:
    """The non-saturating losses with R1 and the one-step arrangement (see the module's docstring): L_D
    reaches only D (``fake`` detached), L_G only the generator (D's weights detached)."""
    penalise = r1 > 0 and torch.is_grad_enabled()
    real = real.detach().requires_grad_(True) if penalise else real
    d_real = D(real, *cond)                                               # (M,)
    d_fake = D(fake.detach(), *cond)                                      # (M,)  no gradient to G
    frozen = {k: v.detach() for k, v in D.named_parameters()}
    d_fake_g = functional_call(D, frozen, (fake, *cond))                  # (M,)  none to D
    d_loss = F.softplus(-d_real) + F.softplus(d_fake)                     # −log σ(D(x)) − log(1 − σ(D(x̃)))
    if penalise:                                                          # R1: (γ/2) |∇_x D(x)|²
        grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        d_loss = d_loss + 0.5 * r1 * grad.pow(2).flatten(1).sum(1)
    g_loss = F.softplus(-d_fake_g)                                        # −log σ(D(x̃))
    return GanOutput(d_loss + g_loss, d_loss, g_loss, d_real.detach(), d_fake.detach())


class Sharpener(nn.Module):
    """The caption-conditioned sharpener: :meth:`forward` is one GAN training step's losses on real
    images; :meth:`sharpen` adds a generated residual to blurry images (e.g. alignDRAW's samples)."""

    def __init__(self, cfg: SharpenConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.G = Generator(cfg)
        self.D = Discriminator(cfg)

    def noise(self, like: Tensor) -> Tensor:
        """n: one channel of uniform noise in [−1, 1], ``(M, 1, B, A)``."""
        return torch.rand(like.shape[0], 1, *like.shape[-2:], device=like.device, dtype=like.dtype) * 2 - 1

    def _check(self, images: Tensor) -> None:
        check_shape(images, self.cfg, "sharpener")

    def forward(self, images: Tensor, captions: Tensor, lengths: Tensor) -> GanOutput:
        """The losses of one step on real ``images (M, C, B, A)`` in [0, 1] and their captions."""
        self._check(images)
        blurry = low_pass(images)                                          # (M, C, B, A)  l = u(d(x))
        fake = blurry + self.G(blurry, captions, lengths, self.noise(images))   # x̃ = l + ĥ, unclipped: D sees
        # values outside [0, 1] and pushes G back — a clip here would give G no gradient there (a G that
        # strays below 0 everywhere would draw black and never recover)
        out = gan_losses(self.D, images, fake, (blurry, captions, lengths), self.cfg.r1)
        if self.cfg.l1 > 0:                                               # λ · mean |x̃ − x|, G's alone
            distance = (fake - images).abs().flatten(1).mean(1)            # (M,)
            out.g_loss, out.loss = out.g_loss + self.cfg.l1 * distance, out.loss + self.cfg.l1 * distance
            out.l1 = distance.detach()
        return out

    @torch.no_grad()
    def test_metrics(self, batches) -> dict[str, float]:
        """The training log's numbers on held-back ``batches`` of ``(images, captions, lengths)``, in eval
        mode with fixed noise: ``test_d_loss``, ``test_g_loss``, ``test_d_acc_real``, ``test_d_acc_fake``."""
        return gan_test_metrics(self, batches)

    @torch.no_grad()
    def sharpen(self, images: Tensor, captions: Tensor, lengths: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        """Sharpened ``images (M, C, B, A)`` in [0, 1]: ``clip(l + G(l, y, n), 0, 1)`` with the blurry
        images themselves as l — as LAPGAN applies a level to the upsampled coarser image, we apply it
        to alignDRAW's sample. A G that outputs zero leaves the images as they are."""
        self._check(images)
        blurry = images.float()
        noise = self.noise(blurry) if noise is None else noise
        return (blurry + self.G(blurry, captions, lengths, noise)).clamp(0, 1)
