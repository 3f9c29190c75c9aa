"""Checkpoints: a model's configuration and weights in one file, loaded without running code.

A checkpoint is ``{"kind", "config", "model", ...}`` — the model's kind (a name of
:data:`minidraw.models.KINDS`), its configuration as a dict, its ``state_dict`` — plus whatever
the trainer adds (training settings, step, optimiser state, vocabulary, the objective's own
weights). :func:`save` writes it atomically (a temporary file, fsync, rename: a kill never leaves
half a file); :func:`load` reads it with ``weights_only=True``, so a file that holds other Python
objects — a pickle that could run code — is refused with a message that says so; :func:`upgrade`
reads the files of earlier releases in today's terms.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .errors import CheckpointError
from .models import from_dict, kind_of, kind_of_config

# What earlier releases stored in a caption model's configuration that is gone from it or moved: the extension's
# settings, with the value of a model without the extension, and the terms of training only. (Switches that never
# shipped are not read: a file that holds one is refused as a configuration this release does not know.)
_EXTENSION = {"what_where": False, "content_first": 0, "content_last": 0}
_TRAINING_ONLY = ("what_adversary", "where_kl", "sentence_pretrain_steps")
_COMPOSE_PRESETS = {"aligndraw_mnist_small": "compose_mnist_small", "aligndraw_mnist_paper": "compose_mnist_paper"}


def _drop(config: dict, defaults: dict, where: str) -> dict:
    """``config`` without the keys of ``defaults``; ``CheckpointError`` for one that holds another value."""
    for key, value in defaults.items():
        if key in config and config[key] != value:
            raise CheckpointError(f"{where} was trained with {key}={config[key]!r}, a setting that was removed from "
                                  f"minidraw (only {key}={value!r} is built now); load it with the release that "
                                  "trained it")
    return {k: v for k, v in config.items() if k not in defaults}


def upgrade(ckpt: dict, where: str = "the checkpoint") -> dict:
    """A checkpoint written by an earlier release, in today's terms (a new dict; the file is not touched).

    Before the paper's alignDRAW and our extension were two kinds (``caption`` and ``compose``), one
    configuration held both, and the training-only terms (``what_adversary``, ``where_kl``) and their adversary's
    weights were part of the model. Here a caption model with word-valued alignment or the what/where split
    becomes a ``compose`` model, the training-only terms move to the training settings (and the adversary's
    weights to ``"objective"``, from which a resumed run goes on), and switches that still hold the one value
    built now are dropped."""
    kind, config = ckpt["kind"], dict(ckpt["config"])
    if isinstance(ckpt.get("train"), dict) and "heldout_val" not in ckpt["train"]:
        # trained before the validation compositions existed: its training saw them
        ckpt = {**ckpt, "train": {**ckpt["train"], "heldout_val": False}}
    if kind not in ("draw", "caption"):
        return ckpt
    ckpt = dict(ckpt)
    train = dict(ckpt.get("train") or {})
    overrides = dict(train.get("model") or {})
    if kind == "draw":
        config = _drop(config, {"what_where": False}, where)
    else:
        for key in _TRAINING_ONLY:                                      # the objective's, not the model's
            for d in (overrides, config):
                if key in d:
                    train.setdefault(key, d.pop(key))
        values = config.pop("align_values", "states")
        overrides.pop("align_values", None)
        if values == "both":
            raise CheckpointError(f"{where} was trained with align_values='both', a setting that was removed from "
                                  "minidraw; load it with the release that trained it")
        if values == "words" or config.get("what_where"):
            kind = "compose"
            config["what_where"] = overrides["what_where"] = bool(config.get("what_where", False))
            if "preset" in train:
                train["preset"] = _COMPOSE_PRESETS.get(train["preset"], train["preset"])
        else:
            config = _drop(config, _EXTENSION, where)
            for key in _EXTENSION:
                overrides.pop(key, None)
        state = ckpt["model"]
        objective = {k: v for k, v in state.items() if k.startswith("adversary.")}
        ckpt["model"] = {k: v for k, v in state.items() if not k.startswith("adversary.")}
        if objective:
            ckpt["objective"] = objective
        if "live" in ckpt:
            ckpt["live"] = {k: v for k, v in ckpt["live"].items() if not k.startswith("adversary.")}
    if "train" in ckpt:
        ckpt["train"] = {**train, "model": overrides}
    ckpt["kind"], ckpt["config"] = kind, config
    return ckpt


def save(path: str | os.PathLike, model, extra: dict | None = None) -> None:
    """Write ``{"kind", "config", "model", ...}`` atomically: a temporary file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    with open(tmp, "wb") as f:
        torch.save({"kind": kind_of(model).name, "config": model.cfg.to_dict(), "model": model.state_dict(),
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
    ckpt = upgrade(read(path, map_location), str(path))
    try:
        cfg = from_dict(ckpt["kind"], ckpt["config"])
    except ValueError as e:                      # an unknown kind, setting or value: the message names it
        raise CheckpointError(f"{path}: {e} (a setting of another minidraw release? load it with the release "
                              "that wrote it)") from None
    model = kind_of_config(cfg).model(cfg)
    state = ckpt["model"]
    mine = model.state_dict()
    missing, unexpected = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    wrong = sorted(k for k in set(mine) & set(state)
                   if not isinstance(state[k], torch.Tensor) or state[k].shape != mine[k].shape)
    if missing or unexpected or wrong:
        said = "; ".join(f"{what} {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}" for what, keys in
                         (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", wrong)) if keys)
        raise CheckpointError(f"{path} does not hold the weights its configuration describes (weights {said}): it "
                              f"was damaged or edited; {_AGAIN}")
    try:
        model.load_state_dict(state)
    except Exception as e:   # noqa: BLE001
        raise CheckpointError(f"{path} is not a readable minidraw checkpoint ({type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0][:200]}); it may be truncated, corrupt or "
                              f"not from minidraw: {_AGAIN}") from None
    return model, ckpt
