"""What every captioned data set hands to a model: a :class:`CaptionBatch`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..text import Vocabulary


@dataclass
class CaptionBatch:
    """A batch of images and their captions.

    Shapes use the book's symbols: ``M`` images in a batch, ``C`` channels, and
    the paper's ``A × B`` image, ``A`` its width and ``B`` its height; ``L`` words
    in the longest caption. ``images`` are ``(M, C, B, A)`` float32 in [0, 1],
    ``captions`` word ids ``(M, L)`` padded with 0, ``lengths`` the number of real
    words ``(M,)``.
    ``meta`` holds per-example facts the generator knows (which digit went where),
    used by the evaluation's fidelity checks.
    """

    images: torch.Tensor   # (M, C, B, A) float32 in [0, 1]
    captions: torch.Tensor  # (M, L) int64, 0 = <pad>
    lengths: torch.Tensor  # (M,) int64
    meta: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device) -> "CaptionBatch":
        return CaptionBatch(self.images.to(device), self.captions.to(device),
                            self.lengths.to(device), {k: v.to(device) for k, v in self.meta.items()})

    def texts(self, vocab: Vocabulary) -> list[str]:
        return vocab.decode_batch(self.captions, self.lengths)



def as_indices(indices) -> np.ndarray:
    """Example indices as int64 ``(M,)``. A generated data set is an infinite stream
    (``length`` is one epoch), so every index >= 0 names an example."""
    i = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    if (i < 0).any():
        raise IndexError(f"example indices must be >= 0, got {i[i < 0][:8]}")
    return i


def image_index(dataset, indices) -> np.ndarray:
    """Which image each of the examples ``indices`` shows, as int64 ``(M,)``.

    Examples are captions. In MS-COCO an image has several captions, and the data set says
    which image each caption belongs to (``dataset.image_of(indices)``); in the generated data
    sets (MNIST with captions, shapes) every example is a scene of its own, so its image is its
    index. Retrieval uses this to draw candidates that are other *images*.
    """
    idx = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    of = getattr(dataset, "image_of", None)
    return idx if of is None else np.ascontiguousarray(of(idx), dtype=np.int64).reshape(-1)


def item_index(i: int, length: int) -> int:
    """``dataset[i]`` follows Python's rules: ``-length <= i < length``, negatives from the end."""
    if not -length <= i < length:
        raise IndexError(f"index {i} out of range for a data set of length {length}")
    return i % length


# ---- counter-based randomness ---------------------------------------------
# Example i of a data set with seed s must be the same whoever asks, in whatever
# order, in whatever batch. So each random number is a pure function of
# (seed, index, stream): a splitmix64 hash of the three, vectorised over indices.
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform(seed: int, index: np.ndarray, stream: int) -> np.ndarray:
    """Uniform numbers in [0, 1), one per index, a pure function of (seed, index, stream)."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.uint64(seed & 0xFFFFFFFF) << np.uint64(32) | np.uint64(stream & 0xFFFFFFFF))
        x = _splitmix64(_splitmix64(np.asarray(index, dtype=np.uint64)) ^ key)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def stream_key(seed: int, splits: tuple[str, ...], split: str) -> int:
    """The random stream of (seed, split): ``3·seed + i`` for the first three splits (train, test, heldout: as before
    the validation split existed, so their examples are unchanged), a stream of its own for ``heldout-val``."""
    return seed * 3 + splits.index(split) if split != "heldout-val" else 0x80000000 + seed


def randint(seed: int, index: np.ndarray, stream: int, high) -> np.ndarray:
    """Integers in [0, high) (``high`` may be an array, one bound per index)."""
    return np.minimum((uniform(seed, index, stream) * high).astype(np.int64), np.asarray(high) - 1)
