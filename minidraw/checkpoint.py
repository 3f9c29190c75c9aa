"""Checkpoints: a model's configuration and weights in one file, loaded without running code.

A checkpoint is ``{"kind", "config", "model", ...}`` — the model's kind
(``draw``, ``caption``, ``baseline``, ``sharpener``, ``captioner``), its configuration as a dict, its
``state_dict`` — plus whatever the trainer adds (training settings, step,
optimiser state, vocabulary). :func:`save` writes it atomically (a temporary
file, fsync, rename: a kill never leaves half a file); :func:`load` reads it
with ``weights_only=True``, so a file that holds other Python objects — a pickle
that could run code — is refused with a message that says so.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .errors import CheckpointError

KINDS = ("draw", "caption", "baseline", "sharpener", "captioner", "lapgan")


def _config_class(kind: str):
    from .baselines import BaselineConfig
    from .draw import CaptionDrawConfig, DrawConfig
    from .captioner import CaptionerConfig
    from .lapgan import LapGanConfig
    from .sharpen import SharpenConfig
    return {"caption": CaptionDrawConfig, "baseline": BaselineConfig, "draw": DrawConfig,
            "sharpener": SharpenConfig, "captioner": CaptionerConfig, "lapgan": LapGanConfig}[kind]


def kind_of(model) -> str:
    """``"draw"``, ``"caption"``, ``"baseline"``, ``"sharpener"``, ``"captioner"`` or ``"lapgan"``: which
    configuration class ``model.cfg`` is."""
    from .baselines import BaselineConfig
    from .captioner import CaptionerConfig
    from .draw import CaptionDrawConfig
    from .lapgan import LapGanConfig
    from .sharpen import SharpenConfig
    return ("baseline" if isinstance(model.cfg, BaselineConfig) else
            "lapgan" if isinstance(model.cfg, LapGanConfig) else
            "captioner" if isinstance(model.cfg, CaptionerConfig) else
            "caption" if isinstance(model.cfg, CaptionDrawConfig) else
            "sharpener" if isinstance(model.cfg, SharpenConfig) else "draw")


def save(path: str | os.PathLike, model, extra: dict | None = None) -> None:
    """Write ``{"kind", "config", "model", ...}`` atomically: a temporary file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    with open(tmp, "wb") as f:
        torch.save({"kind": kind_of(model), "config": model.cfg.to_dict(), "model": model.state_dict(),
                    **(extra or {})}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_AGAIN = "train again, or resume from an earlier copy"


def read(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checkpoint's dict, read with ``weights_only=True``; :class:`CheckpointError` (one clear
    line) for a file that is empty, damaged, not a checkpoint, or holds objects other than weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with "
                                f"`minidraw train --preset NAME --out {path.parent}`")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): its writing was cut short or it was truncated; "
                              f"delete it and {_AGAIN}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:   # noqa: BLE001 - whatever the reason, the file cannot be used
        text = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:            # a pickled object: never quote torch's advice to unpickle it anyway
            raise CheckpointError(
                f"{path} holds Python objects that are not weights ({found.group(1)}), so it will not be loaded: "
                "unpickling them could run code. A minidraw checkpoint holds only tensors, numbers and strings; "
                "use one written by `minidraw train` or minidraw.pretrained.export") from None
        if "weights only load failed" in text.lower():
            detail = "not a PyTorch checkpoint file"
        else:
            detail = f"{type(e).__name__}: {(text.splitlines() or [''])[0][:200]}".rstrip(": ")
        raise CheckpointError(f"{path} is not a readable minidraw checkpoint ({detail}); it may be truncated, "
                              f"corrupt or not from minidraw: {_AGAIN}") from None
    if not isinstance(ckpt, dict) or not {"kind", "config", "model"} <= set(ckpt):
        raise CheckpointError(f"{path} is not a minidraw checkpoint: it lacks the keys 'kind', 'config' and 'model' "
                              "that `minidraw train` writes")
    return ckpt


def load(path: str | os.PathLike, map_location="cpu"):
    """``(model, checkpoint)``, loaded with ``weights_only=True`` (no arbitrary unpickling)."""
    ckpt = read(path, map_location)
    try:
        from .configs import build
        cfg = _config_class(ckpt["kind"] if ckpt["kind"] in KINDS else "draw").from_dict(ckpt["config"])
        model = build(cfg)
        model.load_state_dict(ckpt["model"])
    except Exception as e:   # noqa: BLE001
        raise CheckpointError(f"{path} is not a readable minidraw checkpoint ({type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0][:200]}); it may be truncated, corrupt or "
                              f"not from minidraw: {_AGAIN}") from None
    return model, ckpt
