"""Named presets: the papers' hyper-parameters for GPUs, and small ones for a laptop CPU."""
from __future__ import annotations

from .draw import DrawConfig

PRESETS: dict[str, DrawConfig] = {
    # Gregor et al. (2015), binarised MNIST with attention: 28×28, 64 steps, read 2×2, write 5×5,
    # 256-unit LSTMs, 100-d z, N(0, I) prior. Their bound: −log p(x) ≤ 80.97 nats.
    "draw_mnist_paper": DrawConfig(A=28, B=28, C=1, T=64, read_N=2, write_N=5, enc_size=256, dec_size=256,
                                   z_size=100, learned_prior=False),
    # A DRAW that draws recognisable digits after a few minutes on a 2-core CPU. A 5×5 read (not
    # 2×2) gets it off the "average digit" plateau (~206 nats) within the first minute.
    "draw_mnist_small": DrawConfig(A=28, B=28, C=1, T=10, read_N=5, write_N=5, enc_size=128, dec_size=128,
                                   z_size=10, learned_prior=True),
}


def preset(name: str) -> DrawConfig:
    """A copy of preset ``name`` (edit it freely)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return DrawConfig.from_dict(PRESETS[name].to_dict())
