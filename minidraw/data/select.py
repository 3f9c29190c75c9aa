"""Which data a preset trains and is evaluated on: the one place that decides.

:func:`data_for` gives a preset's training and test sources — binarised MNIST for
plain DRAW, captioned shapes, MS-COCO, or MNIST with captions — and
:func:`evaluation_splits` adds the held-out compositions (and, for COCO, the test
split instead of the dev split the trainer watches). The training data follows
the run's seed; test and held-out data are fixed (:data:`TEST_SEED`), so runs with
different seeds are scored on the same images.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from .mnist import binarize, digit_pools

TEST_SEED = 0   # the seed of every test and held-out split: fixed, whatever the training seed


def mnist_binarized(root=None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fixed-binarised training and test digits ``(n, 1, 28, 28)`` and where they came from."""
    pools = digit_pools(root or None)
    return (torch.from_numpy(binarize(pools.train_images, seed=0)),
            torch.from_numpy(binarize(pools.test_images, seed=1)), pools.source)


def _captioned(model_cfg) -> bool:
    """Does the model read or write captions (alignDRAW and its variants, the baselines, the sharpener,
    the captioner)?"""
    from ..baselines import BaselineConfig
    from ..captioner import CaptionerConfig
    from ..draw import CaptionDrawConfig
    from ..lapgan import LapGanConfig
    from ..sharpen import SharpenConfig
    return isinstance(model_cfg, (CaptionDrawConfig, BaselineConfig, SharpenConfig, LapGanConfig, CaptionerConfig))


def data_for(preset: str, model_cfg, seed: int = 0, root: Optional[str | os.PathLike] = None):
    """``(training source, test source, description, vocabulary or None)`` for a model of preset
    ``preset``; the training source follows ``seed``, the test source does not. ``root``: the data
    folder (MNIST's IDX files, or prepared COCO), ``None`` for the default."""
    root = root or None
    if not _captioned(model_cfg):
        train, test, source = mnist_binarized(root)
        return train, test, source, None
    if "shapes" in preset:
        from .shapes import ShapesCaptions
        train, test = ShapesCaptions("train", seed=seed), ShapesCaptions("test", seed=TEST_SEED)
        return train, test, "captioned shapes (generated)", train.vocab
    if "coco" in preset:
        from .coco import CocoCaptions
        train, test = CocoCaptions("train", root=root), CocoCaptions("dev", root=root)
        return train, test, f"MS-COCO 2014 captions, {len(train)} training captions", train.vocab
    from .mnist_captions import MnistCaptions
    pools = digit_pools(root)
    train = MnistCaptions("train", pools, seed=seed)
    return train, MnistCaptions("test", pools, seed=TEST_SEED), pools.source, train.vocab


def heldout_for(test):
    """The held-out compositions that go with test split ``test`` (MNIST with captions, shapes),
    with its seeds; ``None`` for data without them."""
    from .mnist_captions import MnistCaptions
    from .shapes import ShapesCaptions
    if isinstance(test, MnistCaptions):
        return MnistCaptions("heldout", test.pools, seed=test.seed, holdout_seed=test.holdout_seed)
    if isinstance(test, ShapesCaptions):
        return ShapesCaptions("heldout", seed=test.seed, holdout_seed=test.holdout_seed)
    return None


def evaluation_splits(preset: str, model_cfg, seed: int = 0, root: Optional[str | os.PathLike] = None) -> dict:
    """``{"train", "test"}`` and, where the data has them, ``"heldout"`` compositions; for COCO the
    test split (the trainer watches dev)."""
    train, test, _, _ = data_for(preset, model_cfg, seed, root)
    splits = {"train": train, "test": test}
    heldout = heldout_for(test)
    if heldout is not None:
        splits["heldout"] = heldout
    if type(test).__name__ == "CocoCaptions":
        from .coco import CocoCaptions
        splits["test"] = CocoCaptions("test", root=root or None)
    return splits
