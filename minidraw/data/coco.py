"""MS-COCO 2014 captions at 32x32, the paper's real-image data set: the prepared arrays and their reader.

The paper trains on the ~83k images of train2014 (5 captions each, some have
more) at 32x32 and reports on val2014. :mod:`minidraw.data.coco_prepare` turns the
raw download into three compact array files, one per split
(``coco{S}_train.npz`` from train2014; ``coco{S}_dev.npz`` and ``coco{S}_test.npz``,
the two halves of val2014), with ``vocab.json`` and ``meta.json`` beside them;
:class:`CocoCaptions` reads one split.

With ``I`` images of side ``S`` and ``K`` captions of at most ``L`` words, each
``.npz`` holds ``images`` uint8 ``(I, S, S, 3)``, ``captions`` int32 ``(K, L)``
padded with 0, ``lengths`` int32 ``(K,)``, ``caption_image`` int32 ``(K,)``
(which image a caption describes), ``image_ids`` int64 ``(I,)`` and
``annotation_ids`` int64 ``(K,)`` (the COCO ids, to trace anything back).
Batches follow the book's symbols: ``M`` examples, images ``(M, 3, B, A)`` with
``A = B = S``, captions ``(M, L)``.

Reading needs neither pycocotools nor PIL: preparing is
:mod:`minidraw.data.coco_prepare`, downloading :mod:`minidraw.data.coco_download`,
the tiny offline fixture :mod:`minidraw.data.coco_fixture`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from ..text import Vocabulary
from .common import CaptionBatch
from .download import resolve_dir

PathLike = Union[str, os.PathLike]
SPLITS = ("train", "dev", "test")
KEYS = ("images", "captions", "lengths", "caption_image", "image_ids", "annotation_ids")
PREPARE_HINT = "python data_scripts/prepare_coco.py --coco-root DIR --out OUT"


class CocoDataError(UserError, RuntimeError):
    """The raw COCO files or the prepared arrays are missing, corrupt or inconsistent."""


def split_file(size: int, split: str) -> str:
    """File name of one prepared split, e.g. ``coco32_train.npz``."""
    return f"coco{size}_{split}.npz"


# ---- the data set --------------------------------------------------------------
class CocoCaptions(Dataset):
    """One prepared split of MS-COCO captions: one example per caption.

    ``ds[i]`` is ``(image (3, B, A) float in [0, 1], ids (L,) int64, L)`` for
    caption ``i``; :meth:`batch` makes a padded :class:`CaptionBatch`. An image
    with five captions appears five times.
    """

    def __init__(self, split: str = "train", root: PathLike | None = None, size: int = 32):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root, self.split, self.size = resolve_dir("coco", root)[0], split, size
        path = self.root / split_file(size, split)
        hint = (f"Prepare it with `{PREPARE_HINT.replace('OUT', str(self.root))} --size {size}` "
                f"(add --download to fetch MS-COCO 2014 first, ~19 GB).")
        for p in (path, self.root / "vocab.json"):
            if not p.is_file():
                raise CocoDataError(f"prepared COCO file not found: {p}. {hint}")
        try:
            with np.load(path) as z:
                missing = [k for k in KEYS if k not in z.files]
                if missing:
                    raise CocoDataError(f"{path} lacks the arrays {missing}; it was not written by "
                                        f"prepare_coco or is damaged. Delete it. {hint}")
                arrays = {k: z[k] for k in KEYS}
            with open(self.root / "vocab.json") as f:
                self.vocab = Vocabulary.from_dict(json.load(f))
        except CocoDataError:
            raise
        except Exception as e:  # bad zip, bad pickle, bad JSON ...
            raise CocoDataError(f"cannot read the prepared COCO files in {self.root} "
                                f"({type(e).__name__}: {e}). Delete them. {hint}") from None
        self.images = arrays["images"]  # (I, S, S, 3) uint8
        self.captions = arrays["captions"]  # (K, L) int32
        self.lengths = arrays["lengths"]  # (K,) int32
        self.caption_image = arrays["caption_image"]  # (K,) int32
        self.image_ids = arrays["image_ids"]  # (I,) int64
        self.annotation_ids = arrays["annotation_ids"]  # (K,) int64
        self._validate(path, hint)

    def _validate(self, path: Path, hint: str) -> None:
        n, m, s = len(self.image_ids), len(self.lengths), self.size
        problems = []
        if self.images.shape != (n, s, s, 3) or self.images.dtype != np.uint8:
            problems.append(f"images are {self.images.dtype} {self.images.shape}, expected uint8 {(n, s, s, 3)}")
        if self.captions.ndim != 2 or self.captions.shape[0] != m:
            problems.append(f"captions have shape {self.captions.shape}, expected ({m}, L)")
        if self.caption_image.shape != (m,) or self.annotation_ids.shape != (m,):
            problems.append(f"caption_image / annotation_ids have shapes {self.caption_image.shape} / "
                            f"{self.annotation_ids.shape}, expected ({m},)")
        if not problems and m:
            if self.lengths.min() < 1 or self.lengths.max() > self.captions.shape[1]:
                problems.append("caption lengths outside [1, L]")
            if self.caption_image.min() < 0 or self.caption_image.max() >= n:
                problems.append("caption_image points outside the images")
            if self.captions.min() < 0 or self.captions.max() >= len(self.vocab):
                problems.append(f"word ids outside the vocabulary of {len(self.vocab)} words")
        if problems:
            raise CocoDataError(f"{path} is inconsistent: {'; '.join(problems)}. "
                                f"It may come from another prepare run than vocab.json. {hint}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        n = int(self.lengths[i])
        image = torch.from_numpy(self.images[self.caption_image[i]]).permute(2, 0, 1).float() / 255  # (3, B, A)
        return image, torch.from_numpy(self.captions[i, :n].astype(np.int64)), n

    def batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> CaptionBatch:
        """Captions ``indices`` with their images; captions trimmed to the longest one."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (M,)
        img_idx = self.caption_image[idx].astype(np.int64)  # (M,)
        lengths = self.lengths[idx].astype(np.int64)  # (M,)
        n = int(lengths.max()) if len(idx) else 0
        images = torch.from_numpy(self.images[img_idx]).permute(0, 3, 1, 2).float() / 255  # (M, 3, B, A)
        captions = torch.from_numpy(self.captions[idx, :n].astype(np.int64))  # (M, L)
        return CaptionBatch(images, captions, torch.from_numpy(lengths),
                            {"image_index": torch.from_numpy(img_idx),
                             "image_id": torch.from_numpy(self.image_ids[img_idx])})

    def collate(self, items: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> CaptionBatch:
        """``collate_fn`` for a ``DataLoader`` over this data set (no ``meta``)."""
        ids = [c for _, c, _ in items]
        captions = torch.zeros(len(ids), max(len(c) for c in ids), dtype=torch.long)  # (M, L)
        for b, c in enumerate(ids):
            captions[b, : len(c)] = c
        return CaptionBatch(torch.stack([im for im, _, _ in items]), captions,
                            torch.tensor([n for _, _, n in items], dtype=torch.long))

    def texts(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> list[str]:
        """The (tokenised, ``<unk>``-ed) captions ``indices`` as strings."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return [self.vocab.decode(self.captions[i], int(self.lengths[i])) for i in idx]

    def image_of(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
        """The image index of each caption ``indices`` (int64, the shape of ``indices``): five captions
        share one."""
        return self.caption_image[np.asarray(indices, dtype=np.int64)].astype(np.int64)

    def captions_of(self, image_index: int) -> np.ndarray:
        """Caption indices of image ``image_index`` (usually 5)."""
        return np.flatnonzero(self.caption_image == image_index)
