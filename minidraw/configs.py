"""Every configuration in one place: named model presets — the papers' hyper-parameters for GPUs,
and small ones for a laptop CPU — each with the data set it learns from and the training settings it
brings; :class:`TrainConfig`, a training run's settings, and :func:`load_config`, which layers
defaults, preset, a TOML file or shipped recipe (``minidraw/recipes/*.toml``) and ``key=value``
overrides. The model a configuration describes is :func:`minidraw.models.build`'s."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable, Optional, get_type_hints

from .aligndraw import CaptionDrawConfig
from .baselines import BaselineConfig
from .captioner import CaptionerConfig
from .compose import ComposeDrawConfig
from .draw import DrawConfig
from .lapgan import LapGanConfig
from .sharpen import SharpenConfig

# the data sets a preset names (minidraw.data.select.data_for reads each)
DATA_SETS = ("mnist", "mnist_captions", "shapes", "coco")


@dataclass(frozen=True)
class Preset:
    """A named model configuration and the data set it learns from."""

    model: object
    data: str

    def __post_init__(self) -> None:
        if self.data not in DATA_SETS:
            raise ValueError(f"data must be one of {DATA_SETS}, got {self.data!r}")


PRESETS: dict[str, Preset] = {
    # Gregor et al. (2015), binarised MNIST with attention: 28×28, 64 steps, read 2×2, write 5×5,
    # 256-unit LSTMs, 100-d z, N(0, I) prior. Their bound: −log p(x) ≤ 80.97 nats.
    "draw_mnist_paper": Preset(DrawConfig(A=28, B=28, C=1, T=64, read_N=2, write_N=5, enc_size=256, dec_size=256,
                                          z_size=100, learned_prior=False), "mnist"),
    # A DRAW that draws recognisable digits after a few minutes on a 2-core CPU. A 5×5 read (not
    # 2×2) gets it off the "average digit" plateau (~206 nats) within the first minute.
    "draw_mnist_small": Preset(DrawConfig(A=28, B=28, C=1, T=10, read_N=5, write_N=5, enc_size=128, dec_size=128,
                                          z_size=10, learned_prior=True), "mnist"),
    # alignDRAW, the authors' released configurations (DESIGN §2 table).
    "aligndraw_mnist_paper": Preset(CaptionDrawConfig(A=60, B=60, C=1, T=32, read_N=8, write_N=8, enc_size=300,
                                                      dec_size=300, z_size=150, canvas_init=-10.0, variant="align",
                                                      vocab_size=23, embed_size=128, lang_size=128, align_size=512), "mnist_captions"),
    "aligndraw_coco_paper": Preset(CaptionDrawConfig(A=32, B=32, C=3, T=32, read_N=9, write_N=9, enc_size=550,
                                                     dec_size=550, z_size=275, variant="align", vocab_size=0,
                                                     embed_size=128, lang_size=128, align_size=512), "coco"),
    # Small alignDRAWs for a 2-core CPU: a few minutes of training places digits / shapes.
    "aligndraw_mnist_small": Preset(CaptionDrawConfig(A=60, B=60, C=1, T=12, read_N=6, write_N=6, enc_size=128,
                                                      dec_size=128, z_size=16, canvas_init=-10.0, variant="align",
                                                      vocab_size=23, embed_size=32, lang_size=64, align_size=64), "mnist_captions"),
    "aligndraw_shapes_small": Preset(CaptionDrawConfig(A=32, B=32, C=3, T=8, read_N=4, write_N=5, enc_size=128,
                                                       dec_size=128, z_size=16, variant="align", vocab_size=31,
                                                       embed_size=32, lang_size=64, align_size=64), "shapes"),
    # Ours (minidraw.compose): alignDRAW with word-valued alignment and the what/where generator, the sizes of
    # aligndraw_mnist_small; word ids 13..22 are the digits, the content words the what path reads.
    "compose_mnist_small": Preset(ComposeDrawConfig(A=60, B=60, C=1, T=12, read_N=6, write_N=6, enc_size=128,
                                                    dec_size=128, z_size=16, canvas_init=-10.0, vocab_size=23,
                                                    embed_size=32, lang_size=64, align_size=64, content_first=13,
                                                    content_last=22), "mnist_captions"),
    "compose_mnist_paper": Preset(ComposeDrawConfig(A=60, B=60, C=1, T=32, read_N=8, write_N=8, enc_size=300,
                                                    dec_size=300, z_size=150, canvas_init=-10.0, vocab_size=23,
                                                    embed_size=128, lang_size=128, align_size=512, content_first=13,
                                                    content_last=22), "mnist_captions"),
    # The paper's baselines, conditional VAEs on the sentence vector (minidraw.baselines). The paper
    # gives no sizes for them: these are ours. The small ones have about as many parameters as
    # aligndraw_*_small (~0.4 M) and the same language model.
    "fcvae_mnist_small": Preset(BaselineConfig(A=60, B=60, C=1, kind="fc", vocab_size=23, embed_size=32, lang_size=64,
                                               hidden=48, z_size=32), "mnist_captions"),
    "convvae_mnist_small": Preset(BaselineConfig(A=60, B=60, C=1, kind="conv", vocab_size=23, embed_size=32,
                                                 lang_size=64, channels=16, z_size=32), "mnist_captions"),
    "fcvae_shapes_small": Preset(BaselineConfig(A=32, B=32, C=3, kind="fc", vocab_size=31, embed_size=32, lang_size=64,
                                                hidden=56, z_size=32), "shapes"),
    "convvae_shapes_small": Preset(BaselineConfig(A=32, B=32, C=3, kind="conv", vocab_size=31, embed_size=32,
                                                  lang_size=64, channels=16, z_size=32), "shapes"),
    "fcvae_coco_paper": Preset(BaselineConfig(A=32, B=32, C=3, kind="fc", vocab_size=0, embed_size=128, lang_size=128,
                                              hidden=1024, z_size=150), "coco"),
    "convvae_coco_paper": Preset(BaselineConfig(A=32, B=32, C=3, kind="conv", vocab_size=0, embed_size=128,
                                                lang_size=128, channels=64, z_size=150), "coco"),
    # The sharpener (minidraw.sharpen): one caption-conditioned LAPGAN level. The paper preset has the
    # released generator's sizes (kernels 7, 7, 5; 128, 128, C filters); the small ones fit a CPU.
    "sharpen_mnist_small": Preset(SharpenConfig(A=60, B=60, C=1, vocab_size=23, embed_size=32, lang_size=64, g_hidden=32,
                                                g_kernel=5, g_last_kernel=5, d_hidden=16), "mnist_captions"),
    "sharpen_shapes_small": Preset(SharpenConfig(A=32, B=32, C=3, vocab_size=31, embed_size=32, lang_size=64, g_hidden=32,
                                                 g_kernel=5, g_last_kernel=5, d_hidden=32), "shapes"),
    "sharpen_coco_paper": Preset(SharpenConfig(A=32, B=32, C=3, vocab_size=0, embed_size=128, lang_size=128, g_hidden=128,
                                               g_kernel=7, g_last_kernel=5, d_hidden=64), "coco"),
    # The LAPGAN baseline's coarse level (minidraw.lapgan.LapGan): a fully connected caption-conditioned GAN
    # at half size (30×30, 16×16), sharpened to full size by the sharpener of the same data. COCO: wider, for a GPU.
    "lapgan_mnist_small": Preset(LapGanConfig(A=60, B=60, C=1, vocab_size=23, embed_size=32, lang_size=64, z_size=64,
                                              g_hidden=256, d_hidden=128), "mnist_captions"),
    "lapgan_shapes_small": Preset(LapGanConfig(A=32, B=32, C=3, vocab_size=31, embed_size=32, lang_size=64, z_size=64,
                                               g_hidden=256, d_hidden=128), "shapes"),
    "lapgan_coco_paper": Preset(LapGanConfig(A=32, B=32, C=3, vocab_size=0, embed_size=128, lang_size=128, z_size=100,
                                             g_hidden=1200, d_hidden=600), "coco"),
    # The image-to-text captioner (minidraw.captioner, "Show, Attend and Tell" in small): a CNN grid
    # (7×7 for MNIST's 60×60, 8×8 for 32×32 images) read by an LSTM with soft attention. Xu et al.
    # read a pretrained VGG's 14×14×512 grid of 224×224 photographs; the COCO preset instead learns
    # its CNN on the 32×32 images alignDRAW draws.
    "captioner_mnist_small": Preset(CaptionerConfig(A=60, B=60, C=1, vocab_size=23, channels=16, stem_stride=2, pools=2,
                                                    feature_size=64, embed_size=32, hidden_size=128, align_size=64,
                                                    max_len=12, content_first=13, content_last=22), "mnist_captions"),  # the digits
    "captioner_shapes_small": Preset(CaptionerConfig(A=32, B=32, C=3, vocab_size=31, channels=16, stem_stride=1, pools=2,
                                                     feature_size=64, embed_size=32, hidden_size=128, align_size=64,
                                                     max_len=18, content_first=15, content_last=28), "shapes"),  # size .. background
    "captioner_coco_paper": Preset(CaptionerConfig(A=32, B=32, C=3, vocab_size=0, channels=64, stem_stride=1, pools=2,
                                                   feature_size=256, embed_size=128, hidden_size=512, align_size=256,
                                                   max_len=20), "coco"),
}


# ---- training settings that come with a preset ----------------------------------------------
# The released alignDRAW code trains with RMSProp (decay 0.9, ε 1e-6), batches of 100, learning
# rate 1e-3 and every parameter's gradient clipped to L2 norm 10 (DESIGN §2). A *_paper preset is
# the paper's run, so it carries these; `minidraw train --preset NAME` starts from them, and a TOML
# file or --set still overrides each. The small presets keep the trainer's defaults.
PAPER_TRAINING = {"optimizer": "rmsprop", "batch_size": 100, "lr": 1e-3, "clip": 10.0}
TRAINING: dict[str, dict] = {name: dict(PAPER_TRAINING) for name in PRESETS
                             if name.endswith("_paper") and not name.startswith(("sharpen", "lapgan"))}
# The sharpener is a GAN: Adam at 2e-4 (Radford et al., 2016's choice for convolutional GANs), not the
# paper's RMSProp for alignDRAW, whose description of its sharpener gives no optimiser.
SHARPEN_TRAINING = {"optimizer": "adam", "lr": 2e-4, "eval_every": 500, "eval_examples": 500}
TRAINING.update({name: {**SHARPEN_TRAINING, **({"batch_size": 100} if name.endswith("_paper") else {})}
                 for name in PRESETS if name.startswith("sharpen")})
# The LAPGAN baseline's coarse GAN: the same, with Adam's β₁ = 0.5 (Radford et al.'s); at β₁ = 0.9 its fully
# connected G stalled on black pictures on MNIST with captions
TRAINING.update({name: {**SHARPEN_TRAINING, "beta1": 0.5, **({"batch_size": 100} if name.endswith("_paper") else {})}
                 for name in PRESETS if name.startswith("lapgan")})


def training_defaults(name: str) -> dict:
    """The training settings preset ``name`` brings (a copy; ``{}`` for most small presets)."""
    return dict(TRAINING.get(name, {}))


def preset(name: str, **overrides):
    """A copy of preset ``name`` with ``overrides`` applied (e.g. ``variant="noalign"``, ``kind="conv"``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    cfg = PRESETS[name].model
    return type(cfg).from_dict({**cfg.to_dict(), **overrides})


def data_of(name: str) -> str:
    """The data set preset ``name`` learns from: "mnist", "mnist_captions", "shapes" or "coco"."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name].data


# ---- the paper's comparison: one row of its table per model --------------------------------
COMPARISON_ROWS = {"align": "alignDRAW", "noalign": "noalignDRAW",
                   "skipthought": "skipthoughtDRAW (frozen autoencoder)",
                   "fcvae": "fully-connected VAE", "convvae": "conv–deconv VAE"}
# How the evaluation chapter's models are trained: the same data, steps and optimiser for every row.
COMPARISON_STEPS = 2000
COMPARISON_SETTINGS = ("lr=3e-3", "batch_size=64", "eval_every=0", "eval_examples=1000")


def comparison(data: str, size: str = "small") -> dict[str, tuple[str, list[str]]]:
    """The five models of the paper's table on ``data`` ("mnist", "shapes" or "coco"):
    ``{row: (preset, model overrides as --set arguments)}``. ``size``: "small" or "paper"."""
    draw = f"aligndraw_{data}_{size}"
    for name in (draw, f"fcvae_{data}_{size}", f"convvae_{data}_{size}"):
        if name not in PRESETS:
            raise KeyError(f"no preset {name!r}: the comparison needs data in (mnist, shapes, coco) and a size "
                           f"its presets have")
    return {"align": (draw, ["model.variant=align"]),
            "noalign": (draw, ["model.variant=noalign"]),
            "skipthought": (draw, ["model.variant=skipthought", "model.sentence_encoder=autoencoder"]),
            "fcvae": (f"fcvae_{data}_{size}", []),
            "convvae": (f"convvae_{data}_{size}", [])}


# ---- a training run's settings ----------------------------------------------------------------
@dataclass
class TrainConfig:
    preset: str = "draw_mnist_small"
    model: dict = field(default_factory=dict)  # overrides of the preset's model fields
    batch_size: int = 64          # the global batch, split across processes
    lr: float = 1e-3
    lr_schedule: str = "constant"  # "constant", or "cosine": from lr down to lr·lr_min over max_steps
    lr_min: float = 0.05          # cosine: the last step's learning rate, as a fraction of lr
    warmup_steps: int = 0         # linear warm-up from 0 to lr over these first steps
    optimizer: str = "adam"       # "adam" or "rmsprop"
    beta1: float = 0.9            # Adam's β₁ (0.5 for the LAPGAN baseline's GAN, after Radford et al., 2016)
    clip: float = 10.0            # per-parameter gradient norm
    max_steps: int = 1_000_000
    max_minutes: float = 0.0      # 0: no time limit
    seed: int = 0
    eval_every: int = 500         # steps between test-bound evaluations (0: only at the end)
    eval_examples: int = 2000
    eval_fidelity: int = 0        # captions per split (seen, held out) for caption fidelity at each evaluation
    classifiers: str = ""         # where the fidelity classifiers are cached ("" = ~/.cache/minidraw)
    checkpoint_every: int = 500   # steps
    checkpoint_minutes: float = 10.0
    bf16: bool = True             # bf16 autocast on GPUs with bf16 units (the bound stays float32)
    cpu_bf16: bool = False        # the same on CPUs with AVX512-BF16 / AMX (see runtime.bf16_native)
    compile: bool = False
    data: str = ""                # data folder (MNIST IDX files / prepared COCO); "" = the default
    heldout_val: bool = True      # withhold the validation compositions from training too (MNIST with captions,
                                  # shapes): the heldout-val split that every choice is made on (off in old files)
    init: str = ""                # start from these weights (a checkpoint file or a pretrained name), fresh optimiser
    ema: float = 0.0              # > 0: also keep θ̄, the exponential moving average of the weights with this decay
                                  # (e.g. 0.999); evaluations, the checkpoint's model and exports are θ̄
    # terms of the training objective only, never of the model (minidraw.compose.CompositionObjective):
    what_adversary: float = 0.0   # λ: an adversary keeps the caption's layout words out of h^what (0: none)
    where_kl: float = 1.0         # β: the KL of z^where weighed β in NLL + β KL^where + KL^what (1: the bound)
    terms_from: int = 0           # the two terms join the objective after this step (0: from the first), within one
                                  # schedule: the adversary switched on mid-run rather than in a second stage
    sentence_pretrain_steps: int = 500   # skipthought with sentence_encoder="autoencoder": its pre-training steps


    def __post_init__(self) -> None:
        """Each setting in its range, before any data is read: one line naming the setting and the fix."""
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")
        for name in ("batch_size", "max_steps", "eval_examples", "checkpoint_every"):
            need(getattr(self, name) >= 1, name, "at least 1")
        for name in ("warmup_steps", "eval_every", "eval_fidelity", "sentence_pretrain_steps", "seed", "terms_from"):
            need(getattr(self, name) >= 0, name, "0 or more")
        for name in ("max_minutes", "what_adversary", "where_kl"):
            need(0 <= getattr(self, name) < math.inf, name, "a finite number, 0 or more")
        for name in ("lr", "clip", "checkpoint_minutes"):
            need(0 < getattr(self, name) < math.inf, name, "a finite number above 0")
        need(0 <= self.lr_min <= 1, "lr_min", "a fraction of lr, in [0, 1]")
        need(0 <= self.ema < 1 and 0 <= self.beta1 < 1, "ema" if not 0 <= self.ema < 1 else "beta1", "in [0, 1)")
        need(self.optimizer in ("adam", "rmsprop"), "optimizer", "'adam' or 'rmsprop'")
        need(self.lr_schedule in ("constant", "cosine"), "lr_schedule", "'constant' or 'cosine'")


def coerce(value, kind, name: str):
    """``value`` — a string from ``--set`` or a TOML value — as the setting's type ``kind`` (bool, int, float,
    str); ``ValueError`` naming the setting otherwise. An int takes an integral float (``3e3``), never ``2.5``."""
    text = value.strip() if isinstance(value, str) else None
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if text is not None and text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return text.lower() in ("1", "true", "yes", "on")
        elif kind is int and not isinstance(value, bool):
            number = float(text) if text is not None else value
            if isinstance(number, (int, float)) and math.isfinite(number) and number == int(number):
                return int(number)
        elif kind is float and not isinstance(value, bool):
            number = float(text) if text is not None else value
            if isinstance(number, (int, float)):
                return float(number)
        elif kind is str and isinstance(value, str):
            return value
    except ValueError:
        pass
    expected = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))
    raise ValueError(f"{name + ': ' if name else ''}expected {expected}, got {value!r}")


def _types(cls) -> dict[str, type]:
    """The type of each field of dataclass ``cls`` (its annotations are strings here)."""
    return {k: v for k, v in get_type_hints(cls).items() if k in {f.name for f in fields(cls)}}


RECIPES = Path(__file__).resolve().parent / "recipes"


def recipes() -> list[str]:
    """The names of the shipped training recipes (``minidraw/recipes/NAME.toml``): how each of
    :mod:`minidraw.pretrained`'s models was trained."""
    return sorted(p.stem for p in RECIPES.glob("*.toml"))


def recipe(name: str) -> Path:
    """The TOML file of recipe ``name``, e.g. ``recipe("aligndraw-mnist")``."""
    path = RECIPES / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"no recipe named {name!r}; recipes: {', '.join(recipes())}")
    return path


def load_config(preset_name: Optional[str] = None, file: Optional[str] = None,
                sets: Iterable[str] = ()) -> TrainConfig:
    """Defaults, then the preset's training settings (:data:`minidraw.configs.TRAINING`: the
    ``*_paper`` presets train as the paper did), then a TOML file (or a shipped recipe's name), then
    ``key=value`` overrides (``model.key=value`` for the model)."""
    data: dict = {}
    if file and not Path(file).is_file():
        if Path(file).suffix == ".toml" or os.sep in str(file):
            raise ValueError(f"no configuration file {file}; recipes: {', '.join(recipes())}")
        file = recipe(str(file))
    if file:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            import tomli as tomllib
        with open(file, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{file} is not valid TOML ({e}): fix that line") from None
    if preset_name:
        data["preset"] = preset_name
    where = f"in {file}" if file else ""
    types = _types(TrainConfig)
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown} {where}; known: {sorted(types)}")
    if not isinstance(data.get("model", {}), dict):
        raise ValueError(f"model {where} must be a table ([model] with FIELD = VALUE lines), got {data['model']!r}")
    name = data.get("preset", TrainConfig.preset)
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    model_types = _types(type(PRESETS[name].model))
    settings = {k: coerce(v, types[k], f"{k} {where}".strip()) for k, v in data.items() if k != "model"}
    model = {}
    for k, v in data.get("model", {}).items():
        if k not in model_types:
            raise ValueError(f"unknown model field {k!r} {where}; fields: {sorted(model_types)}")
        model[k] = coerce(v, model_types[k], f"model.{k} {where}".strip())
    for item in sets:                                       # --set key=value, typed by the field it names
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {item!r}")
        try:
            if key.startswith("model."):
                if key[len("model."):] not in model_types:
                    raise ValueError(f"unknown model field {key[len('model.'):]!r}; fields: {sorted(model_types)}")
                model[key[len("model."):]] = coerce(value, model_types[key[len("model."):]], "")
            elif key in types and key not in ("model", "preset"):
                settings[key] = coerce(value, types[key], "")
            else:
                raise ValueError(f"unknown training setting {key!r}; settings: {sorted(set(types) - {'model'})}, "
                                 "or model.<field>")
        except ValueError as e:
            raise ValueError(f"--set {item}: {e}") from None
    # the layers: TrainConfig's defaults, the preset's own training settings (a *_paper preset's
    # optimiser, batch and rate), the TOML file, then --set
    cfg = TrainConfig(**{**training_defaults(name), **settings, "model": model})
    try:   # validates the model overrides now, not after the data has loaded
        preset(cfg.preset, **cfg.model)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model settings for preset {cfg.preset}: {e} (--set model.FIELD=VALUE, or the "
                         "[model] table of the TOML file)") from None
    return cfg


def resume_config(saved: dict, sets: Iterable[str] = ()) -> TrainConfig:
    """The settings a checkpoint was trained with (its ``"train"`` entry) with ``key=value``
    overrides on top: how ``minidraw train --out DIR`` continues a run without naming its preset."""
    if not isinstance(saved, dict) or "preset" not in saved:
        raise ValueError("the checkpoint holds no training settings to resume with; name them with --preset "
                         "or --config, or use another --out")
    cfg = load_config(saved["preset"], None, [f"{k}={v}" for k, v in saved.items()
                                              if k not in ("preset", "model")] + list(sets))
    cfg.model = {**saved["model"], **cfg.model}
    return cfg
