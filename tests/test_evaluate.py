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
