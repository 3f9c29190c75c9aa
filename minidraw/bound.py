"""The variational bound, in nats: likelihood, KL terms, and an importance-weighted estimate.

DRAW is a variational autoencoder unrolled over T steps. With latents
z = (z_1 .. z_T), an approximate posterior q(z_t | x, z_<t) and a prior
p(z_t | z_<t) (alignDRAW: also given the caption y), the evidence lower bound is

    log p(x) >= L = E_q[ log p(x | z) ] - Σ_t KL( q(z_t | ·) || p(z_t | z_<t) )

and we minimise its negative, reported per image in nats:

    -L = NLL + Σ_t KL_t,      NLL = -log p(x | z)

**Likelihood.** A Bernoulli per pixel and channel with mean σ(c_T), the squashed
final canvas: -log p(x | z) = Σ BCE(σ(c_T), x). Computed from the logits c_T
(``binary_cross_entropy_with_logits``) for numerical stability; x may be
grey levels in [0, 1] (the paper's COCO), not only {0, 1}.

**KL.** Between diagonal Gaussians q = N(μ_q, σ_q²) and p = N(μ_p, σ_p²), per dimension:

    KL = log σ_p - log σ_q + (σ_q² + (μ_q - μ_p)²) / (2 σ_p²) - 1/2

**IWAE.** With K samples z^(k) ~ q, w_k = p(x, z^(k)) / q(z^(k) | x) and

    log p(x) >= L_K = log (1/K) Σ_k w_k   (Burda et al., 2016),

which is never looser than L (L_1 = L in expectation) and tightens as K grows.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log p(x | c) for Bernoulli pixels with means σ(logits), summed per image: ``(M,)`` nats.

    ``logits`` is the final canvas c_T ``(M, C, B, A)``; ``x`` the image, same shape, in [0, 1].
    """
    if logits.shape != x.shape:
        raise ValueError(f"canvas {tuple(logits.shape)} and image {tuple(x.shape)} differ in shape")
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # Σ over C, B, A


def gaussian_kl(mu_q: Tensor, logsigma_q: Tensor, mu_p: Tensor, logsigma_p: Tensor) -> Tensor:
    """KL(N(μ_q, σ_q²) || N(μ_p, σ_p²)) elementwise (same shape as the inputs), in nats."""
    var_ratio = torch.exp(2 * (logsigma_q - logsigma_p))                        # σ_q² / σ_p²
    mean_term = (mu_q - mu_p).pow(2) * torch.exp(-2 * logsigma_p)               # (μ_q − μ_p)² / σ_p²
    return logsigma_p - logsigma_q + 0.5 * (var_ratio + mean_term) - 0.5        # closed form, per dim


def gaussian_log_prob(z: Tensor, mu: Tensor, logsigma: Tensor) -> Tensor:
    """log N(z; μ, σ²) summed over the last dimension: shape ``z.shape[:-1]``."""
    return (-0.5 * LOG_2PI - logsigma - 0.5 * ((z - mu) * torch.exp(-logsigma)).pow(2)).sum(-1)


def iwae_nats(log_px_z: Tensor, log_pz: Tensor, log_qz: Tensor) -> Tensor:
    """The importance-weighted bound -L_K in nats per image, from K samples each.

    Inputs are ``(K, M)``: log p(x | z^(k)), log p(z^(k)) and log q(z^(k) | x).
    -L_K = -(logsumexp_k log w_k - log K), log w_k = log p(x|z) + log p(z) - log q(z).
    """
    log_w = log_px_z + log_pz - log_qz                                          # (K, M)
    return -(torch.logsumexp(log_w, 0) - math.log(log_w.shape[0]))              # (M,)
