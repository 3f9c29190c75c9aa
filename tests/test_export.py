"""The drawing path as ONNX: onnxruntime draws what PyTorch draws, on the same noise."""
import numpy as np
import pytest
import torch

from minidraw import pretrained
from minidraw.configs import preset
from minidraw.export import GenerationGraph, MaskedBiLSTM, example_inputs, export_onnx, outputs
from minidraw.models import build
from minidraw.text import LanguageModel

ort = pytest.importorskip("onnxruntime")

# (shipped model, caption length it is exported for)
EXPORTED = [("aligndraw-mnist", 12), ("noaligndraw-mnist", 12), ("aligndraw-shapes", 16)]
EXPORTED += [("aligndraw-mnist-paper", 12)] if "aligndraw-mnist-paper" in pretrained.list() else []


def test_the_masked_bilstm_is_the_packed_language_model():
    torch.manual_seed(0)
    lm = LanguageModel(30, 8, 6).double()
    ids = torch.randint(1, 30, (5, 9))
    lengths = torch.tensor([9, 7, 1, 4, 9])
    ids[torch.arange(9)[None, :] >= lengths[:, None]] = 0                    # padding after the words
    want, mask = lm(ids, lengths)
    got, got_mask = MaskedBiLSTM(lm)(ids)
    assert torch.equal(mask, got_mask) and torch.allclose(got, want, atol=1e-12, rtol=0)
    assert (got[~mask] == 0).all()
    assert MaskedBiLSTM(lm).fwd.weight_hh_l0 is lm.lstm.weight_hh_l0         # the same weights, not a copy


@pytest.mark.parametrize("name, L", EXPORTED, ids=[n for n, _ in EXPORTED])
def test_onnxruntime_draws_what_pytorch_draws(name, L, tmp_path):
    model, _ = pretrained.load(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", M=8, L=L, simplify=True)   # as the book ships it
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in (1, 2):
        ids, eps = example_inputs(model, 8, L, seed)                          # some captions padded
        got = [torch.from_numpy(a) for a in session.run(None, {"ids": ids.numpy(), "eps": eps.numpy()})]
        with torch.no_grad():                                                  # the package's own path: packed
            canvases, windows, alpha = outputs(model.generate(ids, (ids != 0).sum(1), noise=eps), ids)
        assert got[0].shape == canvases.shape == (model.cfg.T, 8, model.cfg.C, model.cfg.B, model.cfg.A)
        # every step's canvas, in [0, 1], and α: within 1e-4 (plus 1e-4 of the value: float32 LSTMs over 16 steps)
        torch.testing.assert_close(got[0], canvases, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got[2], alpha, atol=1e-4, rtol=1e-4)
        # windows are in pixels (g_X up to A): within 1e-4 of their own size, float32's reach
        assert ((got[1] - windows).abs() / windows.abs().clamp(min=1)).max() < 1e-4


def test_the_simplified_graph_is_smaller_and_draws_the_same(tmp_path):
    onnx = pytest.importorskip("onnx")
    model, _ = pretrained.load("aligndraw-mnist-paper")
    plain = export_onnx(model, tmp_path / "plain.onnx", M=8, L=12)
    simple = export_onnx(model, tmp_path / "simple.onnx", M=8, L=12, simplify=True)
    nodes = [len(onnx.load(str(f)).graph.node) for f in (plain, simple)]
    assert nodes[1] < 0.7 * nodes[0], nodes                                   # constants folded, repeats removed
    ids, eps = example_inputs(model, 8, 12, 3)
    feeds = {"ids": ids.numpy(), "eps": eps.numpy()}
    runs = [ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, feeds) for f in (plain, simple)]
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_noise_given_is_the_noise_used():
    model, _ = pretrained.load("aligndraw-mnist")
    ids, eps = example_inputs(model, 3, 12, 0)
    lengths = (ids != 0).sum(1)
    a, b = (model.generate(ids, lengths, noise=eps).images for _ in range(2))
    assert torch.equal(a, b)                                                   # no other randomness
    torch.manual_seed(5)
    drawn = model.generate(ids, lengths).images
    torch.manual_seed(5)
    assert torch.equal(drawn, model.generate(ids, lengths, noise=torch.randn_like(eps)).images)
    with pytest.raises(ValueError, match="noise must have shape"):
        model.generate(ids, lengths, noise=eps[:, :2])


def test_models_without_a_language_model_are_refused():
    with pytest.raises(ValueError, match="only caption models"):
        GenerationGraph(build(preset("draw_mnist_small")))
    with pytest.raises(ValueError, match="only caption models"):
        GenerationGraph(build(preset("aligndraw_mnist_small", variant="skipthought")))
