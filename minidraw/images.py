"""Reading pictures from files for a model that reads images (the captioner, ``minidraw caption``).

:func:`load_images` turns PNG or JPEG files — grey, RGB, RGBA or palette, any size — into the
``(M, C, B, A)`` tensor in [0, 1] a model of ``C`` channels and ``A×B`` pixels reads:

* **channels**: grey to RGB repeats the grey level in each channel; RGB to grey is the
  luminance L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601, Pillow's conversion). Transparent
  pixels are laid over black, the background of MNIST's digits. 16-bit grey is scaled from
  0..65535.
* **size**: resized to A wide by B high with bilinear interpolation (antialiased when it
  shrinks, so a large picture is averaged, not sampled). The aspect ratio is not kept.

A file that is missing or not a picture Pillow can read is an :class:`ImageFileError`, one
line naming the file and what to give instead.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageFileError(UserError, OSError):
    """A picture that cannot be read: missing, a folder, or not an image Pillow can open."""


def _read(path: str | os.PathLike):
    """The picture at ``path``, loaded and upright (EXIF orientation applied)."""
    from PIL import Image, ImageOps
    hint = "give the path of a PNG or JPEG file"
    if not os.path.exists(path):
        raise ImageFileError(f"no image at {path}: {hint}")
    if os.path.isdir(path):
        raise ImageFileError(f"{path} is a folder, not an image: {hint}")
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except Exception as e:   # noqa: BLE001 - unidentified, truncated, a decompression bomb: the file cannot be used
        text = " ".join(str(e).split())
        detail = "not an image Pillow can read" if isinstance(e, Image.UnidentifiedImageError) else \
            f"{type(e).__name__}: {text[:200]}".rstrip(": ")
        raise ImageFileError(f"cannot read the image {path} ({detail}); it may be truncated, corrupt or not a "
                             f"picture: {hint}") from None


def to_array(im, C: int) -> np.ndarray:
    """A Pillow image as ``(H, W, C)`` float32 in [0, 1], with ``C`` (1 or 3) channels."""
    from PIL import Image
    if C not in (1, 3):
        raise ValueError(f"images are read as grey (C = 1) or RGB (C = 3), not C = {C}")
    if im.mode in _SIXTEEN_BIT + ("I", "F"):                             # 16/32-bit grey, float grey
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode in _SIXTEEN_BIT or a.max(initial=0) > 255 else 255.0
        a = np.clip(a / top, 0, 1)[..., None]                            # (H, W, 1)
        return np.repeat(a, C, -1).astype(np.float32)
    if "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")                                          # over black
        im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im)
    if C == 1:
        im = im.convert("L") if im.mode in ("1", "L") else im.convert("RGB").convert("L")  # luminance
    else:
        im = im.convert("RGB")                                           # grey repeated
    a = np.asarray(im, dtype=np.float32) / 255.0
    return a[..., None] if a.ndim == 2 else a


def load_images(paths: Sequence[str | os.PathLike], C: int, B: int, A: int) -> torch.Tensor:
    """The pictures at ``paths`` as ``(M, C, B, A)`` float32 in [0, 1]: ``C`` channels (1 grey,
    3 RGB), resized to ``A`` wide by ``B`` high (bilinear). Every file is read before any is
    returned, so a bad one fails the lot with an :class:`ImageFileError` naming it."""
    out = []
    for p in paths:
        x = torch.from_numpy(to_array(_read(p), C)).permute(2, 0, 1)[None]   # (1, C, H, W)
        if tuple(x.shape[2:]) != (B, A):
            x = F.interpolate(x, size=(B, A), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        out.append(x)
    if not out:
        raise ValueError("no images given: name at least one PNG or JPEG file")
    return torch.cat(out)
