"""Which data a preset trains and is evaluated on: the one place that decides.

:func:`data_for` gives a data set's training and test sources — binarised MNIST for
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

from .coco import CocoCaptions
from .mnist import binarize, digit_pools
from .mnist_captions import MnistCaptions
from .shapes import ShapesCaptions

TEST_SEED = 0   # the seed of every test and held-out split: fixed, whatever the training seed


def mnist_binarized(root=None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fixed-binarised training and test digits ``(n, 1, 28, 28)`` and where they came from."""
    pools = digit_pools(root or None)
    return (torch.from_numpy(binarize(pools.train_images, seed=0)),
            torch.from_numpy(binarize(pools.test_images, seed=1)), pools.source)


def data_for(data: str, seed: int = 0, root: Optional[str | os.PathLike] = None, validation: bool = False):
    """``(training source, test source, description, vocabulary or None)`` for data set ``data``: "mnist"
    (binarised digits, for the unconditional DRAW), "mnist_captions", "shapes" or "coco" — what a preset names
    (:data:`minidraw.configs.PRESETS`). The training source follows ``seed``, the test source does not.
    ``root``: the data folder (MNIST's IDX files, or prepared COCO), ``None`` for the default. ``validation``:
    data with held-out compositions also withholds its validation compositions from both (the
    ``heldout-val`` split, :func:`validation_for`)."""
    root = root or None
    if data == "mnist":
        train, test, source = mnist_binarized(root)
        return train, test, source, None
    if data == "shapes":
        train, test = (ShapesCaptions(split, seed=sd, validation=validation)
                       for split, sd in (("train", seed), ("test", TEST_SEED)))
        return train, test, "captioned shapes (generated)", train.vocab
    if data == "coco":
        train, test = CocoCaptions("train", root=root), CocoCaptions("dev", root=root)
        return train, test, f"MS-COCO 2014 captions, {len(train)} training captions", train.vocab
    if data == "mnist_captions":
        pools = digit_pools(root)
        train, test = (MnistCaptions(split, pools, seed=sd, validation=validation)
                       for split, sd in (("train", seed), ("test", TEST_SEED)))
        return train, test, pools.source, train.vocab
    raise ValueError(f"no data set named {data!r}: give mnist, mnist_captions, shapes or coco")


def heldout_for(test, split: str = "heldout"):
    """The held-out compositions (``split="heldout-val"``: the validation compositions) that go with test
    split ``test`` (MNIST with captions, shapes), with its seeds; ``None`` for data without them."""
    if isinstance(test, MnistCaptions):
        return MnistCaptions(split, test.pools, seed=test.seed, holdout_seed=test.holdout_seed,
                             validation=test.validation)
    if isinstance(test, ShapesCaptions):
        return ShapesCaptions(split, seed=test.seed, holdout_seed=test.holdout_seed, validation=test.validation)
    return None


def validation_for(test):
    """The validation compositions (``heldout-val``) of test split ``test``, where its training withheld
    them; ``None`` otherwise."""
    return heldout_for(test, "heldout-val") if getattr(test, "validation", False) else None


def evaluation_splits(data: str, seed: int = 0, root: Optional[str | os.PathLike] = None,
                      validation: bool = False) -> dict:
    """``{"train", "test"}`` of data set ``data`` and, where it has them, ``"heldout"`` compositions (and with
    ``validation`` the ``"heldout-val"`` ones); for COCO the test split (the trainer watches dev)."""
    train, test, _, _ = data_for(data, seed, root, validation)
    splits = {"train": train, "test": test}
    for name, extra in (("heldout", heldout_for(test)), ("heldout-val", validation_for(test))):
        if extra is not None:
            splits[name] = extra
    if isinstance(test, CocoCaptions):
        splits["test"] = CocoCaptions("test", root=root or None)
    return splits
