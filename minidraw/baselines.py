"""The paper's baselines: conditional VAEs that draw the whole image at once from one z.

Mansimov et al. (2016) compare alignDRAW with two caption-conditioned
variational autoencoders (Kingma & Welling, 2014; Sohn et al., 2015). Both see
the caption only as the sentence vector s — the mean of the BiLSTM states,
learned jointly with the model, exactly as noalignDRAW sees it::

    h^lang = BiLSTM(y)                 (M, L, 2m)
    s      = Σ_j h^lang_j / length     (M, 2m)           the sentence vector

Then, with a single latent z (no steps: T = 1),

    (μ, log σ) = enc(x, s)             q(z | x, s) = N(μ, σ²)
    z          = μ + σ ε,  ε ~ N(0, I)
    c          = dec(z, s)             (M, C, B, A) logits; the image is σ(c)
    p(z)       = N(0, I)

    −L = −log p(x | z, s) + KL(q(z | x, s) || N(0, I))
       = Σ BCE(σ(c), x)  + Σ_i (μ_i² + σ_i² − 1)/2 − log σ_i

``kind`` picks enc and dec:

* ``fc`` (the fully-connected VAE): enc = Linear(ReLU(Linear([x; s]))),
  dec = Linear(ReLU(Linear([z; s]))), one hidden layer of ``hidden`` units each;
* ``conv`` (the conv–deconv VAE): enc = strided 4×4 convolutions that halve
  the image until its shorter side is at most 4, flattened, then [·; s] -> (μ, log σ);
  dec = [z; s] -> a linear map to that small feature map, then transposed
  convolutions mirroring the encoder back to (C, B, A) (odd sizes such as
  60 -> 30 -> 15 -> 7 -> 3 are undone exactly with ``output_padding``).

:class:`ConditionalVAE` takes the same calls as :class:`~minidraw.aligndraw.CaptionDraw`
and returns the same :class:`~minidraw.draw.DrawOutput`, with one step
(``kl (M, 1)``, ``noise (1, M, z_size)``) and no attention windows (``read`` and
``write`` are None), so the trainer, checkpoints and the retrieval evaluation
treat both alike. The paper gives no sizes for its baselines: the presets'
sizes are ours. Its third baseline, a caption-conditioned LAPGAN, is
:mod:`minidraw.lapgan`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import Tensor, nn

from .bound import bernoulli_nll, gaussian_kl, gaussian_log_prob, iwae_nats
from .outputs import ConfigDict, DrawOutput, Generated, check_images
from .text import LanguageModel, sentence_vector

KINDS = ("fc", "conv")


@dataclass
class BaselineConfig(ConfigDict):
    """Sizes of a conditional VAE baseline. The image is A wide, B high, with C channels."""

    A: int = 32             # image width
    B: int = 32             # image height
    C: int = 3              # channels
    kind: str = "fc"        # "fc" (fully connected) or "conv" (conv–deconv)
    vocab_size: int = 23    # word ids, <pad> included; 0 = set from the data's vocabulary
    embed_size: int = 128
    lang_size: int = 128    # m, per direction: the sentence vector has 2m numbers
    hidden: int = 512       # fc: hidden units of the encoder and of the decoder
    channels: int = 32      # conv: width of the first convolution (doubling, at most 4×)
    z_size: int = 100
    T: int = 1              # one latent "step": noise is (T, M, z_size) as for DRAW

    DERIVED: ClassVar[tuple[str, ...]] = ("cond_size",)

    def __post_init__(self) -> None:
        self._require(1, "A", "B", "C", "embed_size", "lang_size", "hidden", "channels", "z_size")
        self._require(0, "vocab_size")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.T != 1:
            raise ValueError(f"a baseline VAE has one latent z: T must be 1, got {self.T}")

    @property
    def cond_size(self) -> int:
        """Size of the sentence vector s."""
        return 2 * self.lang_size


# ---- encoders and decoders ------------------------------------------------------------
class FCEncoder(nn.Module):
    """[x; s] -> hidden -> (μ, log σ)."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.C * cfg.B * cfg.A + cfg.cond_size, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, 2 * cfg.z_size))

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        return self.net(torch.cat([x.flatten(1), s], -1))                      # (M, 2z)


class FCDecoder(nn.Module):
    """[z; s] -> hidden -> C·B·A logits."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.shape = (cfg.C, cfg.B, cfg.A)
        self.net = nn.Sequential(nn.Linear(cfg.z_size + cfg.cond_size, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, cfg.C * cfg.B * cfg.A))

    def forward(self, z: Tensor, s: Tensor) -> Tensor:
        return self.net(torch.cat([z, s], -1)).view(-1, *self.shape)          # (M, C, B, A)


def conv_sizes(B: int, A: int) -> list[tuple[int, int]]:
    """Feature-map sizes of the conv encoder: halve (4×4, stride 2, padding 1) until the shorter side ≤ 4.

    >>> conv_sizes(60, 60)
    [(60, 60), (30, 30), (15, 15), (7, 7), (3, 3)]
    """
    sizes = [(B, A)]
    while min(sizes[-1]) > 4:
        b, a = sizes[-1]
        sizes.append((b // 2, a // 2))
    return sizes


def conv_widths(cfg: BaselineConfig, levels: int) -> list[int]:
    """Channels at each level: C, then channels · 1, 2, 4, 4, ..."""
    return [cfg.C] + [cfg.channels * 2 ** min(i, 2) for i in range(levels)]


class ConvEncoder(nn.Module):
    """x -> strided convolutions -> flatten; [·; s] -> (μ, log σ)."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        sizes = conv_sizes(cfg.B, cfg.A)
        widths = conv_widths(cfg, len(sizes) - 1)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        flat = widths[-1] * sizes[-1][0] * sizes[-1][1]
        self.q = nn.Linear(flat + cfg.cond_size, 2 * cfg.z_size)

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        h = self.convs(x).flatten(1)                                           # (M, c·b·a)
        return self.q(torch.cat([h, s], -1))                                   # (M, 2z)


class ConvDecoder(nn.Module):
    """[z; s] -> linear -> small feature map -> transposed convolutions -> (C, B, A) logits."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        sizes = conv_sizes(cfg.B, cfg.A)
        widths = conv_widths(cfg, len(sizes) - 1)
        self.start = (widths[-1], *sizes[-1])                                  # (c, b, a) of the smallest map
        self.fc = nn.Linear(cfg.z_size + cfg.cond_size, widths[-1] * sizes[-1][0] * sizes[-1][1])
        layers: list[nn.Module] = []
        for i in reversed(range(len(sizes) - 1)):                               # size_{i+1} -> size_i
            (b, a), (b2, a2) = sizes[i], sizes[i + 1]
            pad = (b - 2 * b2, a - 2 * a2)                                     # 1 where the encoder floored
            layers += [nn.ReLU(), nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1,
                                                     output_padding=pad)]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: Tensor, s: Tensor) -> Tensor:
        h = self.fc(torch.cat([z, s], -1)).view(-1, *self.start)               # (M, c, b, a)
        return self.deconvs(h)                                                 # (M, C, B, A)


# ---- the model ---------------------------------------------------------------------------
class ConditionalVAE(nn.Module):
    """The fully-connected or conv–deconv VAE, conditioned on the caption's sentence vector."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.language = LanguageModel(cfg.vocab_size, cfg.embed_size, cfg.lang_size)
        if cfg.kind == "fc":
            self.encoder, self.decoder = FCEncoder(cfg), FCDecoder(cfg)
        else:
            self.encoder, self.decoder = ConvEncoder(cfg), ConvDecoder(cfg)

    @property
    def decoder_dtype(self) -> torch.dtype:
        """The floating type of the model's weights (the images' must match)."""
        return next(self.decoder.parameters()).dtype

    def sentence(self, captions: Optional[Tensor], lengths: Optional[Tensor],
                 sentence: Optional[Tensor] = None) -> Tensor:
        """s ``(M, 2m)``: ``sentence`` when given (already a sentence vector), else from the captions."""
        if sentence is not None:
            if sentence.shape[-1] != self.cfg.cond_size:
                raise ValueError(f"a sentence vector has {self.cfg.cond_size} numbers, got {sentence.shape[-1]}")
            return sentence
        if captions is None or lengths is None:
            raise ValueError("a baseline VAE needs captions (M, L) and their lengths (M,)")
        h_lang, mask = self.language(captions, lengths)                        # (M, L, 2m), (M, L)
        return sentence_vector(h_lang, mask)                                    # s = Σ_j h^lang_j / length

    def encode(self, images: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ) of q(z | x, s), each ``(M, z_size)``."""
        cfg = self.cfg
        if images.shape[1:] != (cfg.C, cfg.B, cfg.A):
            raise ValueError(f"images of shape {tuple(images.shape[1:])}, this model draws {(cfg.C, cfg.B, cfg.A)}")
        mu, logsigma = self.encoder(images, s).chunk(2, -1)                     # (M, z) each
        return mu, logsigma

    def forward(self, images: Tensor, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                sentence: Optional[Tensor] = None, keep_canvases: bool = False,
                noise: Optional[Tensor] = None) -> DrawOutput:
        """One sample of the bound of ``images (M, C, B, A)`` in [0, 1] given their captions.

        ``noise (1, M, z_size)`` fixes ε in z = μ + σ ε (drawn when not given).
        """
        cfg = self.cfg
        check_images(images, (cfg.C, cfg.B, cfg.A), self.decoder_dtype)
        M = images.shape[0]
        if noise is not None and noise.shape != (1, M, self.cfg.z_size):
            raise ValueError(f"noise must have shape {(1, M, self.cfg.z_size)}, got {tuple(noise.shape)}")
        s = self.sentence(captions, lengths, sentence)                          # (M, 2m)
        mu, logsigma = (t.to(images.dtype) for t in self.encode(images, s))     # q(z | x, s) = N(μ, σ²)
        # under bf16 autocast the networks give bf16: the bound is scored in the images' precision, as DRAW's
        eps = torch.randn_like(mu) if noise is None else noise[0]
        z = mu + torch.exp(logsigma) * eps                                      # z = μ + σ ε  (M, z)
        zeros = torch.zeros_like(mu)                                            # p(z) = N(0, I)
        canvas = self.decoder(z, s).to(images.dtype)                            # c (M, C, B, A) logits
        return DrawOutput(canvas=canvas, nll=bernoulli_nll(canvas, images),     # −log p(x | z, s) (M,)
                          kl=gaussian_kl(mu, logsigma, zeros, zeros).sum(-1, keepdim=True),  # (M, 1)
                          log_qz=gaussian_log_prob(z, mu, logsigma),            # log q(z | x, s) (M,)
                          log_pz=gaussian_log_prob(z, zeros, zeros),            # log p(z) (M,)
                          read=None, write=None,
                          canvases=canvas[None] if keep_canvases else None)     # (1, M, C, B, A)

    @torch.no_grad()
    def iwae(self, images: Tensor, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
             sentence: Optional[Tensor] = None, K: int = 50) -> Tensor:
        """−L_K in nats per image ``(M,)`` from K posterior samples, given the captions."""
        M = images.shape[0]
        s = self.sentence(captions, lengths, sentence).repeat(K, 1)            # (K·M, 2m), k-major
        out = self(images.repeat(K, 1, 1, 1), sentence=s)
        view = lambda v: v.view(K, M)  # noqa: E731
        return iwae_nats(view(-out.nll), view(out.log_pz), view(out.log_qz))

    @torch.no_grad()
    def generate(self, captions: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                 sentence: Optional[Tensor] = None, M: Optional[int] = None, temperature: float = 1.0) -> Generated:
        """Draw one image per caption (``M`` of a single caption): z ~ N(0, temperature² I), image = σ(dec(z, s))."""
        s = self.sentence(captions, lengths, sentence)                          # (M, 2m)
        if M is not None and M != len(s):
            if len(s) != 1:
                raise ValueError(f"M = {M} images asked for, but {len(s)} captions given")
            s = s.expand(M, -1)                                                 # one caption, M drawings
        z = temperature * torch.randn(len(s), self.cfg.z_size, device=s.device, dtype=s.dtype)  # z ~ p(z)
        images = torch.sigmoid(self.decoder(z, s))                              # (M, C, B, A)
        return Generated(images=images, canvases=images[None], write=None)      # canvases (1, M, C, B, A)
