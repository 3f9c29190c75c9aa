"""One row of the evaluation table: every measure of a model on its data splits, and the table.

:func:`evaluate` computes a row — any of ``bound``, ``iwae``, ``retrieval``, ``ssi``,
``fidelity``, ``cycle`` — for one model on its splits (:func:`splits_for` rebuilds them from a
checkpoint); :func:`markdown_table` sets rows side by side; ``minidraw evaluate``
(:mod:`minidraw.cli`) runs it from the command line. The measures themselves live beside it:

* :mod:`minidraw.measures` — the paper's: the bound −L and the importance-weighted −L_K,
  image retrieval (R@K, median rank), SSI;
* :mod:`minidraw.scoring` — ours: caption fidelity (does a drawing show its caption?), scene
  agreement and BLEU-4 (does a caption say the same as another?);
* :mod:`minidraw.cycle` — ours: caption → drawing → caption, read back by the image-to-text
  captioner and scored by scene agreement (BLEU-4 for MS-COCO).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np
import torch

from .configs import PRESETS, TrainConfig
from .cycle import caption_images, cycle_captioner
from .data.select import evaluation_splits, heldout_for, validation_for
from .measures import bound, generate, iwae, retrieval_metrics, retrieval_scores, sharpened_bound, ssi
from .models import Kind, kind_of, kind_of_config
from .scoring import accuracy_evaluation, agreement, bleu4, caption_fidelity, facts_for, require_sacrebleu


# ---- a row of the table ------------------------------------------------------------------------
DEFAULT_METRICS = ("bound", "iwae", "retrieval", "ssi", "fidelity")
METRICS = DEFAULT_METRICS + ("cycle",)   # the cycle needs a captioner: asked for by name, never by default
LIKELIHOOD_METRICS = ("bound", "iwae", "retrieval")   # need log p(x | y): not for a GAN (the LAPGAN baseline)
NO_BOUND_METRICS = tuple(m for m in DEFAULT_METRICS if m not in LIKELIHOOD_METRICS)


@dataclass
class Sizes:
    """How many examples each measure uses (the chapter shrinks them on a CPU)."""

    bound: int = 2000       # images per split for −L
    iwae: int = 200         # images for −L_K
    K: int = 50             # importance samples
    queries: int = 200      # retrieval: captions, each against 100 candidates
    candidates: int = 100
    ssi: int = 500          # captions generated from for SSI
    fidelity: int = 500     # captions generated from, per split (seen and held out)


def _device_of(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def splits_for(train: dict, model_cfg, data: Optional[str] = None) -> dict:
    """The evaluation splits of a checkpoint's data: ``train``, ``test`` and, where the data has
    them, ``heldout`` compositions (MNIST with captions, shapes) and, where its training withheld them, the
    ``heldout-val`` compositions that choices are made on. ``train`` is the checkpoint's saved training
    settings."""
    root = data if data is not None else (train.get("data") or None)
    name = str(train.get("preset", ""))
    data_set = (PRESETS[name].data if name in PRESETS else
                "mnist_captions" if kind_of_config(model_cfg).takes_caption else "mnist")
    return evaluation_splits(data_set, int(train.get("seed", 0)), root, bool(train.get("heldout_val", False)))


def describe_splits(splits: dict) -> dict[str, str]:
    """What each split of :func:`splits_for` holds, in words: ``minidraw evaluate`` prints it and keeps it in its
    JSON, so every number says which compositions it was measured on."""
    words = {}
    for name, data in splits.items():
        if isinstance(data, torch.Tensor) or not hasattr(data, "describe_heldout"):
            words[name] = f"{name} split, {len(data)} examples"
        elif name == "heldout":
            words[name] = "held-out compositions, reported: " + ", ".join(data.describe_heldout())
        elif name == "heldout-val":
            words[name] = "validation compositions, for choices: " + ", ".join(data.describe_validation())
        else:
            withheld = "held-out and validation" if data.validation else "held-out"
            words[name] = f"{name} split: seen compositions only (no {withheld} pair)"
    return words


def evaluate(model, splits: dict, metrics: Iterable[str] = DEFAULT_METRICS, sizes: Sizes = Sizes(), seed: int = 0,
             progress: bool = False, classifiers=None, sharpener=None, captioner=None) -> dict:
    """One row of the evaluation table, as a flat dict of numbers.

    ``splits``: ``{"train": ..., "test": ..., "heldout": ...}`` (see :func:`splits_for`); measures
    that need captions are skipped for unconditional models. Keys: ``train_bound``,
    ``test_bound`` (and ``_se``), ``test_iwae`` (over the first ``sizes.iwae`` test images) and
    ``iwae_tightening`` (−L − (−L_K) on those same images), ``R@1`` … ``R@50``, ``med_r``, ``ssi``,
    ``fidelity_seen``, ``fidelity_heldout``, ``fidelity_heldout_val`` (on the ``heldout-val`` split, where
    ``splits`` has it) (percent; ``classifiers``: where the fidelity
    classifiers are cached), and ``seconds``. With a ``sharpener`` (:mod:`minidraw.sharpen`) the
    same measures are taken after sharpening too: ``test_bound_sharp`` (the paper's column,
    :func:`minidraw.measures.sharpened_bound`), ``ssi_sharp``, ``fidelity_seen_sharp``,
    ``fidelity_heldout_sharp``.

    ``cycle`` (asked for by name; not in :data:`DEFAULT_METRICS`): the pictures fidelity draws (the
    first ``sizes.fidelity`` captions of each split, the same seed) captioned by ``captioner`` —
    a :class:`~minidraw.captioner.Captioner`, ``(Captioner, Vocabulary)`` as
    :func:`minidraw.pretrained.load` gives, a shipped captioner's name or a checkpoint's path; by
    default the one shipped for the data — greedily, and scored against the captions they were
    drawn from: ``cycle_exact_seen``, ``cycle_slots_seen``, ``cycle_exact_heldout``,
    ``cycle_slots_heldout`` (percent, :func:`minidraw.scoring.agreement`), or ``cycle_bleu_seen``
    (corpus BLEU-4, 0–100) for MS-COCO; with a sharpener also their ``_sharp`` variants.
    """
    metrics = list(metrics)
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    no_likelihood = sorted(set(metrics) & set(LIKELIHOOD_METRICS)) if not kind_of(model).has_bound else []
    if no_likelihood:
        raise ValueError(f"{type(model).__name__} has no likelihood (a GAN), so no {', '.join(no_likelihood)}: "
                         f"measure it with {', '.join(NO_BOUND_METRICS)} (and cycle)")
    captioned = not isinstance(splits["test"], torch.Tensor)
    row: dict = {}
    start = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    reader = None
    if captioned and "cycle" in metrics:                                 # a missing captioner fails before any work
        reader, words = cycle_captioner(captioner, splits["test"], _device_of(model))
        facts = facts_for(words)
        if facts is None:
            require_sacrebleu()
    if "bound" in metrics:
        for name in ("train", "test"):
            e = bound(model, splits[name], sizes.bound, seed=seed)
            row[f"{name}_bound"], row[f"{name}_bound_se"] = e.mean, e.se
            say(f"{name} −L = {e} nats ({e.n} images)")
        if sharpener is not None:
            e = sharpened_bound(model, sharpener, splits["test"], sizes.bound, seed=seed)
            row["test_bound_sharp"], row["test_bound_sharp_se"] = e.mean, e.se
            say(f"test −L after sharpening = {e} nats")
    if "iwae" in metrics:
        e = iwae(model, splits["test"], sizes.iwae, sizes.K, seed=seed)
        same = bound(model, splits["test"], sizes.iwae, seed=seed)                # −L on the same images
        row["test_iwae"], row["test_iwae_se"], row["iwae_tightening"] = e.mean, e.se, same.mean - e.mean
        say(f"test −L_{sizes.K} = {e} nats ({e.n} images; {same.mean - e.mean:.2f} below their −L)")
    if captioned and "retrieval" in metrics:
        test = splits["test"]
        r = retrieval_metrics(retrieval_scores(model, test, min(sizes.queries, len(test)), sizes.candidates,
                                               seed=seed))
        row.update({f"R@{k}": v for k, v in r.recall.items()}, med_r=r.median_rank)
        say(f"retrieval over {sizes.queries} captions: {r.row()}")
    sharpeners = {"": None} if sharpener is None else {"": None, "_sharp": sharpener}
    drawings: dict = {}

    def drawn(name: str, suffix: str, sh) -> torch.Tensor:
        """The pictures drawn from split ``name``'s first ``sizes.fidelity`` captions (fidelity and the cycle
        score the same ones)."""
        if (name, suffix) not in drawings:
            drawings[name, suffix] = generate(model, splits[name], sizes.fidelity, seed=seed, sharpener=sh)[0]
        return drawings[name, suffix]

    if captioned and "ssi" in metrics:
        for suffix, sh in sharpeners.items():
            generated, truth = generate(model, splits["test"], sizes.ssi, seed=seed, sharpener=sh)
            row["ssi" + suffix] = ssi(generated, truth)
            say(f"SSI{' after sharpening' if sh is not None else ''} over {len(truth)} captions: "
                f"{row['ssi' + suffix]:.3f}")
    if captioned and "fidelity" in metrics:
        for (name, key), (suffix, sh) in itertools.product((("test", "fidelity_seen"), ("heldout", "fidelity_heldout"),
                                                            ("heldout-val", "fidelity_heldout_val")),
                                                           sharpeners.items()):
            if name not in splits:
                continue
            data = splits[name]
            generated = drawn(name, suffix, sh)
            result = caption_fidelity(generated, data.texts(np.arange(len(generated))), data, classifiers)
            row[key + suffix] = result.rate                                    # percent
            row[f"{key}{suffix}_by_template"] = result.by_template()
            say(f"fidelity, {name} captions{' after sharpening' if sh is not None else ''}: {row[key + suffix]:.1f} %")
    if reader is not None:
        for (name, key), (suffix, sh) in itertools.product((("test", "seen"), ("heldout", "heldout"),
                                                            ("heldout-val", "heldout_val")),
                                                           sharpeners.items()):
            if name not in splits:
                continue
            generated = drawn(name, suffix, sh)
            truth = splits[name].texts(np.arange(len(generated)))
            said = caption_images(reader, words, generated)
            after = " after sharpening" if sh is not None else ""
            if facts is None:
                row[f"cycle_bleu_{key}{suffix}"] = bleu4(said, truth)
                say(f"cycle, {name} captions{after}: BLEU-4 {row[f'cycle_bleu_{key}{suffix}']:.1f}")
                continue
            exact, slots = agreement(said, truth, facts)
            row[f"cycle_exact_{key}{suffix}"] = 100 * exact.float().mean().item()
            row[f"cycle_slots_{key}{suffix}"] = 100 * slots.float().mean().item()
            say(f"cycle, {name} captions{after}: {row[f'cycle_exact_{key}{suffix}']:.1f} % the same scene, "
                f"{row[f'cycle_slots_{key}{suffix}']:.1f} % of its facts")
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


# the table's columns, in order: (row key, title, format)
COLUMNS = (("train_bound", "train −L", "{:.1f}"), ("test_bound", "test −L", "{:.1f}"),
           ("test_bound_sharp", "test −L after sharpening", "{:.1f}"),
           ("test_iwae", "test −L_K", "{:.1f}"), ("iwae_tightening", "−L − (−L_K)", "{:.1f}"),
           ("R@1", "R@1", "{:.1f}"), ("R@5", "R@5", "{:.1f}"), ("R@10", "R@10", "{:.1f}"),
           ("R@50", "R@50", "{:.1f}"), ("med_r", "med r", "{:g}"),
           ("ssi", "SSI", "{:.3f}"), ("ssi_sharp", "SSI sharpened", "{:.3f}"),
           ("fidelity_seen", "fidelity seen %", "{:.1f}"), ("fidelity_heldout_val", "fidelity validation %", "{:.1f}"),
           ("fidelity_heldout", "fidelity held-out %", "{:.1f}"),
           ("fidelity_seen_sharp", "fidelity seen, sharpened %", "{:.1f}"),
           ("fidelity_heldout_sharp", "fidelity held-out, sharpened %", "{:.1f}"),
           ("cycle_exact_seen", "cycle exact seen %", "{:.1f}"), ("cycle_slots_seen", "cycle slots seen %", "{:.1f}"),
           ("cycle_exact_heldout", "cycle exact held-out %", "{:.1f}"),
           ("cycle_slots_heldout", "cycle slots held-out %", "{:.1f}"),
           ("cycle_exact_seen_sharp", "cycle exact seen, sharpened %", "{:.1f}"),
           ("cycle_slots_seen_sharp", "cycle slots seen, sharpened %", "{:.1f}"),
           ("cycle_exact_heldout_sharp", "cycle exact held-out, sharpened %", "{:.1f}"),
           ("cycle_slots_heldout_sharp", "cycle slots held-out, sharpened %", "{:.1f}"),
           ("cycle_bleu_seen", "cycle BLEU-4", "{:.1f}"), ("cycle_bleu_seen_sharp", "cycle BLEU-4, sharpened", "{:.1f}"))


def markdown_table(rows: dict[str, dict], columns=COLUMNS) -> str:
    """``{model name: row}`` as a Markdown table; columns no row has are left out, blanks are "–"."""
    cols = [c for c in columns if any(c[0] in r for r in rows.values())]
    lines = ["| model | " + " | ".join(title for _, title, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        cells = [fmt.format(r[key]) if key in r and r[key] is not None else "–" for key, _, fmt in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- what a training run evaluates beside its test bound ------------------------------------------------------
def fidelity_evaluation(cfg: TrainConfig, test_src) -> Callable[[torch.nn.Module], dict]:
    """``model -> {"fidelity_seen", "fidelity_heldout", ..._by_template}`` (and ``fidelity_heldout_val``
    where the run withholds validation compositions) on the first ``cfg.eval_fidelity`` captions of the
    test and held-out splits: the learning curve of what the model draws, not only of its bound."""
    heldout = heldout_for(test_src)
    if heldout is None:
        raise ValueError("eval_fidelity needs MNIST with captions or captioned shapes: caption fidelity has no "
                         f"checker for {type(test_src).__name__}")
    splits = {"test": test_src, "heldout": heldout}
    if validation_for(test_src) is not None:
        splits["heldout-val"] = validation_for(test_src)
    sizes = Sizes(fidelity=cfg.eval_fidelity)

    def fidelity(model) -> dict:
        row = evaluate(model, splits, ["fidelity"], sizes, classifiers=cfg.classifiers or None)
        row["eval_seconds"] = row.pop("seconds")
        return row
    return fidelity


def training_evaluation(kind: Kind, cfg: TrainConfig, test_src,
                        test: list) -> tuple[Optional[Callable], Optional[list]]:
    """``(evaluation, test)`` for process 0 of a training run: the callback the loop calls every ``eval_every``
    steps and the test batches whose bound it scores. Caption fidelity (``eval_fidelity``) for the drawing
    models; for the kinds without a bound (the sharpener, the captioner, the LAPGAN baseline) their own test
    numbers on ``test`` instead of a bound, and for a captioner of a closed grammar how often its caption
    describes the right scene."""
    if kind.has_bound:
        return (fidelity_evaluation(cfg, test_src) if cfg.eval_fidelity > 0 else None), test
    if cfg.eval_fidelity > 0 and kind.name == "captioner" and heldout_for(test_src) is not None:
        scene = accuracy_evaluation(test_src, cfg.eval_fidelity)
        return (lambda m: {**m.test_metrics(test), **scene(m)}), None
    return (lambda m: m.test_metrics(test)), None
