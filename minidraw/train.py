"""Training DRAW and alignDRAW: the loop the chapters run.

    python -m minidraw.train --preset draw_mnist_small --lr 3e-3 --minutes 3 --out runs/draw_small.pt
    python -m minidraw.train --preset aligndraw_mnist_small --lr 3e-3 --minutes 5 --out runs/aligndraw.pt

Optimiser as in the authors' released code: RMSProp (decay 0.9, eps 1e-6) with
every parameter's gradient clipped to L2 norm 10; Adam is offered too. The loss
is the negative bound −L in nats per image, averaged over the batch.

A model is trained on *batches*: tuples of tensors that the model is called
with — ``(images,)`` for DRAW, ``(images, captions, lengths)`` for alignDRAW.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .configs import preset
from .data.mnist import binarize, digit_pools
from .draw import CaptionDrawConfig, DrawConfig, build

Batch = tuple  # of tensors, the model's positional arguments


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


# ---- data -----------------------------------------------------------------------------
def mnist_binarized(root=None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fixed-binarised training and test digits ``(n, 1, 28, 28)`` and where they came from."""
    pools = digit_pools(root)
    return (torch.from_numpy(binarize(pools.train_images, seed=0)),
            torch.from_numpy(binarize(pools.test_images, seed=1)), pools.source)


def tensor_batches(images: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[Batch]:
    """Endless random minibatches ``(images[idx],)`` of a tensor, reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield (images[torch.randint(len(images), (batch_size,), generator=gen).to(images.device)],)


def caption_batches(dataset, batch_size: int, seed: int = 0, device="cpu") -> Iterator[Batch]:
    """Endless ``(images, captions, lengths)`` from a captioned data set, one shuffled epoch after another.

    Epoch e visits indices ``e·len + permutation``: the generated data sets are
    infinite streams, so every epoch shows new images (new jitter, new digits).
    """
    rng = np.random.default_rng(seed)
    for epoch in range(1 << 62):
        order = epoch * len(dataset) + rng.permutation(len(dataset))
        for i in range(0, len(order) - batch_size + 1, batch_size):
            b = dataset.batch(order[i:i + batch_size]).to(device)
            yield b.images, b.captions, b.lengths


def fixed_batches(dataset, n: int, batch_size: int = 500, device="cpu") -> list[Batch]:
    """The first ``n`` examples of a data set as a list of batches (a fixed evaluation set)."""
    out = []
    for i in range(0, n, batch_size):
        b = dataset.batch(np.arange(i, min(n, i + batch_size))).to(device)
        out.append((b.images, b.captions, b.lengths))
    return out


# ---- the loop -------------------------------------------------------------------------
@torch.no_grad()
def dataset_bound(model, batches, seed: int = 0) -> tuple[float, float]:
    """Mean −L in nats per image over ``batches`` (a tensor of images, or a list of batches)."""
    if isinstance(batches, torch.Tensor):
        batches = [(batches[i:i + 500],) for i in range(0, len(batches), 500)]
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    values = torch.cat([model(*b).bound for b in batches])
    model.train(was_training)
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


def fit(model, batches, cfg: TrainConfig, progress: bool = True) -> list[dict]:
    """Train until ``max_steps`` or ``max_minutes``; returns the log (one dict per step).

    ``batches`` is an iterator of batches, or a tensor of images (random minibatches
    of it). Batches and model must be on the same device.
    """
    if isinstance(batches, torch.Tensor):
        batches = tensor_batches(batches, cfg.batch_size, cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    log, start, running = [], time.perf_counter(), None
    bar = tqdm(total=cfg.max_steps if cfg.max_steps < 1_000_000 else None, disable=not progress, unit="step")
    for step, batch in zip(range(1, cfg.max_steps + 1), batches):
        loss = model(*batch).bound.mean()                   # −L, nats per image
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


# ---- checkpoints ----------------------------------------------------------------------
def save(path: str | os.PathLike, model, extra: dict | None = None) -> None:
    """Write ``{"config", "model", ...}`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    kind = "caption" if isinstance(model.cfg, CaptionDrawConfig) else "draw"
    torch.save({"kind": kind, "config": model.cfg.to_dict(), "model": model.state_dict(), **(extra or {})}, tmp)
    os.replace(tmp, path)


def load(path: str | os.PathLike, map_location="cpu"):
    """A model from a checkpoint, loaded with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        config_class = CaptionDrawConfig if ckpt.get("kind") == "caption" else DrawConfig
        model = build(config_class.from_dict(ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m minidraw.train --out {path}`")
    except Exception as e:
        raise RuntimeError(f"{path} is not a readable minidraw checkpoint ({type(e).__name__}: {e}); "
                           "train again or fetch the file again") from e
    return model, ckpt


# ---- command line ---------------------------------------------------------------------
def data_for(name: str, cfg: DrawConfig, batch_size: int, seed: int, root=None):
    """Training batches, a fixed test set and a description of the data, for preset ``name``."""
    if not isinstance(cfg, CaptionDrawConfig):
        train, test, source = mnist_binarized(root)
        return tensor_batches(train, batch_size, seed), test, source
    if "shapes" in name:
        from .data.shapes import ShapesCaptions
        train_ds, test_ds, source = ShapesCaptions("train"), ShapesCaptions("test"), "captioned shapes"
    else:
        from .data.mnist_captions import MnistCaptions
        pools = digit_pools(root)
        train_ds, test_ds, source = MnistCaptions("train", pools), MnistCaptions("test", pools), pools.source
    return caption_batches(train_ds, batch_size, seed), fixed_batches(test_ds, 2000), source


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=TrainConfig.preset)
    p.add_argument("--variant", choices=["align", "noalign", "draw"], help="override a caption preset's variant")
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
    model_cfg = preset(a.preset, **({"variant": a.variant} if a.variant else {}))
    train_batches, test, source = data_for(a.preset, model_cfg, cfg.batch_size, cfg.seed, a.data)
    print(source)
    torch.manual_seed(cfg.seed)
    model = build(model_cfg)
    log = fit(model, train_batches, cfg)
    mean, se = dataset_bound(model, test)
    n = len(test) if isinstance(test, torch.Tensor) else sum(len(b[0]) for b in test)
    print(f"{cfg.preset}: {len(log)} steps in {log[-1]['seconds'] / 60:.1f} min; "
          f"test bound −L = {mean:.2f} ± {se:.2f} nats per image ({n} test examples)")
    if a.out:
        save(a.out, model, {"train": asdict(cfg), "log": [[r["step"], r["bound"], r["seconds"]] for r in log],
                            "test_bound": [mean, se], "data": source})
        print(f"checkpoint: {a.out}")


if __name__ == "__main__":
    main()
