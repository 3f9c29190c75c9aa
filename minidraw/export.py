"""The drawing path of a caption-to-image model as an ONNX graph, for a browser (or any ONNX runtime).

:func:`export_onnx` writes a model's generation — caption in, every step's canvas out — as one ONNX file::

    inputs   ids     (M, L) int64     word ids, padding (0) after each caption's words (M and L fixed at export)
             eps     (T, M, Z) float  the noise ε of every z_t = μ^p_t + σ^p_t ε (scale it for a temperature)
    outputs  canvases (T, M, C, B, A) σ(c_t) after each step t
             windows  (M, T, 5)       each step's write window: g_X, g_Y, σ², δ, γ
             alpha    (M, T, L)       each step's alignment over the words

It computes exactly what ``model.generate(ids, lengths, noise=eps)`` computes. Two things of the package's
path do not trace into a fixed graph, and :class:`GenerationGraph` replaces them without changing a number:

* the language model packs captions by their lengths (``pack_padded_sequence``), a data-dependent layout.
  Here the lengths come from the padding, the forward LSTM runs over the padded caption (padding comes
  after the words, so it never reaches a word's state), and the backward LSTM runs over each caption
  reversed *within its own length* (a gather), so it starts at the caption's last word as the packed
  one does; its states are gathered back into place and padding is zeroed, as ``pad_packed_sequence`` does;
* the checks of lengths and masks read values back from the tensors. Validate before exporting and
  before calling the graph (:func:`minidraw.text.Vocabulary.encode_batch` refuses unknown words and
  empty captions); the graph itself checks nothing.

:func:`check_onnx` runs the file with onnxruntime and compares it with PyTorch on the same noise.
"""
from __future__ import annotations

import copy
import math
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .models import kind_of
from .text import LanguageModel

OUTPUTS = ("canvases", "windows", "alpha")


class MaskedBiLSTM(nn.Module):
    """:class:`~minidraw.text.LanguageModel` without packing: the same weights, the same ``h^lang``, from ids
    whose padding (0) follows the words. ``forward(ids, lengths=None, embedded=None) -> (h_lang, mask)``."""

    def __init__(self, language: LanguageModel) -> None:
        super().__init__()
        self.embed, lstm = language.embed, language.lstm
        m = language.hidden_size
        self.fwd = nn.LSTM(language.embed_size, m, batch_first=True)
        self.bwd = nn.LSTM(language.embed_size, m, batch_first=True)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):   # share, not copy: one set of weights
            setattr(self.fwd, f"{name}_l0", getattr(lstm, f"{name}_l0"))
            setattr(self.bwd, f"{name}_l0", getattr(lstm, f"{name}_l0_reverse"))

    def forward(self, ids: Tensor, lengths: Tensor | None = None, embedded: Tensor | None = None):
        M, L = ids.shape
        mask = ids != 0                                                      # (M, L)  real words
        n = mask.sum(1, keepdim=True)                                        # (M, 1)  each caption's length
        x = self.embed(ids) if embedded is None else embedded                # (M, L, e)  E y_j
        forward, _ = self.fwd(x)                                             # (M, L, m)  →h_j
        j = torch.arange(L, device=ids.device)[None, :]                      # (1, L)
        flip = (n - 1 - j).clamp(min=0)                                      # (M, L)  j -> length − 1 − j
        x_rev = torch.gather(x, 1, flip[..., None].expand_as(x))             # each caption reversed in place
        backward_rev, _ = self.bwd(x_rev)                                    # (M, L, m)  from the last word
        backward = torch.gather(backward_rev, 1, flip[..., None].expand_as(backward_rev))   # (M, L, m)  ←h_j
        h_lang = torch.cat([forward, backward], -1) * mask[..., None]        # (M, L, 2m), 0 on padding
        return h_lang, mask


class GenerationGraph(nn.Module):
    """``(ids (M, L), eps (T, M, Z)) -> (canvases, windows, alpha)`` of a caption model (alignDRAW, noalignDRAW
    or ours), traceable into a fixed graph; the model is shared, not copied, and left as it was."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        kind = kind_of(model)
        if kind.name not in ("caption", "compose") or getattr(model, "language", None) is None:
            raise ValueError(f"only caption models with a language model export (alignDRAW, noalignDRAW, ours); "
                             f"got a {kind.name} model" + (f" ({model.cfg.variant})" if kind.name == "caption" else ""))
        view = copy.copy(model)                         # the same weights; its own table of submodules
        view._modules = dict(model._modules)
        view._modules["language"] = MaskedBiLSTM(model.language)
        view.align = _Unchecked(model.align) if model.align is not None else None
        self.model = view

    def forward(self, ids: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return outputs(self.model.generate(ids, (ids != 0).sum(1), noise=eps), ids)


def outputs(out, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(canvases (T, M, C, B, A), windows (M, T, 5), alpha (M, T, L))`` of a :class:`~minidraw.outputs.Generated`;
    a model without alignment (noalignDRAW) reads every word alike: α uniform over the caption's words."""
    w = out.write
    windows = torch.stack([w.g_x, w.g_y, w.sigma2, w.delta, w.gamma], -1)       # (M, T, 5)
    alpha = out.alpha
    if alpha is None:
        words = (ids != 0).to(out.canvases.dtype)                               # (M, L)
        alpha = (words / words.sum(1, keepdim=True))[:, None, :].expand(-1, out.canvases.shape[0], -1)
    return out.canvases, windows, alpha


class _Unchecked(nn.Module):
    """The alignment with its mask check skipped (it reads a value back): inputs are validated beforehand."""

    def __init__(self, align: nn.Module) -> None:
        super().__init__()
        self.inner = align

    def keys(self, h_lang: Tensor) -> Tensor:
        return self.inner.keys(h_lang)

    def check_mask(self, mask: Tensor) -> None:
        return None

    def forward(self, h_dec, keys, h_lang, mask, checked: bool = True):
        return self.inner(h_dec, keys, h_lang, mask, checked=True)


def example_inputs(model: nn.Module, M: int = 2, L: int = 12, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Valid ``(ids, eps)`` to trace with: M captions of L words (ids 1 .. vocab_size − 1, the second one
    shorter, padded) and standard normal noise."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, model.cfg.vocab_size, (M, L), generator=g)
    if M > 1:
        ids[1:, L - 2:] = 0                                                  # shorter captions, padded
    return ids, torch.randn(model.cfg.T, M, model.cfg.z_size, generator=g)


def _exp2(g, x):
    """ONNX has no 2^x: the filterbanks' exp2 (minidraw.attention) as exp(x · ln 2)."""
    return g.op("Exp", g.op("Mul", x, g.op("Constant", value_t=torch.tensor(math.log(2.0)))))


def export_onnx(model: nn.Module, path: str | os.PathLike, M: int = 8, L: int = 12, opset: int = 17,
                simplify: bool = False) -> Path:
    """Write ``model``'s drawing path to ``path``: ONNX, float32, for ``M`` captions of ``L`` word ids at a time
    (shorter captions padded with 0). The sizes are fixed: the drawing loop's batch size enters the graph as a
    constant, and a page that draws 8 samples of one caption at a time needs no other.

    ``simplify``: store the graph after onnxruntime's *basic* optimisations (constant folding, redundant nodes
    removed; the same on every machine): about half the nodes, so a runtime that loads it (onnxruntime-web in
    the book's pages) makes its session faster. It needs ``onnxruntime``; the values are unchanged
    (:func:`check_onnx` holds either way)."""
    torch.onnx.register_custom_op_symbolic("aten::exp2", _exp2, opset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = GenerationGraph(model.float().eval()).eval()
    ids, eps = example_inputs(model, M, L)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")                 # the tracer's notes on constant shapes: T is fixed
        torch.onnx.export(graph, (ids, eps), str(path), input_names=["ids", "eps"], output_names=list(OUTPUTS),
                          opset_version=opset, dynamo=False)
    if simplify:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        simplified = path.with_name(path.stem + ".basic.onnx")
        options.optimized_model_filepath = str(simplified)
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])   # writes ``simplified``
        simplified.replace(path)
    return path


def check_onnx(model: nn.Module, path: str | os.PathLike, ids: Tensor, eps: Tensor) -> float:
    """The largest absolute difference between the ONNX file (run by onnxruntime) and the package's own
    ``model.generate`` (packed language model, every check) on the same ids and noise, over every output."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUTS), {"ids": ids.numpy(), "eps": eps.float().numpy()})
    with torch.no_grad():
        want = outputs(model.float().eval().generate(ids, (ids != 0).sum(1), noise=eps.float()), ids)
    return max(float((torch.from_numpy(g) - w).abs().max()) for g, w in zip(got, want))
