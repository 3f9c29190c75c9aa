"""The optimiser, the learning-rate schedule, per-parameter clipping and weight averaging, as the released
alignDRAW code and the trainer use them (:mod:`minidraw.train`).

The released code trains with RMSProp (decay 0.9, ε 1e-6) and clips every parameter's gradient to L2 norm 10
on its own; Adam is offered too. The rate warms up linearly and then stays or follows a half cosine.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .configs import TrainConfig


def make_optimizer(name: str, params, lr: float, beta1: float = 0.9) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-6)
    if name == "adam":
        if not 0 <= beta1 < 1:
            raise ValueError(f"beta1 (Adam's β₁) must lie in [0, 1), got {beta1}")
        return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999))
    raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {name!r}")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of step ``step`` (1-based): a linear warm-up over ``warmup_steps``, then
    constant, or a half cosine from ``lr`` down to ``lr · lr_min`` at ``max_steps``::

        η_k = η_min + (η − η_min) · ½ (1 + cos(π k / K))        (Loshchilov & Hutter, 2017)
    """
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {cfg.lr_schedule!r}")
    warm = min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.lr_schedule == "constant":
        return cfg.lr * warm
    progress = min(1.0, max(0, step - 1) / max(1, cfg.max_steps - 1))     # 0 at the first step, 1 at the last
    low = cfg.lr * cfg.lr_min
    return warm * (low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * progress)))


def weight_average(model, decay: float) -> Optional[AveragedModel]:
    """``ema`` > 0: the exponential moving average of the weights (Polyak averaging), one update after every
    optimiser step — ``None`` when ``decay`` is 0::

        θ̄_1 = θ_1,    θ̄_k = d · θ̄_{k−1} + (1 − d) · θ_k            (d = decay; about 1 / (1 − d) steps' memory)

    The trained weights θ_k wander about a valley floor from step to step; θ̄ is their centre, and what a run
    evaluates, checkpoints as its model and exports (torch.optim.swa_utils.AveragedModel)."""
    if not decay:
        return None
    if not 0 < decay < 1:
        raise ValueError(f"ema (the average's decay) must lie in [0, 1), got {decay}")
    return AveragedModel(unwrap(model), multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def unwrap(model):
    """The model inside torch.compile and DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def clip_each(params, max_norm: float) -> None:
    """Clip every parameter's gradient to L2 norm ``max_norm`` on its own (the released code's rule)."""
    for p in params:
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_(p, max_norm)
