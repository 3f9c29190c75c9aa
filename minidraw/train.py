"""Training every model in minidraw: one loop, checkpoints that resume exactly, many GPUs.

    minidraw train --preset draw_mnist_small --set lr=3e-3 --out runs/draw --max-minutes 3
    minidraw train --preset aligndraw_mnist_small --set lr=3e-3 model.variant=noalign --out runs/noalign
    torchrun --nproc_per_node 8 -m minidraw train --preset aligndraw_coco_paper --out runs/coco

**Configuration** lives in :mod:`minidraw.configs` (:class:`TrainConfig`,
:func:`load_config`: defaults, then the preset's own training settings, a TOML file
or recipe, then ``key=value`` overrides); batches in :mod:`minidraw.data.batches`;
the command line in :mod:`minidraw.cli`. Both are re-exported here, so
``train.TrainConfig`` and ``train.Batches`` keep working. The model's configuration
is saved inside every checkpoint, so sampling needs nothing else.

**Optimiser** as in the authors' released code: RMSProp (decay 0.9, eps 1e-6),
every parameter's gradient clipped to L2 norm 10; Adam is offered too. The loss
is −L in nats per image, averaged over the batch.

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

**Many GPUs.** Under ``torchrun`` (``WORLD_SIZE`` > 1) each process takes its
slice of the global batch and PyTorch's DistributedDataParallel averages the
gradients; rank 0 writes checkpoints and metrics. The processes agree on stopping
(an all-reduced flag every step): a time limit or a signal on any one of them stops
all at the same step, so none is left waiting in an all-reduce. On CUDA the forward pass runs
under bf16 autocast (``bf16 = true``; on CPUs with bf16 matrix units with ``cpu_bf16 = true``); ``compile = true`` wraps the model in
``torch.compile``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from .checkpoint import kind_of, load, read, save  # noqa: F401 - re-exported: minidraw.train.load/save
from .configs import RECIPES, TrainConfig, build, load_config, preset, recipe, recipes  # noqa: F401
from .data import select
from .data.batches import Batch, Batches, caption_batches, fixed_batches  # noqa: F401 - re-exported
from .data.select import TEST_SEED, mnist_binarized  # noqa: F401 - re-exported: minidraw.train.*
from .errors import UserError
from .runtime import device as pick_device
from .runtime import bf16_native, forked_rng, seeded

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class TrainingDiverged(UserError, FloatingPointError):
    """The bound became NaN or infinite."""


# ---- optimiser and learning rate -----------------------------------------------------------
def make_optimizer(name: str, params, lr: float, beta1: float = 0.9) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-6)
    if name == "adam":
        if not 0 <= beta1 < 1:
            raise ValueError(f"beta1 (Adam's β₁) must lie in [0, 1), got {beta1}")
        return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999))
    raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {name!r}")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of step ``step`` (1-based): a linear warm-up over ``warmup_steps``, then
    constant, or a half cosine from ``lr`` down to ``lr · lr_min`` at ``max_steps``::

        η_k = η_min + (η − η_min) · ½ (1 + cos(π k / K))        (Loshchilov & Hutter, 2017)
    """
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {cfg.lr_schedule!r}")
    warm = min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.lr_schedule == "constant":
        return cfg.lr * warm
    progress = min(1.0, max(0, step - 1) / max(1, cfg.max_steps - 1))     # 0 at the first step, 1 at the last
    low = cfg.lr * cfg.lr_min
    return warm * (low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * progress)))


def weight_average(model, decay: float) -> Optional[AveragedModel]:
    """``ema`` > 0: the exponential moving average of the weights (Polyak averaging), one update after every
    optimiser step — ``None`` when ``decay`` is 0::

        θ̄_1 = θ_1,    θ̄_k = d · θ̄_{k−1} + (1 − d) · θ_k            (d = decay; about 1 / (1 − d) steps' memory)

    The trained weights θ_k wander about a valley floor from step to step; θ̄ is their centre, and what a run
    evaluates, checkpoints as its model and exports (torch.optim.swa_utils.AveragedModel)."""
    if not decay:
        return None
    if not 0 < decay < 1:
        raise ValueError(f"ema (the average's decay) must lie in [0, 1), got {decay}")
    return AveragedModel(_bare(model), multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def _bare(model):
    """The model inside torch.compile and DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def clip_each(params, max_norm: float) -> None:
    """Clip every parameter's gradient to L2 norm ``max_norm`` on its own (the released code's rule)."""
    for p in params:
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_(p, max_norm)


def data_for(cfg: TrainConfig, model_cfg):
    """Training source, test source, a description, and the vocabulary (or None), for a run
    (:func:`minidraw.data.select.data_for`: the training data follows ``cfg.seed``, the test data
    does not)."""
    return select.data_for(cfg.preset, model_cfg, cfg.seed, cfg.data or None)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the noise ε of step ``step`` on process ``rank``: like the batch, a pure function
    of (seed, rank, step), so a resumed run — on any number of processes — draws what the
    uninterrupted run drew, and evaluating in between changes nothing."""
    return ((seed * 1_000_003 + rank) * 1_000_003 + step) % (1 << 63)


# ---- the loop --------------------------------------------------------------------------------
def dataset_bound(model, batches, seed: int = 0) -> tuple[float, float]:
    """Mean −L in nats per image over ``batches`` (a tensor of images, or a list of batches), and its
    standard error; the caller's random state is left as it was."""
    from .measures import Estimate, bound_values
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
    if not torch.isfinite(objective):
        what = "loss" if hasattr(out, "loss") else "bound" if not torch.isfinite(loss) else "adversary's term"
        raise TrainingDiverged(f"the {what} became {objective.item()} at step {step}")
    opt.zero_grad(set_to_none=True)
    objective.backward()
    clip_each(model.parameters(), cfg.clip)
    opt.step()
    if metrics is not None and hasattr(out, "metrics"):
        metrics.update(out.metrics())
    return loss.item()


def agree(flags: list[bool]) -> list[bool]:
    """Each flag, true when it is true on any process (an all-reduced maximum), so that processes
    decide together; the flags as they are when ``torch.distributed`` is not running. One tiny
    all-reduce: cheap enough for every step."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [bool(f) for f in flags]
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([float(bool(f)) for f in flags], device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


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
    bare = _bare(model)
    ema = ema if ema is not None else weight_average(bare, cfg.ema)
    shown = ema.module if ema is not None else bare                     # what evaluations score and checkpoints hold
    key = "bound" if getattr(bare, "has_bound", True) else "loss"       # the sharpener: a loss
    out = Path(out) if out is not None and rank == 0 else None
    metrics = open(out / METRICS, "a", buffering=1) if out else None   # line-buffered: a kill loses no line
    log, start, last_ckpt, running, step = [], time.perf_counter(), time.perf_counter(), None, start_step

    def checkpoint(step):
        live = {"live": bare.state_dict(), "ema_updates": int(ema.n_averaged)} if ema is not None else {}
        save(out / CHECKPOINT, shown, {**(extra or {}), "train": asdict(cfg), "step": step,
                                       "optimizer": opt.state_dict(), **live})

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
                extras: dict = {}
                try:
                    loss = train_step(model, opt, batches(step), cfg, step, metrics=extras)
                except TrainingDiverged as e:
                    where = (f"the last good checkpoint is {out / CHECKPOINT}" if out and (out / CHECKPOINT).exists()
                             else "no checkpoint was written")
                    raise TrainingDiverged(f"{e}; training stopped, {where}. Lower the learning rate "
                                           "(--set lr=...) and resume.") from None
                if ema is not None:
                    ema.update_parameters(bare)                      # θ̄_k = d θ̄_{k−1} + (1 − d) θ_k
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


def fidelity_evaluation(cfg: TrainConfig, test_src) -> Callable[[torch.nn.Module], dict]:
    """``model -> {"fidelity_seen", "fidelity_heldout", ..._by_template}`` on the first
    ``cfg.eval_fidelity`` captions of the test and held-out splits: the learning curve of what
    the model draws, not only of its bound."""
    from .evaluate import Sizes, evaluate
    heldout = select.heldout_for(test_src)
    if heldout is None:
        raise ValueError("eval_fidelity needs MNIST with captions or captioned shapes: caption fidelity has no "
                         f"checker for {type(test_src).__name__}")
    splits = {"test": test_src, "heldout": heldout}
    sizes = Sizes(fidelity=cfg.eval_fidelity)

    def fidelity(model) -> dict:
        row = evaluate(model, splits, ["fidelity"], sizes, classifiers=cfg.classifiers or None)
        row["eval_seconds"] = row.pop("seconds")
        return row
    return fidelity


# ---- a whole run: data, model, resumption, processes ---------------------------------------
def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), starting the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def read_metrics(out: str | os.PathLike) -> list[dict]:
    path = Path(out) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_metrics(out: str | os.PathLike):
    """The training curve from ``metrics.jsonl``, saved as ``metrics.png``: the bound per step (and
    the test bound); for the sharpener, each player's loss and D's accuracy on real and fake."""
    from matplotlib.figure import Figure   # not pyplot: no backend switch, safe inside notebooks
    rows = read_metrics(out)
    gan = any("d_loss" in r for r in rows)
    fig = Figure(figsize=(10 if gan else 6, 3.5), layout="constrained")
    axes = fig.subplots(1, 2 if gan else 1, squeeze=False)[0]
    ax = axes[0]
    for name, label in ((("d_loss", "L_D"), ("g_loss", "L_G")) if gan else (("bound", "training batch"),)):
        ax.plot([r["step"] for r in rows if name in r], [r[name] for r in rows if name in r], alpha=0.5, label=label)
    tests = [r for r in rows if "test_bound" in r]
    if tests:
        ax.errorbar([r["step"] for r in tests], [r["test_bound"] for r in tests],
                    [r["test_se"] for r in tests], marker="o", label="test")
    ax.set_xlabel("step"), ax.set_ylabel("loss (nats per image)" if gan else "−L (nats per image)"), ax.legend()
    if gan:
        for name, label in (("d_acc_real", "D right on real"), ("d_acc_fake", "D right on sharpened")):
            axes[1].plot([r["step"] for r in rows if name in r], [r[name] for r in rows if name in r], alpha=0.5,
                         label=label)
        axes[1].axhline(0.5, color="grey", lw=0.8, ls="--")
        axes[1].set_xlabel("step"), axes[1].set_ylabel("accuracy"), axes[1].legend()
    fig.savefig(Path(out) / "metrics.png", dpi=100)
    return fig


def init_weights(model, source: str) -> None:
    """Copy the weights of ``source`` — a checkpoint file, or the name of a shipped model
    (:mod:`minidraw.pretrained`) — into ``model``; the two configurations must agree. This is how a
    long run continues on a new machine from the last exported (float16) weights."""
    if Path(source).is_file():
        saved, _ = load(source)
    else:
        from . import pretrained
        if source not in pretrained.list():
            raise ValueError(f"init={source!r} is neither a checkpoint file nor a shipped model "
                             f"({', '.join(pretrained.list()) or 'none shipped'})")
        saved, _ = load(pretrained.path(source))
    # settings of training only (CaptionDrawConfig.TRAINING_ONLY) may differ: what_adversary's adversary may be added
    # to a model that had none (a new adversary, starting fresh) or left behind, where_kl only weighs a term of the
    # objective. Every other field and weight must agree
    skip = getattr(type(model.cfg), "TRAINING_ONLY", ())
    mine, theirs = ({k: v for k, v in c.to_dict().items() if k not in skip} for c in (model.cfg, saved.cfg))
    if mine != theirs:
        raise ValueError(f"init={source!r} holds a different model ({saved.cfg}); give the same configuration")
    state, adversary = model.state_dict(), lambda k: "adversary" in k.split(".")   # noqa: E731
    weights = {k: v.to(state[k].dtype) for k, v in saved.state_dict().items() if not adversary(k)}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or not all(map(adversary, missing)):
        raise ValueError(f"init={source!r}: weights do not match the model (missing {missing}, unexpected {unexpected})")


def run(cfg: TrainConfig, out: Optional[str | os.PathLike] = None, progress: bool = True):
    """Train ``cfg`` (resuming from ``out/checkpoint.pt`` when there is one); returns ``(model, log)``."""
    rank, world, local = _distributed()
    device = pick_device(local_rank=local)
    model_cfg = preset(cfg.preset, **cfg.model)
    train_src, test_src, source, vocab = data_for(cfg, model_cfg)
    captioned = select._captioned(model_cfg)
    if captioned and vocab is not None and model_cfg.vocab_size != len(vocab):
        model_cfg.vocab_size = len(vocab)    # e.g. COCO: the prepared vocabulary decides
    with seeded(cfg.seed):                 # the initial weights: a function of the seed
        model = build(model_cfg).to(device)
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.beta1)
    start = 0
    ckpt_path = Path(out) / CHECKPOINT if out else None
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        stale = ckpt_path.with_name(CHECKPOINT + ".tmp")
        if stale.exists() and rank == 0:
            stale.unlink()   # a checkpoint write that a kill interrupted; the previous one is intact
    if ckpt_path and ckpt_path.exists():
        saved, ckpt = load(ckpt_path, map_location=device)
        if saved.cfg.to_dict() != model_cfg.to_dict():
            raise ValueError(f"{ckpt_path} holds a different model ({saved.cfg}); use another --out to start afresh")
        model.load_state_dict(ckpt["live"] if "live" in ckpt else saved.state_dict())   # ema: the trained weights
        opt.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        if rank == 0:   # drop metrics a killed run wrote after its last checkpoint: the curve replays them
            rows = [r for r in read_metrics(out) if r["step"] <= start]
            (Path(out) / METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
            print(f"resuming {ckpt_path} at step {start}")
    if start == 0 and cfg.init:
        init_weights(model, cfg.init)
        if rank == 0:
            print(f"initialised from {cfg.init}")
    elif start == 0 and getattr(model, "frozen_language", None) is not None:   # skipthought, offline encoder
        from .text import pretrain_sentence_encoder
        encoder, loss = pretrain_sentence_encoder(train_src, model_cfg.vocab_size, model_cfg.embed_size,
                                                  model_cfg.lang_size, steps=model_cfg.sentence_pretrain_steps,
                                                  seed=cfg.seed, progress=progress and rank == 0)
        model.frozen_language.load_state_dict(encoder.state_dict())
        if rank == 0:
            print(f"frozen sentence encoder: caption autoencoder, {loss:.3f} nats per word after "
                  f"{model_cfg.sentence_pretrain_steps} steps")
    ema = weight_average(model, cfg.ema)
    if ema is not None and start > 0 and "live" in ckpt:                # the average goes on where it was
        ema.module.load_state_dict(saved.state_dict())
        ema.n_averaged.fill_(int(ckpt["ema_updates"]))
    if rank == 0:
        print(source)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    batches = Batches(train_src, cfg.batch_size, cfg.seed, rank, world, device)
    test = fixed_batches(test_src, cfg.eval_examples, device=device) if rank == 0 else None
    extra = {"data": source, **({"vocab": vocab.to_dict()} if vocab is not None else {})}
    evaluation = fidelity_evaluation(cfg, test_src) if cfg.eval_fidelity > 0 and rank == 0 else None
    if not getattr(model, "has_bound", True):   # the sharpener, the captioner: their own test numbers, no bound
        held_back, test = test, None
        evaluation = (lambda m: m.test_metrics(held_back)) if rank == 0 else None  # noqa: E731
        if rank == 0 and cfg.eval_fidelity > 0 and kind_of(model) == "captioner" and select.heldout_for(test_src) is not None:
            from .scoring import accuracy_evaluation   # and how often its caption describes the right scene
            scene = accuracy_evaluation(test_src, cfg.eval_fidelity)
            evaluation = (lambda m: {**m.test_metrics(held_back), **scene(m)})  # noqa: E731
    log = fit(net, batches, cfg, progress, out=out, test=test, opt=opt, start_step=start, extra=extra, rank=rank,
              evaluation=evaluation, ema=ema)
    if out and rank == 0:
        plot_metrics(out)
    return (ema.module if ema is not None else model), log
