"""Prepare MS-COCO 2014 captions for :class:`~minidraw.data.coco.CocoCaptions`: crop, tokenise, pack.

A one-off step that turns the raw download (~19 GB of JPEGs + caption JSON) into
three compact array files, one per split, in the format :mod:`minidraw.data.coco`
documents and reads::

    coco_root/                              out_dir/
      annotations/captions_train2014.json     coco32_train.npz  (train2014)
      annotations/captions_val2014.json       coco32_dev.npz    (half of val2014)
      train2014/COCO_train2014_*.jpg    ->    coco32_test.npz   (the other half)
      val2014/COCO_val2014_*.jpg              vocab.json, meta.json

Each ``.npz`` holds the arrays :data:`~minidraw.data.coco.KEYS` (images uint8
``(I, S, S, 3)``, zero-padded int32 captions ``(K, L)`` and their lengths, the
image of each caption, the COCO ids); every file is written atomically and
``meta.json`` last, so its presence means "complete". Images are centre-cropped
to a square and resized with bicubic filtering; captions are tokenised by
:func:`minidraw.text.tokenize`; the open vocabulary (``<unk>`` for words seen
fewer than ``min_count`` times) is built from the *training* captions only;
val2014 is split into dev and test by a seeded permutation of its image ids, so
no image is in both. :func:`~minidraw.data.coco_fixture.make_tiny_coco` writes
a tiny fixture in the real COCO layout (real JSON structure, generated JPEGs) so
that all of this runs offline.

Run it with ``minidraw prepare coco --coco-root DIR --out OUT`` (or
``python data_scripts/prepare_coco.py ...``); ``--download`` fetches COCO first
(:func:`~minidraw.data.coco_download.download_coco`), ``--tiny`` prepares the
fixture instead.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
import pooch
from PIL import Image
from pycocotools.coco import COCO
from tqdm.auto import tqdm

from ..text import Vocabulary, tokenize
from .coco import SPLITS, CocoDataError, PathLike, split_file
from .coco_download import SOURCES, URLS
from .download import atomic_write, resolve_dir, write_json


# ---- reading the raw files -----------------------------------------------------
def center_crop_resize(img: Image.Image, size: int) -> np.ndarray:
    """RGB, largest centred square, bicubic resize: uint8 ``(size, size, 3)``."""
    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def _load_image(job: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    """Worker: ``(array, None)`` or ``(None, why it failed)``; never raises, so a pool survives."""
    path, size = job
    if not os.path.isfile(path):
        return None, "the file does not exist"
    try:
        with Image.open(path) as img:
            return center_crop_resize(img, size), None
    except Exception as e:  # PIL raises many kinds: UnidentifiedImageError, OSError, ...
        return None, f"{type(e).__name__}: {e}"


def _read_coco(path: Path, source: str) -> COCO:
    """A pycocotools index over one captions JSON file, with errors that say what to do."""
    if not path.is_file():
        raise CocoDataError(
            f"COCO caption annotations for {source}2014 not found: looked for {path}.\n"
            f"Download them with `python data_scripts/prepare_coco.py --download --coco-root DIR` "
            f"(or fetch http://{URLS['annotations']} and unzip it into DIR, giving "
            f"DIR/annotations/captions_{source}2014.json), then point at DIR with --coco-root "
            f"(prepare_coco(coco_root=DIR)) or name the file with annotations={{'{source}': PATH}}.")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CocoDataError(
            f"{path} is not valid JSON ({e}); the file is probably truncated or corrupt. "
            f"Delete it and unzip annotations_trainval2014.zip again "
            f"(`python data_scripts/prepare_coco.py --download ...` fetches it).") from None
    missing = [k for k in ("images", "annotations") if not isinstance(data, dict) or k not in data]
    if missing:
        raise CocoDataError(f"{path} does not look like a COCO captions file: it has no {missing} "
                            f"(expected captions_{source}2014.json from annotations_trainval2014.zip)")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress chatter
        coco.createIndex()
    return coco


# ---- preparation -------------------------------------------------------------
def _read_source(source: str, coco: COCO, image_dir: Path, size: int, max_words: int | None,
                 skip_missing: bool, workers: int, progress: bool) -> dict:
    """Images (uint8) and tokenised captions of one COCO split, in image-id order."""
    if not image_dir.is_dir():
        raise CocoDataError(
            f"image folder for {source}2014 not found: {image_dir}. Unzip {source}2014.zip "
            f"(http://{URLS[source + '2014']}) there, or name the folder with --coco-root / "
            f"image_dirs={{'{source}': DIR}}.")
    ids, tokens, ann_ids, n_empty, n_trunc, no_caps = [], [], [], 0, 0, 0
    for img_id in sorted(coco.getImgIds()):
        caps = []
        for ann in sorted(coco.loadAnns(coco.getAnnIds(imgIds=img_id)), key=lambda a: a["id"]):
            t = tokenize(str(ann.get("caption", "")))
            if not t:
                n_empty += 1
                continue
            if max_words is not None and len(t) > max_words:
                t, n_trunc = t[:max_words], n_trunc + 1
            caps.append((ann["id"], t))
        if not caps:
            no_caps += 1
            continue
        ids.append(img_id)
        tokens.append([t for _, t in caps])
        ann_ids.append([a for a, _ in caps])

    unnamed = [i for i in ids if not coco.imgs[i].get("file_name")]
    if unnamed:
        raise CocoDataError(f"images {unnamed[:5]} in the {source}2014 annotations have no file_name; "
                            f"the annotation file is not a COCO captions file or is damaged.")
    jobs = [(str(image_dir / coco.imgs[i]["file_name"]), size) for i in ids]
    bar = dict(total=len(jobs), desc=f"{source}2014 images", disable=not progress, unit="img")
    if workers > 0:
        with get_context().Pool(workers) as pool:
            loaded = list(tqdm(pool.imap(_load_image, jobs, chunksize=64), **bar))
    else:
        loaded = [_load_image(j) for j in tqdm(jobs, **bar)]

    keep, images, skipped = [], [], []
    for k, ((path, _), (arr, err)) in enumerate(zip(jobs, loaded)):
        if arr is None:
            if not skip_missing:
                raise CocoDataError(
                    f"cannot read image {path} (COCO image id {ids[k]}): {err}. Re-extract "
                    f"{source}2014.zip, or pass skip_missing=True (--skip-missing) to leave "
                    f"this image and its captions out.")
            skipped.append(os.path.basename(path))
            continue
        keep.append(k)
        images.append(arr)
    return dict(image_ids=[ids[k] for k in keep], tokens=[tokens[k] for k in keep],
                ann_ids=[ann_ids[k] for k in keep],
                images=np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
                empty=n_empty, truncated=n_trunc, no_captions=no_caps, skipped=skipped)


def _pack(src: dict, keep: Sequence[int], vocab: Vocabulary) -> dict[str, np.ndarray]:
    """The arrays of one split from the images ``keep`` (indices into ``src``)."""
    rows, cap_img, ann_ids = [], [], []
    for n, k in enumerate(keep):
        for a, t in zip(src["ann_ids"][k], src["tokens"][k]):
            rows.append(vocab.encode(t))
            cap_img.append(n)
            ann_ids.append(a)
    lengths = np.array([len(r) for r in rows], dtype=np.int32)  # (K,)
    captions = np.zeros((len(rows), int(lengths.max())), dtype=np.int32)  # (K, L)
    for m, r in enumerate(rows):
        captions[m, : len(r)] = r
    return dict(images=src["images"][np.asarray(keep, dtype=np.int64)],  # (I, S, S, 3)
                captions=captions, lengths=lengths,
                caption_image=np.array(cap_img, dtype=np.int32),  # (K,)
                image_ids=np.array([src["image_ids"][k] for k in keep], dtype=np.int64),  # (I,)
                annotation_ids=np.array(ann_ids, dtype=np.int64))  # (K,)


def prepare_coco(coco_root: PathLike | None = None, out_dir: PathLike | None = None, *,
                 size: int = 32, min_count: int = 5, dev_fraction: float = 0.5, seed: int = 0,
                 max_words: int | None = None, skip_missing: bool = False, workers: int = 0,
                 annotations: dict[str, PathLike] | None = None,
                 image_dirs: dict[str, PathLike] | None = None, progress: bool = True) -> dict:
    """Turn raw MS-COCO 2014 captions into ``coco{size}_{train,dev,test}.npz`` + vocab + meta.

    ``coco_root`` is a directory in the standard layout (``annotations/``, ``train2014/``,
    ``val2014/``); ``annotations`` / ``image_dirs`` (keys ``"train"``, ``"val"``) override
    single paths. ``out_dir`` defaults to :func:`resolve_dir` ``("coco")``, where
    :class:`~minidraw.data.coco.CocoCaptions` looks. ``max_words`` cuts longer
    captions (counted in the meta). ``workers > 0`` decodes images in that many
    processes; the result is identical. Returns the meta data written to ``meta.json``.
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    if size < 1 or (max_words is not None and max_words < 1):
        raise ValueError(f"size and max_words must be >= 1, got {size}, {max_words}")
    annotations, image_dirs = dict(annotations or {}), dict(image_dirs or {})
    paths = {}
    for s in SOURCES:
        if coco_root is None and (s not in annotations or s not in image_dirs):
            raise CocoDataError(
                f"no COCO data named for {s}2014: give coco_root (--coco-root DIR, a folder with "
                f"annotations/, train2014/, val2014/) or both annotations['{s}'] and image_dirs['{s}']. "
                f"`python data_scripts/prepare_coco.py --download --coco-root DIR` fetches the data.")
        root = Path(coco_root).expanduser() if coco_root is not None else None
        paths[s] = (Path(annotations.get(s) or root / "annotations" / f"captions_{s}2014.json"),
                    Path(image_dirs.get(s) or root / f"{s}2014"))
    out = resolve_dir("coco", out_dir)[0]

    # Both annotation files first, so that a bad one fails before minutes of image decoding.
    cocos = {s: _read_coco(paths[s][0], s) for s in SOURCES}
    src = {s: _read_source(s, cocos[s], paths[s][1], size, max_words, skip_missing, workers, progress)
           for s in SOURCES}

    # Vocabulary from training captions only; val2014 -> dev/test by image.
    vocab = Vocabulary.from_corpus((t for caps in src["train"]["tokens"] for t in caps), min_count)
    n_val = len(src["val"]["image_ids"])
    perm = np.random.default_rng(seed).permutation(n_val)
    n_dev = int(round(dev_fraction * n_val))
    keep = {"train": list(range(len(src["train"]["image_ids"]))),
            "dev": sorted(perm[:n_dev].tolist()), "test": sorted(perm[n_dev:].tolist())}
    for split, k in keep.items():
        if not k:
            where = "train2014" if split == "train" else f"val2014 ({n_val} usable images)"
            raise CocoDataError(
                f"the {split} split came out empty: no usable images with captions in {where}. "
                f"Check that the annotation files and image folders belong together"
                + ("" if split == "train" else " and that dev_fraction leaves images for both dev and test")
                + ".")

    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, k in keep.items():
        s = "train" if split == "train" else "val"
        arrays = _pack(src[s], k, vocab)
        atomic_write(out / split_file(size, split), lambda f: np.savez_compressed(f, **arrays))
        counts[split] = {"images": len(arrays["image_ids"]), "captions": len(arrays["lengths"]),
                         "max_len": int(arrays["captions"].shape[1])}
    write_json(out / "vocab.json", vocab.to_dict())
    meta = {
        "format": 1, "size": size, "min_count": min_count, "seed": seed,
        "dev_fraction": dev_fraction, "max_words": max_words, "vocab_size": len(vocab),
        "counts": counts,
        "files": {split: split_file(size, split) for split in SPLITS},
        "truncated_captions": sum(src[s]["truncated"] for s in SOURCES),
        "empty_captions": sum(src[s]["empty"] for s in SOURCES),
        "images_without_captions": sum(src[s]["no_captions"] for s in SOURCES),
        "skipped_images": sorted(f for s in SOURCES for f in src[s]["skipped"]),
        "sources": {s: {"annotations": str(paths[s][0]),
                        "annotations_md5": pooch.file_hash(str(paths[s][0]), alg="md5"),
                        "images": str(paths[s][1])} for s in SOURCES},
    }
    write_json(out / "meta.json", meta)  # written last: its presence means "complete"
    return meta

