"""A tiny MS-COCO 2014 captions look-alike, so that COCO preparation and training run offline.

:func:`make_tiny_coco` writes the real COCO layout (real JSON structure, generated
JPEGs) that :func:`~minidraw.data.coco_prepare.prepare_coco` reads: the tests,
the book's chapters and ``minidraw prepare coco --tiny`` use it in place of the
~19 GB download.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .coco import PathLike
from .download import write_json

_COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220),
            "yellow": (240, 220, 40), "white": (245, 245, 245), "black": (15, 15, 15),
            "orange": (245, 140, 20), "purple": (140, 50, 170)}
_SHAPES = {"circle": ("ball", "disc", "round shape"), "square": ("box", "block", "tile"),
           "triangle": ("wedge", "arrowhead", "pointy shape")}
_TEMPLATES = (
    "{A} {c} {s} on {ab} {b} background.",
    "{a} {C} {alt} , {b} backdrop",
    "There is {a} {c} {s} in the middle of {ab} {b} picture!",
    "{Cc} {alt}; the background is {b}.",
    "A picture of a {size} {c} {alt} on {b}",
)


def _draw(rng: np.random.Generator, w: int, h: int, colour: str, shape: str, bg: str) -> tuple[Image.Image, str]:
    """One image: a ``shape`` in ``colour`` near the centre of a ``bg`` canvas of w x h."""
    img = Image.new("RGB", (w, h), _COLOURS[bg])
    d = ImageDraw.Draw(img)
    s = min(w, h)
    big = bool(rng.random() < 0.5)
    r = s * (0.35 if big else 0.2)
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * s, h / 2 + rng.uniform(-0.1, 0.1) * s
    box = (cx - r, cy - r, cx + r, cy + r)
    fill = _COLOURS[colour]
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    return img, ("large" if big else "small")


def make_tiny_coco(dest: PathLike, n_train: int = 12, n_val: int = 8, seed: int = 0) -> Path:
    """Write a tiny MS-COCO 2014 captions look-alike into ``dest`` and return it.

    Same layout and JSON structure as the real thing (``info``, ``licenses``,
    ``images`` with id / file_name / width / height ..., ``annotations`` with
    id / image_id / caption, in no particular order), sparse ids and real file
    names (``train2014/COCO_train2014_000000000009.jpg``). Each JPEG is a coloured
    shape on a coloured background, of its own non-square size; each has exactly 5
    captions that describe it with varied case and punctuation. Deterministic in
    ``seed``.
    """
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    img_ids = rng.choice(np.arange(1, 600_000), size=n, replace=False).tolist()
    ann_ids = rng.choice(np.arange(1, 900_000), size=5 * n, replace=False).tolist()
    colours, shapes = list(_COLOURS), list(_SHAPES)
    for source, ids in (("train", img_ids[:n_train]), ("val", img_ids[n_train:])):
        folder = dest / f"{source}2014"
        folder.mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for img_id in ids:
            w, h = (int(v) for v in rng.integers(40, 121, size=2))
            if w == h:
                w += 7  # non-square, so that the centre crop matters
            c, b = rng.choice(len(colours), size=2, replace=False)
            colour, bg, shape = colours[c], colours[b], shapes[rng.integers(len(shapes))]
            img, size_word = _draw(rng, w, h, colour, shape, bg)
            name = f"COCO_{source}2014_{img_id:012d}.jpg"
            img.save(folder / name, quality=90)
            images.append({"license": 1, "file_name": name,
                           "coco_url": f"http://images.cocodataset.org/{source}2014/{name}",
                           "height": h, "width": w, "date_captured": "2013-11-14 11:18:45",
                           "flickr_url": f"http://farm1.staticflickr.com/1/{img_id}_tiny.jpg",
                           "id": img_id})
            alts = _SHAPES[shape]
            for k, t in enumerate(_TEMPLATES):
                a, ab = ("an" if w[0] in "aeiou" else "a" for w in (colour, bg))
                text = t.format(a=a, A=a.capitalize(), ab=ab, c=colour, C=colour.upper(),
                                Cc=colour.capitalize(), s=shape, alt=alts[k % len(alts)], b=bg,
                                size=size_word)
                anns.append({"image_id": img_id, "id": ann_ids.pop(), "caption": text})
        order = rng.permutation(len(anns))  # real files are not grouped by image
        data = {
            "info": {"description": "tiny COCO-format fixture made by minidraw", "url": "",
                     "version": "1.0", "year": 2014, "contributor": "minidraw",
                     "date_created": "2015-01-27 09:11:52.357475"},
            "licenses": [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 1,
                          "name": "Attribution License"}],
            "images": images,
            "annotations": [anns[i] for i in order],
        }
        (dest / "annotations").mkdir(parents=True, exist_ok=True)
        write_json(dest / "annotations" / f"captions_{source}2014.json", data)
    return dest
