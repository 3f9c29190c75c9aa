"""MNIST digits: download with checksums, or read from a directory you name.

The four files are LeCun's IDX format, usually gzip-compressed::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   (60,000 digits)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    (10,000 digits)

An IDX file is a 4-byte magic number (two zero bytes, a type code, 0x08 = uint8,
and the number of dimensions), one big-endian uint32 per dimension, then the data.
:func:`read_idx` checks all of that before trusting a byte.

Where the files come from (see :mod:`minidraw.data.download`): a directory you
name (the ``root`` argument, or ``$MINIDRAW_DATA/mnist``) is read as it is and
never written to; otherwise the files are downloaded once into
``~/.cache/minidraw/mnist`` by pooch, trying each mirror in turn and checking
each file's MD5 before it lands there.

With only the test split at hand (an offline machine holding just
``t10k-*``), :func:`digit_pools` carves that split into two disjoint pools, one
to train on and one to test on, and says so in ``DigitPools.source``.
"""
from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .download import DownloadError, fetch, resolve_dir

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
# split -> (images file, md5 of the .gz), (labels file, md5 of the .gz): the official files
FILES = {
    "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
    "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
             ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
}
SIZES = {"train": 60_000, "test": 10_000}


class MnistError(UserError, RuntimeError):
    """MNIST could not be found, fetched or parsed; the message says what to do."""


def read_idx(path: str | os.PathLike, expect_ndim: int | None = None) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or not) of unsigned bytes, validating its header."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise MnistError(f"{path} is not a readable IDX file ({e}); delete it and download it again") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise MnistError(f"{path} does not start with an IDX magic number; it is not an MNIST file: delete it and "
                         "download it again (minidraw prepare mnist), or point MINIDRAW_DATA at a folder that holds the "
                         "MNIST IDX files")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise MnistError(f"{path}: IDX type code {dtype_code:#x}, expected 0x08 (unsigned bytes); it is not an MNIST "
                         "file: delete it and download it again (minidraw prepare mnist)")
    if expect_ndim is not None and ndim != expect_ndim:
        raise MnistError(f"{path}: {ndim} dimensions in the header, expected {expect_ndim} (images and labels "
                         "swapped?): delete it and download it again (minidraw prepare mnist)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistError(f"{path} is truncated inside its header; delete it and download it again")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise MnistError(f"{path} holds {len(data)} bytes but its header {shape} needs {expected}: "
                         "the file is truncated or corrupt; delete it and download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, gz_name: str) -> Path | None:
    """The file as ``name.gz`` or uncompressed ``name``, if either is there."""
    for candidate in (directory / gz_name, directory / gz_name[: -len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def _missing_message(split: str, directory: Path, named: bool, why: str = "") -> str:
    names = " and ".join(n for n, _ in FILES[split])
    return (f"MNIST {split} split not found in {directory} ({names}). {why}Either\n"
            f"  * point minidraw at a directory holding the IDX files: the argument root=DIR, "
            f"or the environment variable MINIDRAW_DATA=PARENT (files in PARENT/mnist); or\n"
            f"  * let minidraw download them into ~/.cache/minidraw/mnist: name no directory "
            f"(unset MINIDRAW_DATA) on a machine with internet access"
            + (" (you named this directory, so minidraw does not download into it)" if named else "")
            + ", or run `python data_scripts/prepare_mnist.py`.")


def load_mnist(split: str = "train", root: str | os.PathLike | None = None,
               download_ok: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 28, 28)`` uint8 and labels ``(n,)`` uint8 of one split ("train" or "test")."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory, named = resolve_dir("mnist", root)
    paths = []
    for name, md5 in FILES[split]:
        path = _find(directory, name)
        if path is None:
            if named or not download_ok:
                raise MnistError(_missing_message(split, directory, named))
            try:
                path = fetch([m + name for m in MIRRORS], directory / name, known_hash=f"md5:{md5}")
            except DownloadError as e:
                raise MnistError(_missing_message(split, directory, named, f"Downloading failed: {e}\n")) from e
        paths.append(path)
    images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise MnistError(f"{paths[0]} / {paths[1]}: images {images.shape} and labels {labels.shape} "
                         "do not form an MNIST split")
    if len(images) != SIZES[split]:
        warnings.warn(f"MNIST {split} split in {directory} has {len(images)} digits, not {SIZES[split]}")
    if labels.max() > 9:
        raise MnistError(f"{paths[1]} holds labels above 9: not an MNIST label file")
    return images, labels


@dataclass(frozen=True)
class DigitPools:
    """Digits to train on and digits to test on, never the same digit in both."""

    train_images: np.ndarray  # (n_train, 28, 28) uint8
    train_labels: np.ndarray  # (n_train,) uint8
    test_images: np.ndarray   # (n_test, 28, 28) uint8
    test_labels: np.ndarray   # (n_test,) uint8
    source: str               # where the pools came from, to print beside any result

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"pool must be 'train' or 'test', got {name!r}")


def digit_pools(root: str | os.PathLike | None = None, carve_train: int = 8000,
                seed: int = 0) -> DigitPools:
    """MNIST train digits to train on and MNIST test digits to test on.

    When the training split cannot be had (a named directory holding only the
    test split, as on an offline CI machine), the 10,000 test digits are split by
    a seeded permutation into ``carve_train`` training digits and the rest for
    testing — disjoint, and recorded in ``source``.
    """
    directory, named = resolve_dir("mnist", root)
    test_x, test_y = load_mnist("test", root)
    try:
        train_x, train_y = load_mnist("train", root, download_ok=not named)
    except MnistError:
        if not named:
            raise
        perm = np.random.default_rng(seed).permutation(len(test_x))
        tr, te = perm[:carve_train], perm[carve_train:]
        return DigitPools(test_x[tr], test_y[tr], test_x[te], test_y[te],
                          f"MNIST test split only: {len(tr)} of its digits to train on, "
                          f"the other {len(te)} to test on (seeded split {seed}); not the standard MNIST train/test")
    return DigitPools(train_x, train_y, test_x, test_y,
                      f"MNIST: train split ({len(train_x)}) to train on, test split ({len(test_x)}) to test on")


def binarize(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Binarised MNIST, as DRAW and most VAE papers use it: pixel ~ Bernoulli(intensity).

    Sampled once with a fixed ``seed`` (a fixed binarisation, not a new one each
    epoch), so that a bound measured on it is comparable run to run. ``(n, 28, 28)``
    uint8 -> ``(n, 1, 28, 28)`` float32 in {0, 1}.
    """
    p = images.astype(np.float32) / 255.0
    return (np.random.default_rng(seed).random(p.shape, dtype=np.float32) < p).astype(np.float32)[:, None]
