"""Retrieval metrics on score matrices with known answers, chance level, and SSIM."""
import numpy as np
import pytest
import torch

from minidraw.evaluate import ranks_of_truth, retrieval_metrics, ssi


def test_hand_made_scores_give_known_ranks_and_recalls():
    scores = np.array([[1.0, 2.0, 3.0, 4.0],    # own image best: rank 1
                       [3.0, 1.0, 2.0, 4.0],    # two candidates better: rank 3
                       [5.0, 1.0, 2.0, 3.0],    # worst: rank 4
                       [2.0, 2.0, 1.0, 9.0]])   # tie with candidate 1, one better: rank 3
    assert ranks_of_truth(scores).tolist() == [1, 3, 4, 3]
    r = retrieval_metrics(scores, ks=(1, 3))
    assert r.recall == {1: 25.0, 3: 75.0} and r.median_rank == 3.0
    assert retrieval_metrics(scores[:, ::-1], ks=(1,), truth=3).ranks.tolist() == [1, 3, 4, 3]


def test_all_equal_scores_get_no_credit():
    r = retrieval_metrics(np.zeros((5, 100)))
    assert r.recall[1] == 0.0 and r.median_rank == 100


def test_random_scores_are_at_chance_level():
    rng = np.random.default_rng(0)
    r = retrieval_metrics(rng.random((20_000, 100)))
    for k in (1, 5, 10, 50):
        assert abs(r.recall[k] - k) < 1.5, (k, r.recall[k])     # chance: R@K = K %
    assert abs(r.median_rank - 50) <= 1.5                         # and median rank 50


def test_bad_scores_are_rejected():
    with pytest.raises(ValueError, match="candidates"):
        retrieval_metrics(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[0.0, np.nan]]))


def test_ssim_of_an_image_with_itself_is_one_and_noise_lowers_it():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    assert ssi(x, x) == pytest.approx(1.0)
    assert ssi(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1)) < 0.9
    assert ssi(torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)) < 0.01
    with pytest.raises(ValueError, match="must both be"):
        ssi(x, x[:, :1])


class _Numbered:
    """Example i: an image of constant grey i/N and a one-word caption whose id is i + 1."""

    N = 150

    def batch(self, idx):
        from minidraw.data.common import CaptionBatch
        idx = torch.as_tensor(np.asarray(idx))
        images = (idx.float() / self.N)[:, None, None, None].expand(-1, 1, 4, 4)
        return CaptionBatch(images, (idx + 1)[:, None], torch.ones(len(idx), dtype=torch.long))


class _Matcher(torch.nn.Module):
    """A stand-in model whose bound is small when the image's grey level matches the caption."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.cfg = type("Cfg", (), {"T": 2, "z_size": 3})

    def forward(self, images, captions, lengths, noise=None):
        assert noise.shape == (2, len(images), 3)
        value = (captions[:, 0].float() - 1) / _Numbered.N
        return type("Out", (), {"bound": (images.mean((1, 2, 3)) - value).abs() + self.w})


def test_retrieval_scores_put_the_own_image_first_and_rank_it():
    from minidraw.evaluate import retrieval_scores
    scores = retrieval_scores(_Matcher(), _Numbered(), n_queries=30, n_candidates=100, pool=150, batch_size=64)
    assert scores.shape == (30, 100)
    assert (scores[:, 0] < 1e-6).all() and (scores[:, 1:] > 1e-3).all()        # column 0: the own image
    r = retrieval_metrics(scores)
    assert r.recall[1] == 100.0 and r.median_rank == 1
    with pytest.raises(ValueError, match="distinct candidates"):
        retrieval_scores(_Matcher(), _Numbered(), n_queries=5, n_candidates=100, pool=50)


def test_retrieval_scores_with_a_real_alignDRAW_and_common_noise():
    from minidraw.configs import preset
    from minidraw.data.shapes import ShapesCaptions
    from minidraw.draw import build
    from minidraw.evaluate import retrieval_scores
    torch.manual_seed(0)
    model = build(preset("aligndraw_shapes_small", T=3, enc_size=16, dec_size=16, z_size=4, lang_size=8,
                         align_size=8, embed_size=8))
    data = ShapesCaptions("test")
    a = retrieval_scores(model, data, n_queries=4, n_candidates=10, pool=20, batch_size=7)
    b = retrieval_scores(model, data, n_queries=4, n_candidates=10, pool=20, batch_size=40)
    assert a.shape == (4, 10) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-5)      # batching does not change a score: ε is per caption
    assert model.training
