import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from minidraw.bound import bernoulli_nll, gaussian_kl, gaussian_log_prob, iwae_nats


@pytest.fixture
def gaussians():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return r(50, 7), 0.5 * r(50, 7), r(50, 7), 0.5 * r(50, 7)


def test_kl_matches_torch_distributions(gaussians):
    mu_q, ls_q, mu_p, ls_p = gaussians
    ours = gaussian_kl(mu_q, ls_q, mu_p, ls_p)
    ref = kl_divergence(Normal(mu_q, ls_q.exp()), Normal(mu_p, ls_p.exp()))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_kl_standard_normal_prior_special_case(gaussians):
    mu, ls, _, _ = gaussians
    zero = torch.zeros_like(mu)
    # the VAE paper's form: 1/2 Σ (μ² + σ² − 1 − log σ²)
    torch.testing.assert_close(gaussian_kl(mu, ls, zero, zero), 0.5 * (mu**2 + (2 * ls).exp() - 1 - 2 * ls))


def test_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu_q, ls_q, mu_p, ls_p = (torch.tensor(v, dtype=torch.float64) for v in ([0.3, -1.0], [-0.2, 0.4], [0.0, 0.5], [0.1, -0.3]))
    z = mu_q + ls_q.exp() * torch.randn(400_000, 2, dtype=torch.float64)
    samples = (Normal(mu_q, ls_q.exp()).log_prob(z) - Normal(mu_p, ls_p.exp()).log_prob(z)).sum(-1)
    se = samples.std() / math.sqrt(len(samples))
    closed = gaussian_kl(mu_q, ls_q, mu_p, ls_p).sum()
    assert abs(samples.mean() - closed) < 4 * se
    assert closed > 0 and gaussian_kl(mu_q, ls_q, mu_q, ls_q).abs().max() < 1e-15  # KL(q||q) = 0


def test_log_prob_matches_torch(gaussians):
    mu, ls, z, _ = gaussians
    torch.testing.assert_close(gaussian_log_prob(z, mu, ls), Normal(mu, ls.exp()).log_prob(z).sum(-1))


def test_bernoulli_nll_binary_and_grey():
    torch.manual_seed(0)
    logits = 3 * torch.randn(4, 3, 5, 6, dtype=torch.float64)  # A = 6 wide, B = 5 high, C = 3
    x = (torch.rand_like(logits) < 0.5).double()
    torch.testing.assert_close(bernoulli_nll(logits, x), -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1))
    grey = torch.rand_like(logits)  # COCO: intensities in [0, 1]
    p = torch.sigmoid(logits)
    naive = -(grey * p.log() + (1 - grey) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, grey), naive)
    with pytest.raises(ValueError, match="shape"):
        bernoulli_nll(logits, x[:, :1])


def test_iwae_single_sample_and_jensen():
    torch.manual_seed(0)
    lpx, lpz, lqz = -torch.rand(10, 6) * 50, -torch.rand(10, 6) * 20, -torch.rand(10, 6) * 20
    elbo_each = -(lpx + lpz - lqz)                                   # (K, M) one-sample −L
    torch.testing.assert_close(iwae_nats(lpx[:1], lpz[:1], lqz[:1]), elbo_each[0])
    iw = iwae_nats(lpx, lpz, lqz)
    assert (iw <= elbo_each.mean(0) + 1e-9).all()                    # −L_K ≤ mean −L_1 (Jensen)
    assert (iw >= elbo_each.min(0).values - 1e-9).all()
    same = iwae_nats(lpx[:1].expand(5, -1), lpz[:1].expand(5, -1), lqz[:1].expand(5, -1))
    torch.testing.assert_close(same, elbo_each[0])                   # identical weights: no gain
