"""Training every model in minidraw: one loop, checkpoints that resume exactly, many GPUs.

    minidraw train --preset draw_mnist_small --set lr=3e-3 --out runs/draw --max-minutes 3
    minidraw train --preset aligndraw_mnist_small --set lr=3e-3 model.variant=noalign --out runs/noalign
    torchrun --nproc_per_node 8 -m minidraw train --preset aligndraw_coco_paper --out runs/coco

**Configuration** lives in :mod:`minidraw.configs` (:class:`TrainConfig`,
:func:`load_config`: defaults, then the preset's own training settings, a TOML file
or recipe, then ``key=value`` overrides); batches in :mod:`minidraw.data.batches`;
the command line in :mod:`minidraw.cli`. The model's configuration is saved inside
every checkpoint, so sampling needs nothing else.

**The objective** is −L in nats per image, averaged over the batch; a model kind with training-only
terms (:mod:`minidraw.compose`: ``what_adversary``, ``where_kl``) is trained inside its
:class:`~minidraw.outputs.Objective`, whose own weights ride in the checkpoint beside the model
(``"objective"``) but never in it. With ``terms_from = k`` the terms join only after step k of the same run
(the objective's ``active`` flag, set before every step): a mid-run switch rather than a second stage.

**Optimiser** as in the authors' released code (:mod:`minidraw.optim`): RMSProp (decay 0.9,
eps 1e-6), every parameter's gradient clipped to L2 norm 10; Adam is offered too.

**Exact resumption.** The batch of step k and the noise ε it draws are pure
functions of (seed, process rank, k) — epoch e is a seeded permutation, and
step k reseeds the generator — and a checkpoint holds model, optimiser and
step. Resuming from the checkpoint of step k therefore replays steps k+1, k+2,
… exactly as the uninterrupted run would have, on one process or many. Checkpoints are
written to a temporary file and renamed (a kill never leaves a half-written
``checkpoint.pt``), every ``checkpoint_every`` steps or ``checkpoint_minutes``,
at the end, and on Ctrl-C / SIGTERM. They load with ``weights_only=True``: a
checkpoint from a stranger cannot run code.

**Weight averaging.** With ``ema = d`` (e.g. 0.999) the run also keeps θ̄, the exponential moving average
of the weights (:func:`weight_average`). θ̄ is what the run evaluates, what its checkpoint holds as the model
(so ``minidraw sample``, ``evaluate``, ``init=`` and exports all take θ̄) — the trained weights travel beside
it as ``live``, and a resumed run goes on from those.

**Many GPUs.** Under ``torchrun`` (``WORLD_SIZE`` > 1) each process works on its own GPU
(:mod:`minidraw.distributed`), takes its slice of the global batch, and PyTorch's
DistributedDataParallel averages the gradients; rank 0 writes checkpoints and metrics. The
processes agree on stopping (all-reduced flags every step): a loss that became NaN, a time limit
or a signal on any one of them stops all at the same step, so none is left waiting in an
all-reduce. On CUDA the forward pass runs under bf16 autocast (``bf16 = true``; on CPUs with bf16
matrix units with ``cpu_bf16 = true``); ``compile = true`` wraps the model in ``torch.compile``.

**One run per directory.** A run holds its ``--out`` folder (:func:`minidraw.rundir.locked`): a second
run given the same folder is refused, naming the process that holds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from . import pretrained
from .checkpoint import load, save
from .configs import TrainConfig, data_of, preset
from .data import select
from .data.batches import Batch, Batches, fixed_batches
from .distributed import agree, setup
from .errors import UserError
from .evaluate import training_evaluation
from .measures import Estimate, bound_values
from .models import kind_of, kind_of_config
from .optim import clip_each, learning_rate, make_optimizer, unwrap, weight_average
from .outputs import Objective
from .rundir import CHECKPOINT, METRICS, locked, read_metrics
from .runtime import bf16_native
from .runtime import device as pick_device
from .runtime import forked_rng, seeded
from .text import pretrain_sentence_encoder
from .viz import plot_metrics


class TrainingDiverged(UserError, FloatingPointError):
    """The bound became NaN or infinite."""


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the noise ε of step ``step`` on process ``rank``: like the batch, a pure function
    of (seed, rank, step), so a resumed run — on any number of processes — draws what the
    uninterrupted run drew, and evaluating in between changes nothing."""
    return ((seed * 1_000_003 + rank) * 1_000_003 + step) % (1 << 63)


# ---- the loop --------------------------------------------------------------------------------
def dataset_bound(model, batches, seed: int = 0) -> tuple[float, float]:
    """Mean −L in nats per image over ``batches`` (a tensor of images, or a list of batches), and its
    standard error; the caller's random state is left as it was."""
    if isinstance(batches, torch.Tensor):
        batches = fixed_batches(batches, len(batches), device=batches.device)
    e = Estimate.of(bound_values(model, batches, seed))
    return e.mean, e.se


def _use_bf16(model, cfg: TrainConfig) -> bool:
    """bf16 autocast where the hardware multiplies bf16 (not, e.g., a T4, where it is slowly emulated):
    GPUs with ``bf16``, CPUs with AVX512-BF16 / AMX with ``cpu_bf16``."""
    where = next(model.parameters()).device
    wanted = cfg.bf16 if where.type == "cuda" else cfg.cpu_bf16 if where.type == "cpu" else False
    return wanted and bf16_native(where)


def train_step(model, opt: torch.optim.Optimizer, batch: Batch, cfg: TrainConfig, step: int,
               metrics: Optional[dict] = None, **kw) -> float:
    """One optimiser step on ``batch``; returns the loss (−L in nats per image for the drawing models,
    L_D + L_G for the sharpener). Raises on a non-finite loss. A model whose output has ``metrics()``
    (the sharpener: each player's loss, D's accuracy; ``what_adversary``: the adversary's error) fills
    ``metrics`` with them. An output's ``aux`` (``what_adversary``) joins the gradient, not the returned loss."""
    where = next(model.parameters()).device.type
    amp = torch.autocast(where, dtype=torch.bfloat16) if _use_bf16(model, cfg) else nullcontext()
    with amp:
        out = model(*batch, **kw)
        loss = (out.loss if hasattr(out, "loss") else out.bound).float().mean()   # −L, nats per image
        aux = getattr(out, "aux", None)                 # training-only terms (what_adversary): in the gradient,
        objective = loss if aux is None else loss + aux.float().mean()             # not in the logged bound
    bad = not bool(torch.isfinite(objective))
    if any(agree([bad])):                                   # every process stops at the same step, before backward
        what = "loss" if hasattr(out, "loss") else "bound" if not torch.isfinite(loss) else "training-only term"
        where = f" became {objective.item()}" if bad else " became NaN or infinite on another process"
        raise TrainingDiverged(f"the {what}{where} at step {step}")
    opt.zero_grad(set_to_none=True)
    objective.backward()
    clip_each(model.parameters(), cfg.clip)
    opt.step()
    if metrics is not None and hasattr(out, "metrics"):
        metrics.update(out.metrics())
    return loss.item()


class _Stop:
    """Turns Ctrl-C / SIGTERM into a request to stop after the current step (and checkpoint)."""

    def __init__(self):
        self.requested, self.previous = False, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a notebook worker): no handler
                pass
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def fit(model, batches, cfg: TrainConfig, progress: bool = True, *, out: Optional[str | os.PathLike] = None,
        test: Optional[list] = None, opt: Optional[torch.optim.Optimizer] = None, start_step: int = 0,
        extra: Optional[dict] = None, rank: int = 0,
        evaluation: Optional[Callable[[torch.nn.Module], dict]] = None,
        ema: Optional[AveragedModel] = None) -> list[dict]:
    """The training loop of every model; returns the log (one dict per step, and evaluations).

    ``batches``: a tensor of images, a callable ``step -> batch`` (:class:`Batches`), or an
    iterator of batches. With ``out`` a directory, it checkpoints (and resumes through
    :func:`run`) and appends ``metrics.jsonl``; ``test`` (a list of batches) is evaluated
    every ``eval_every`` steps, and so is ``evaluation(model) -> dict`` (e.g. caption fidelity),
    whose numbers go into the log beside the step and the wall time. With ``cfg.ema`` (or ``ema``, an
    :func:`weight_average` to go on with) the average θ̄ follows every step; evaluations score θ̄, and the
    checkpoint's model is θ̄ with the trained weights beside it (``live``), so resuming is exact.
    """
    if isinstance(batches, torch.Tensor):
        batches = Batches(batches, cfg.batch_size, cfg.seed, device=batches.device)
    if not callable(batches):
        it = iter(batches)
        batches = lambda step: next(it)  # noqa: E731
    opt = opt or make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.beta1)
    bare = unwrap(model)
    objective = bare if isinstance(bare, Objective) else None           # training-only terms around the model
    inner = bare.model if objective is not None else bare
    ema = ema if ema is not None else weight_average(inner, cfg.ema)
    shown = ema.module if ema is not None else inner                    # what evaluations score and checkpoints hold
    key = "bound" if kind_of(inner).has_bound else "loss"               # the sharpener: a loss
    out = Path(out) if out is not None and rank == 0 else None
    metrics = open(out / METRICS, "a", buffering=1) if out else None   # line-buffered: a kill loses no line
    log, start, last_ckpt, running, step = [], time.perf_counter(), time.perf_counter(), None, start_step

    def checkpoint(step):
        live = {"live": inner.state_dict(), "ema_updates": int(ema.n_averaged)} if ema is not None else {}
        terms = {"objective": objective.terms_state()} if objective is not None else {}
        save(out / CHECKPOINT, shown, {**(extra or {}), "train": asdict(cfg), "step": step,
                                       "optimizer": opt.state_dict(), **live, **terms})

    def record(entry):
        log.append(entry)
        if metrics:
            metrics.write(json.dumps(entry) + "\n")

    bar = tqdm(initial=start_step, total=cfg.max_steps if cfg.max_steps < 1_000_000 else None,
               disable=not progress or rank != 0, unit="step")
    try:
        with _Stop() as stop, forked_rng():    # each step reseeds; the caller's random state comes back after
            for step in range(start_step + 1, cfg.max_steps + 1):
                torch.manual_seed(step_seed(cfg.seed, rank, step))
                for group in opt.param_groups:
                    group["lr"] = learning_rate(cfg, step)
                if objective is not None:
                    objective.active = step > cfg.terms_from       # the training-only terms, from mid-run on
                extras: dict = {}
                try:
                    loss = train_step(model, opt, batches(step), cfg, step, metrics=extras)
                except TrainingDiverged as e:
                    where = (f"the last good checkpoint is {out / CHECKPOINT}" if out and (out / CHECKPOINT).exists()
                             else "no checkpoint was written")
                    raise TrainingDiverged(f"{e}; training stopped, {where}. Lower the learning rate "
                                           "(--set lr=...) and resume.") from None
                if ema is not None:
                    ema.update_parameters(inner)                     # θ̄_k = d θ̄_{k−1} + (1 − d) θ_k
                elapsed = time.perf_counter() - start
                running = loss if running is None else 0.98 * running + 0.02 * loss
                record({"step": step, key: loss, "seconds": round(elapsed, 3), **extras})
                bar.update()
                bar.set_postfix({key: f"{running:.3g}"})
                # every process stops at the same step: a time limit or a signal on any one stops all
                timed_out, stopping = agree([bool(cfg.max_minutes and elapsed > 60 * cfg.max_minutes),
                                             stop.requested])
                done = step == cfg.max_steps or timed_out
                if test is not None and (done or (cfg.eval_every and step % cfg.eval_every == 0)) and rank == 0:
                    mean, se = dataset_bound(shown, test)
                    record({"step": step, "test_bound": mean, "test_se": se})
                    bar.write(f"step {step}: test −L = {mean:.2f} ± {se:.2f} nats")
                if evaluation is not None and (done or (cfg.eval_every and step % cfg.eval_every == 0)) and rank == 0:
                    result = evaluation(shown)
                    record({"step": step, "seconds": round(time.perf_counter() - start, 3), **result})
                    bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()
                                                         if isinstance(v, float)))
                if out and (done or stopping or step % cfg.checkpoint_every == 0
                            or time.perf_counter() - last_ckpt > 60 * cfg.checkpoint_minutes):
                    checkpoint(step)
                    last_ckpt = time.perf_counter()
                if done or stopping:
                    if stopping and rank == 0:
                        bar.write(f"stopped at step {step}" + (f"; resume with the same --out {out}" if out else ""))
                    break
    finally:
        bar.close()
        if metrics:
            metrics.close()
    return log


# ---- a whole run: data, model, resumption, processes ---------------------------------------
def data_parallel(trainee: torch.nn.Module, cfg: TrainConfig, device_ids: Optional[list[int]] = None):
    """``trainee`` in DistributedDataParallel. With ``terms_from`` the objective's own weights (the adversary) take no
    part in the steps before the switch, so DDP is told that some parameters may go unused in a step."""
    return torch.nn.parallel.DistributedDataParallel(trainee, device_ids=device_ids,
                                                     find_unused_parameters=cfg.terms_from > 0)


def init_weights(model, source: str, objective: Optional[Objective] = None) -> str:
    """Copy the weights of ``source`` — a checkpoint file, or the name of a shipped model
    (:mod:`minidraw.pretrained`) — into ``model``; the two configurations must agree. This is how a
    long run continues on a new machine from the last exported (float16) weights. An ``objective``
    whose terms the source checkpoint holds too (the same adversary) goes on from them. Returns the
    sha256 of the file the weights came from (how an export knows a run is the next stage of a file)."""
    if Path(source).is_file():
        path = Path(source)
    elif source in pretrained.list():
        path = pretrained.path(source)
    else:
        raise ValueError(f"init={source!r} is neither a checkpoint file nor a shipped model "
                         f"({', '.join(pretrained.list()) or 'none shipped'})")
    saved, ckpt = load(path)
    if saved.cfg != model.cfg:                                          # same class, same settings
        raise ValueError(f"init={source!r} holds a different model ({saved.cfg}); give the same configuration")
    state = model.state_dict()
    model.load_state_dict({k: v.to(state[k].dtype) for k, v in saved.state_dict().items()})
    terms = ckpt.get("objective")
    if objective is not None and terms:
        mine = objective.terms_state()
        if set(terms) == set(mine) and all(terms[k].shape == mine[k].shape for k in mine):
            objective.load_terms(terms)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def objective_for(model, cfg: TrainConfig):
    """The model itself, or its kind's :class:`~minidraw.outputs.Objective` when the run asks for training-only
    terms (``what_adversary``, ``where_kl``); ``ValueError`` for terms its kind has none of."""
    if not (cfg.what_adversary or cfg.where_kl != 1):
        return model
    kind = kind_of(model)
    if kind.objective is None:
        raise ValueError(f"what_adversary and where_kl are terms of the what/where generator's training (preset "
                         f"compose_*, model.what_where=true); {cfg.preset} is {kind.words}")
    return kind.objective(model, cfg.what_adversary, cfg.where_kl)


def run(cfg: TrainConfig, out: Optional[str | os.PathLike] = None, progress: bool = True):
    """Train ``cfg`` (resuming from ``out/checkpoint.pt`` when there is one); returns ``(model, log)``:
    distributed set-up, data, the model, resume or init, then the loop."""
    rank, world, local = setup()
    with locked(out) if out and rank == 0 else nullcontext():   # one run per directory
        return _run(cfg, out, progress, rank, world, local)


def _run(cfg: TrainConfig, out, progress: bool, rank: int, world: int, local: int):
    """:func:`run` on process ``rank`` of ``world``, with the run directory ``out`` held."""
    device = pick_device(local_rank=local)
    model_cfg = preset(cfg.preset, **cfg.model)
    kind = kind_of_config(model_cfg)
    train_src, test_src, source, vocab = select.data_for(data_of(cfg.preset), cfg.seed, cfg.data or None,
                                                                cfg.heldout_val)
    if kind.takes_caption and vocab is not None and model_cfg.vocab_size != len(vocab):
        model_cfg.vocab_size = len(vocab)    # e.g. COCO: the prepared vocabulary decides
    with seeded(cfg.seed):                 # the initial weights: a function of the seed
        model = kind.model(model_cfg).to(device)
        trainee = objective_for(model, cfg).to(device)   # the model, or it and its training-only terms
    opt = make_optimizer(cfg.optimizer, trainee.parameters(), cfg.lr, cfg.beta1)
    start, ckpt = _resume(out, model, trainee, opt, rank, device)
    if start and bool(ckpt.get("train", {}).get("heldout_val", False)) != cfg.heldout_val:
        raise ValueError(f"{out} was trained with heldout_val={not cfg.heldout_val}: its training data would change "
                         f"mid-run; resume with --set heldout_val={not cfg.heldout_val} or use another --out")
    init_sha256 = _start(model, trainee, cfg, train_src, rank, progress) if start == 0 else ckpt.get("init_sha256")
    ema = weight_average(model, cfg.ema)
    if ema is not None and start > 0 and "live" in ckpt:                # the average goes on where it was
        ema.module.load_state_dict(ckpt["model"])
        ema.n_averaged.fill_(int(ckpt["ema_updates"]))
    if rank == 0:
        print(source)
    net = data_parallel(trainee, cfg, [local] if device.type == "cuda" else None) if world > 1 else trainee
    net = torch.compile(net) if cfg.compile else net
    batches = Batches(train_src, cfg.batch_size, cfg.seed, rank, world, device)
    test = fixed_batches(test_src, cfg.eval_examples, device=device) if rank == 0 else None
    evaluation, test = training_evaluation(kind, cfg, test_src, test) if rank == 0 else (None, None)
    extra = {"data": source, **({"vocab": vocab.to_dict()} if vocab is not None else {}),
             **({"init_sha256": init_sha256} if init_sha256 else {})}
    log = fit(net, batches, cfg, progress, out=out, test=test, opt=opt, start_step=start, extra=extra, rank=rank,
              evaluation=evaluation, ema=ema)
    if out and rank == 0:
        plot_metrics(out)                                                  # metrics.png beside metrics.jsonl
    return (ema.module if ema is not None else model), log


def _start(model, trainee, cfg: TrainConfig, train_src, rank: int, progress: bool) -> Optional[str]:
    """A new run's first weights beyond the seed's: ``init``'s (returns the sha256 of their file), or, for
    skipthoughtDRAW with its own encoder, the frozen sentence encoder pre-trained on the captions."""
    if cfg.init:
        sha256 = init_weights(model, cfg.init, trainee if trainee is not model else None)
        if rank == 0:
            print(f"initialised from {cfg.init}")
        return sha256
    if getattr(model, "internal_encoder", False):
        c = model.cfg
        encoder, loss = pretrain_sentence_encoder(train_src, c.vocab_size, c.embed_size, c.lang_size,
                                                  steps=cfg.sentence_pretrain_steps, seed=cfg.seed,
                                                  progress=progress and rank == 0)
        model.frozen_language.load_state_dict(encoder.state_dict())
        if rank == 0:
            print(f"frozen sentence encoder: caption autoencoder, {loss:.3f} nats per word after "
                  f"{cfg.sentence_pretrain_steps} steps")
    return None


def _resume(out, model, trainee, opt, rank: int, device) -> tuple[int, dict]:
    """``(step, checkpoint)`` of the run in ``out`` put back into ``model``, its objective ``trainee`` and ``opt``;
    ``(0, {})`` for a new run."""
    if not out:
        return 0, {}
    ckpt_path = Path(out) / CHECKPOINT
    Path(out).mkdir(parents=True, exist_ok=True)
    stale = ckpt_path.with_name(CHECKPOINT + ".tmp")
    if stale.exists() and rank == 0:
        stale.unlink()   # a checkpoint write that a kill interrupted; the previous one is intact
    if not ckpt_path.exists():
        return 0, {}
    saved, ckpt = load(ckpt_path, map_location=device)
    if saved.cfg != model.cfg:
        raise ValueError(f"{ckpt_path} holds a different model ({saved.cfg}); use another --out to start afresh")
    model.load_state_dict(ckpt["live"] if "live" in ckpt else saved.state_dict())   # ema: the trained weights
    if trainee is not model:
        trainee.load_terms(ckpt.get("objective", {}))
    opt.load_state_dict(ckpt["optimizer"])
    start = int(ckpt["step"])
    if rank == 0:   # drop metrics a killed run wrote after its last checkpoint: the curve replays them
        rows = [r for r in read_metrics(out) if r["step"] <= start]
        (Path(out) / METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"resuming {ckpt_path} at step {start}")
    return start, ckpt
