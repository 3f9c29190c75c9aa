"""The one registry of model kinds: for each, its configuration and model classes, what it takes and gives,
and the training objective around it.

Every "which kind of model is this?" — building a model from its configuration, naming it in a checkpoint,
choosing its data, sampling from it, loading shipped weights, evaluating it — is answered here, by the
:class:`Kind` whose configuration class is exactly the model's. Nothing else looks at model classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from torch import nn

from .aligndraw import CaptionDraw, CaptionDrawConfig
from .baselines import BaselineConfig, ConditionalVAE
from .captioner import Captioner, CaptionerConfig
from .compose import ComposeDraw, ComposeDrawConfig, CompositionObjective
from .draw import Draw, DrawConfig
from .lapgan import LapGan, LapGanConfig
from .sharpen import SharpenConfig, Sharpener

# what a kind of model does: its role
DRAWS = "image"                 # draws pictures from nothing (unconditional DRAW)
CAPTION_TO_IMAGE = "caption→image"
SHARPENS = "image+caption→image"
IMAGE_TO_CAPTION = "image→caption"


@dataclass(frozen=True)
class Kind:
    """One kind of model. ``name`` is what a checkpoint's ``"kind"`` says; ``words`` names it in messages;
    ``has_bound``: it scores a variational bound (the drawing models but the GAN); ``objective(model, **terms)``
    wraps the model in its training-only terms, when a run asks for some."""

    name: str
    config: type
    model: type
    role: str
    words: str
    has_bound: bool = True
    objective: Optional[Callable[..., nn.Module]] = None

    @property
    def takes_caption(self) -> bool:
        """Does a model of this kind read or write captions?"""
        return self.role != DRAWS


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("draw", DrawConfig, Draw, DRAWS, "an unconditional DRAW (a drawing model)"),
    Kind("caption", CaptionDrawConfig, CaptionDraw, CAPTION_TO_IMAGE, "a caption-to-image drawing model"),
    Kind("compose", ComposeDrawConfig, ComposeDraw, CAPTION_TO_IMAGE,
         "a caption-to-image drawing model (alignDRAW with our what/where generator)",
         objective=CompositionObjective),
    Kind("baseline", BaselineConfig, ConditionalVAE, CAPTION_TO_IMAGE, "a baseline drawing model"),
    Kind("lapgan", LapGanConfig, LapGan, CAPTION_TO_IMAGE, "the LAPGAN baseline", has_bound=False),
    Kind("sharpener", SharpenConfig, Sharpener, SHARPENS, "a sharpener", has_bound=False),
    Kind("captioner", CaptionerConfig, Captioner, IMAGE_TO_CAPTION, "a captioner (image to caption)",
         has_bound=False),
)}
_BY_CONFIG = {k.config: k for k in KINDS.values()}


def kind(name: str) -> Kind:
    """The kind a checkpoint names; ``ValueError`` listing the kinds otherwise."""
    if name not in KINDS:
        raise ValueError(f"no kind of model named {name!r}; kinds: {', '.join(KINDS)}")
    return KINDS[name]


def kind_of_config(cfg) -> Kind:
    """The kind whose configuration class is exactly ``type(cfg)``."""
    found = _BY_CONFIG.get(type(cfg))
    if found is None:
        raise TypeError(f"no model for a {type(cfg).__name__}; give one of "
                        f"{', '.join(c.__name__ for c in _BY_CONFIG)}")
    return found


def kind_of(model: nn.Module) -> Kind:
    """The kind of ``model`` (unwrapped from DistributedDataParallel and torch.compile), by its configuration."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    return kind_of_config(model.cfg)


def build(cfg) -> nn.Module:
    """The model a configuration describes."""
    return kind_of_config(cfg).model(cfg)


def from_dict(name: str, config: dict):
    """The configuration a checkpoint stores as ``{"kind": name, "config": config}``."""
    return kind(name).config.from_dict(config)
