"""Download MS-COCO 2014 for :mod:`minidraw.data.coco_prepare`: the annotations and the two image zips.

:func:`download_coco` fetches ``annotations_trainval2014.zip``, ``train2014.zip``
and ``val2014.zip`` (~19 GB in all, from :data:`URLS`) and unzips them into the
standard layout that :func:`~minidraw.data.coco_prepare.prepare_coco` reads::

    dest/annotations/captions_{train,val}2014.json
    dest/train2014/COCO_train2014_*.jpg
    dest/val2014/COCO_val2014_*.jpg

Run it with ``minidraw prepare coco --download`` (or
``python data_scripts/prepare_coco.py --download ...``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

from .coco import PathLike
from .download import fetch, resolve_dir

SOURCES = ("train", "val")  # the two COCO 2014 splits we read from
URLS = {
    "annotations": "images.cocodataset.org/annotations/annotations_trainval2014.zip",
    "train2014": "images.cocodataset.org/zips/train2014.zip",
    "val2014": "images.cocodataset.org/zips/val2014.zip",
}


def _move_tree(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; where ``dst`` is a folder already, merge into it."""
    if not dst.exists():
        os.replace(src, dst)
    elif src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _move_tree(child, dst / child.name)


def download_coco(dest: PathLike | None = None,
                  which: Iterable[str] = ("annotations", "train2014", "val2014"),
                  keep_zips: bool = False, progress: bool = True) -> Path:
    """Download and unzip MS-COCO 2014 (~19 GB) into ``dest`` in the standard layout.

    ``dest`` defaults to ``<coco data dir>/raw``. Parts already unzipped are skipped;
    unzipping goes through a temporary folder, so a killed run leaves nothing that
    looks complete. Downloads go through pooch (a temporary file, renamed when
    complete; a zip already downloaded is reused); COCO publishes no checksums, so
    none are checked.
    """
    dest = resolve_dir("coco", None)[0] / "raw" if dest is None else Path(dest).expanduser()
    done = {"annotations": [dest / "annotations" / f"captions_{s}2014.json" for s in SOURCES],
            "train2014": [dest / "train2014"], "val2014": [dest / "val2014"]}
    for part in which:
        if part not in URLS:
            raise ValueError(f"unknown COCO part {part!r}; choose from {sorted(URLS)}")
        if all(p.exists() for p in done[part]):
            continue
        name = URLS[part].rsplit("/", 1)[1]
        zpath = fetch([f"http://{URLS[part]}", f"https://{URLS[part]}"], dest / name, known_hash=None,
                      progress=progress)
        tmp = Path(tempfile.mkdtemp(prefix=f".{part}.", dir=dest))
        try:
            with zipfile.ZipFile(zpath) as z:
                z.extractall(tmp)
            for child in tmp.iterdir():
                _move_tree(child, dest / child.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not keep_zips:
            zpath.unlink()
    return dest
