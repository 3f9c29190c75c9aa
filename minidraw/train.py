"""Training DRAW on binarised MNIST: the loop the DRAW chapter runs.

    python -m minidraw.train --preset draw_mnist_small --minutes 3 --out runs/draw_small

Optimiser as in the authors' released code: RMSProp (decay 0.9, eps 1e-6) with
every parameter's gradient clipped to L2 norm 10; Adam is offered too. The loss
is the negative bound −L in nats per image, averaged over the batch.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .configs import preset
from .data.mnist import binarize, digit_pools
from .draw import Draw, DrawConfig


@dataclass
class TrainConfig:
    preset: str = "draw_mnist_small"
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"      # "adam" or "rmsprop"
    clip: float = 10.0           # per-parameter gradient norm
    max_steps: int = 1_000_000
    max_minutes: float = 3.0
    seed: int = 0


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-6)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {name!r}")


def clip_each(params, max_norm: float) -> None:
    """Clip every parameter's gradient to L2 norm ``max_norm`` on its own (the released code's rule)."""
    for p in params:
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_(p, max_norm)


def mnist_binarized(root=None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fixed-binarised training and test digits ``(n, 1, 28, 28)`` and where they came from."""
    pools = digit_pools(root)
    return (torch.from_numpy(binarize(pools.train_images, seed=0)),
            torch.from_numpy(binarize(pools.test_images, seed=1)), pools.source)


@torch.no_grad()
def dataset_bound(model: Draw, images: torch.Tensor, batch_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """Mean −L in nats per image over ``images``, and its standard error."""
    model.eval()
    torch.manual_seed(seed)
    values = torch.cat([model(images[i:i + batch_size]).bound for i in range(0, len(images), batch_size)])
    model.train()
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


def fit(model: Draw, train: torch.Tensor, cfg: TrainConfig, progress: bool = True) -> list[dict]:
    """Train on random minibatches of ``train`` until ``max_steps`` or ``max_minutes``; returns the log.

    ``train`` and ``model`` must be on the same device (a GPU trains far faster).
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    log, start, running = [], time.perf_counter(), None
    bar = tqdm(total=cfg.max_steps if cfg.max_steps < 1_000_000 else None, disable=not progress, unit="step")
    for step in range(1, cfg.max_steps + 1):
        x = train[torch.randint(len(train), (cfg.batch_size,), generator=gen).to(train.device)]
        loss = model(x).bound.mean()                        # −L, nats per image
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the bound became {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_each(model.parameters(), cfg.clip)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        elapsed = time.perf_counter() - start
        log.append({"step": step, "bound": loss.item(), "seconds": elapsed})
        bar.update()
        bar.set_postfix(bound=f"{running:.1f}")
        if elapsed > 60 * cfg.max_minutes:
            break
    bar.close()
    return log


def save(path: str | os.PathLike, model: Draw, extra: dict | None = None) -> None:
    """Write ``{"config", "model", ...}`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict(), **(extra or {})}, tmp)
    os.replace(tmp, path)


def load(path: str | os.PathLike, map_location="cpu") -> tuple[Draw, dict]:
    """A model from a checkpoint, loaded with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        model = Draw(DrawConfig.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m minidraw.train --out {path}`")
    except Exception as e:
        raise RuntimeError(f"{path} is not a readable minidraw checkpoint ({type(e).__name__}: {e}); "
                           "train again or fetch the file again") from e
    return model, ckpt


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=TrainConfig.preset)
    p.add_argument("--minutes", type=float, default=TrainConfig.max_minutes)
    p.add_argument("--steps", type=int, default=TrainConfig.max_steps)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--optimizer", default=TrainConfig.optimizer, choices=["adam", "rmsprop"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="folder with the MNIST IDX files (default: $MINIDRAW_DATA/mnist or download)")
    p.add_argument("--out", help="write the checkpoint here (a .pt file)")
    a = p.parse_args(argv)
    cfg = TrainConfig(a.preset, a.batch_size, a.lr, a.optimizer, max_steps=a.steps, max_minutes=a.minutes, seed=a.seed)
    train, test, source = mnist_binarized(a.data)
    print(source)
    torch.manual_seed(cfg.seed)
    model = Draw(preset(cfg.preset))
    log = fit(model, train, cfg)
    mean, se = dataset_bound(model, test)
    print(f"{cfg.preset}: {len(log)} steps in {log[-1]['seconds'] / 60:.1f} min; "
          f"test bound −L = {mean:.2f} ± {se:.2f} nats ({len(test)} binarised test digits)")
    if a.out:
        save(a.out, model, {"train": asdict(cfg), "log": [[r["step"], r["bound"], r["seconds"]] for r in log],
                            "test_bound": [mean, se], "data": source})
        print(f"checkpoint: {a.out}")


if __name__ == "__main__":
    main()
