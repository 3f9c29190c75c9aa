"""DRAW's Gaussian filterbank attention against naive loops written from the equations."""
import math

import pytest
import torch

from minidraw import attention as at

f64 = torch.float64


def t(*values):
    """A float64 tensor ``(M,)`` of the given values."""
    return torch.tensor(values, dtype=f64)


def naive_filterbank(g, delta, sigma2, N, size, eps=1e-8):
    """F[i, a] for one window, element by element: i = 1..N, a = 1..size (both 1-based)."""
    F = []
    for i in range(1, N + 1):
        mu = g + (i - N / 2 - 0.5) * delta
        row = [math.exp(-(a - mu) ** 2 / (2 * sigma2)) for a in range(1, size + 1)]
        Z = max(sum(row), eps)
        F.append([v / Z for v in row])
    return torch.tensor(F, dtype=f64)  # (N, size)


CASES = [  # (g, δ, σ², N, size)
    (14.5, 3.0, 1.0, 8, 28),
    (1.0, 0.7, 0.3, 5, 12),
    (33.25, 8.43, 4.2, 8, 60),
    (-3.0, 2.0, 1.5, 4, 20),      # centre off the image: the first filters fall outside
    (10.0, 1.0, 1e-3, 9, 32),     # very narrow filters on integer centres
    (7.3, 1.9, 25.0, 3, 9),       # very wide filters
    (5.0, 4.0, 2.0, 1, 10),       # a single filter
    (16.5, 1.0, 0.5, 32, 32),     # N = size
    (50.0, 0.0, 0.8, 6, 40),      # δ = 0: all filters on top of each other
    (1e4, 1.0, 1.0, 4, 30),       # every filter far outside: rows are 0, not NaN
]


@pytest.mark.parametrize("g,delta,sigma2,N,size", CASES)
def test_filterbank_matches_naive_loop(g, delta, sigma2, N, size):
    F = at.filterbank(t(g, g + 1.25), t(delta, delta), t(sigma2, 2 * sigma2), N, size)  # (2, N, size)
    assert F.shape == (2, N, size) and F.dtype == f64
    torch.testing.assert_close(F[0], naive_filterbank(g, delta, sigma2, N, size), rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(F[1], naive_filterbank(g + 1.25, delta, 2 * sigma2, N, size),
                               rtol=1e-12, atol=1e-300)


def test_rows_sum_to_one():
    torch.manual_seed(0)
    M, N, size = 64, 7, 40
    g = 5 + 30 * torch.rand(M, dtype=f64)            # centres well inside
    delta = 0.2 + 2 * torch.rand(M, dtype=f64)       # grids at most 12 pixels from the centre
    sigma2 = 0.05 + 5 * torch.rand(M, dtype=f64)
    F = at.filterbank(g, delta, sigma2, N, size)     # (M, N, size)
    assert (F >= 0).all()
    torch.testing.assert_close(F.sum(-1), torch.ones(M, N, dtype=f64), rtol=0, atol=1e-13)


def test_far_off_filters_read_zero_with_finite_gradients():
    g = t(-1e3).requires_grad_()
    F = at.filterbank(g, t(1.0), t(1.0), 4, 20)
    assert torch.equal(F, torch.zeros_like(F))
    F.sum().backward()
    assert torch.isfinite(g.grad).all()


@pytest.mark.parametrize("N", [1, 2, 3, 8, 9])
def test_grid_is_centred_on_g(N):
    g, delta = t(20.3, 17.0), t(2.5, 0.4)
    mu = at.filter_centres(g, delta, N)                         # (2, N)
    torch.testing.assert_close(mu.mean(-1), g, rtol=0, atol=1e-12)
    torch.testing.assert_close(mu[:, 1:] - mu[:, :-1], delta[:, None].expand(2, N - 1))
    torch.testing.assert_close(mu + mu.flip(-1), 2 * g[:, None].expand(2, N))  # symmetric about g
    # The filters themselves (not only their nominal means) sit symmetrically about g:
    # the filter-weighted centre of mass of each row is μ^i (wide filters, inside the image).
    size = 40
    F = at.filterbank(g, delta, t(2.0, 2.0), N, size)          # (2, N, size)
    a = torch.arange(1, size + 1, dtype=f64)
    com = F @ a                                                 # (2, N)  Σ_a a F[i, a]
    torch.testing.assert_close(com, mu, rtol=0, atol=1e-9)
    mid = [(N - 1) // 2, N // 2]                                # the middle row(s)
    torch.testing.assert_close(com[:, mid].mean(-1), g, rtol=0, atol=1e-9)


def test_the_zero_based_grid_of_the_original_code_is_off_by_delta():
    g, delta, N = t(30.5), t(4.0), 8
    i0 = torch.arange(N, dtype=f64)                             # the Theano code's i = 0..N-1
    mu_original = g + (i0 - N / 2 - 0.5) * delta
    mu = at.filter_centres(g, delta, N)[0]
    torch.testing.assert_close(mu - mu_original, delta.expand(N))
    torch.testing.assert_close(mu_original.mean(), g[0] - delta[0])


@pytest.mark.parametrize("A,B,N", [(28, 28, 5), (60, 40, 8), (32, 48, 9), (20, 30, 2)])
def test_window_from_params_centre_and_span(A, B, N):
    p = torch.zeros(3, 5, dtype=f64)        # g̃ = 0, log σ² = 0, log δ̃ = 0 (δ̃ = 1), log γ = 0
    p[1, 2:] = torch.tensor([math.log(2.0), math.log(0.5), math.log(3.0)], dtype=f64)
    p[2, :2] = torch.tensor([-1.0, 1.0], dtype=f64)
    w = at.window_from_params(p, A, B, N)
    for field in (w.g_x, w.g_y, w.sigma2, w.delta, w.gamma):
        assert field.shape == (3,) and field.dtype == f64
    torch.testing.assert_close(w.g_x[:2], t((A + 1) / 2, (A + 1) / 2))   # g̃ = 0: the image centre
    torch.testing.assert_close(w.g_y[:2], t((B + 1) / 2, (B + 1) / 2))
    torch.testing.assert_close(w.g_x[2], t(0.0)[0])                      # g̃ = ±1: just off the edges
    torch.testing.assert_close(w.g_y[2], t(B + 1.0)[0])
    torch.testing.assert_close(w.sigma2[1], t(2.0)[0])
    torch.testing.assert_close(w.delta[1], t(0.5 * (max(A, B) - 1) / (N - 1))[0])
    torch.testing.assert_close(w.gamma[1], t(3.0)[0])
    # δ̃ = 1 at the centre: the grid spans the longer side exactly, from pixel 1 to pixel max(A, B)
    long_g = w.g_x[:1] if A >= B else w.g_y[:1]
    mu = at.filter_centres(long_g, w.delta[:1], N)[0]
    torch.testing.assert_close(mu[[0, -1]], t(1.0, max(A, B)))


def test_window_from_params_single_filter():
    w = at.window_from_params(torch.zeros(2, 5, dtype=f64), 12, 10, 1)
    assert torch.isfinite(w.delta).all()
    F_X, F_Y = at.filterbanks(w, 1, 12, 10)
    torch.testing.assert_close(at.filter_centres(w.g_x, w.delta, 1)[:, 0], t(6.5, 6.5))
    assert F_X.shape == (2, 1, 12) and F_Y.shape == (2, 1, 10)


def identity_window(M, size, gamma=1.0):
    c = (size + 1) / 2
    return at.Window(g_x=torch.full((M,), c, dtype=f64), g_y=torch.full((M,), c, dtype=f64),
                     sigma2=torch.full((M,), 1e-3, dtype=f64), delta=torch.ones(M, dtype=f64),
                     gamma=torch.full((M,), gamma, dtype=f64))


@pytest.mark.parametrize("gamma", [1.0, 2.5])
def test_identity_window_reads_and_writes_the_image_itself(gamma):
    M, C, N = 3, 2, 10
    w = identity_window(M, N, gamma)           # N = A = B, δ = 1, g at the centre, narrow σ
    F_X, F_Y = at.filterbanks(w, N, N, N)
    eye = torch.eye(N, dtype=f64).expand(M, N, N)
    torch.testing.assert_close(F_X, eye, rtol=0, atol=1e-200)
    torch.testing.assert_close(F_Y, eye, rtol=0, atol=1e-200)
    x, x_hat = torch.rand(M, C, N, N, dtype=f64), torch.rand(M, C, N, N, dtype=f64)
    r = at.read(x, x_hat, F_X, F_Y, w.gamma)   # (M, 2CNN)
    torch.testing.assert_close(r[:, : C * N * N], gamma * x.flatten(1), rtol=1e-14, atol=0)
    torch.testing.assert_close(r[:, C * N * N:], gamma * x_hat.flatten(1), rtol=1e-14, atol=0)
    patch = r[:, : C * N * N].view(M, C, N, N)
    torch.testing.assert_close(at.write(patch, F_X, F_Y, w.gamma), x, rtol=1e-14, atol=0)


def test_unit_stride_narrow_window_is_a_crop_on_a_non_square_image():
    M, C, A, B, N = 2, 3, 30, 20, 8
    x = torch.rand(M, C, B, A, dtype=f64)
    # μ_X^i = 12.5 + i − 4.5 = i + 8 -> columns 9..16 (1-based);  μ_Y^j = 10.5 + j − 4.5 = j + 6 -> rows 7..14
    w = at.Window(g_x=t(12.5, 12.5), g_y=t(10.5, 10.5), sigma2=t(1e-3, 1e-3), delta=t(1.0, 1.0),
                  gamma=t(1.0, 1.0))
    F_X, F_Y = at.filterbanks(w, N, A, B)
    assert F_X.shape == (M, N, A) and F_Y.shape == (M, N, B)
    torch.testing.assert_close(at.glimpse(x, F_X, F_Y), x[:, :, 6:14, 8:16], rtol=1e-14, atol=0)
    canvas = at.write(x[:, :, 6:14, 8:16], F_X, F_Y, w.gamma)   # (M, C, B, A): pasted back in place
    expected = torch.zeros_like(x)
    expected[:, :, 6:14, 8:16] = x[:, :, 6:14, 8:16]
    torch.testing.assert_close(canvas, expected, rtol=1e-14, atol=1e-200)


def random_window(M, A, B, N, seed=0):
    gen = torch.Generator().manual_seed(seed)
    p = 0.4 * torch.randn(M, 5, generator=gen, dtype=f64)
    p[:, 3] -= 0.5                                          # δ̃ ≈ 0.6: a window inside the image
    return at.window_from_params(p, A, B, N)


@pytest.mark.parametrize("A,B,C,N", [(9, 6, 1, 3), (7, 11, 3, 4)])
def test_glimpse_read_write_match_naive_sums(A, B, C, N):
    M = 2
    w = random_window(M, A, B, N)
    F_X, F_Y = at.filterbanks(w, N, A, B)
    x, x_hat = torch.rand(M, C, B, A, dtype=f64), torch.rand(M, C, B, A, dtype=f64)
    g = at.glimpse(x, F_X, F_Y)
    assert g.shape == (M, C, N, N)
    naive = torch.empty(M, C, N, N, dtype=f64)
    for m in range(M):
        for c in range(C):
            for i in range(N):
                for j in range(N):      # glimpse[i, j] = Σ_b Σ_a F_Y[i, b] x[b, a] F_X[j, a]
                    naive[m, c, i, j] = sum(F_Y[m, i, b] * x[m, c, b, a] * F_X[m, j, a]
                                            for b in range(B) for a in range(A))
    torch.testing.assert_close(g, naive, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, torch.einsum("mib,mcba,mja->mcij", F_Y, x, F_X), rtol=1e-12, atol=1e-14)

    r = at.read(x, x_hat, F_X, F_Y, w.gamma)   # (M, 2CNN): x's glimpse first, channel by channel
    assert r.shape == (M, 2 * C * N * N)
    expected = torch.cat([g.flatten(1), at.glimpse(x_hat, F_X, F_Y).flatten(1)], 1) * w.gamma[:, None]
    torch.testing.assert_close(r, expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(r.view(M, 2, C, N, N)[:, 0, -1], w.gamma[:, None, None] * g[:, -1])

    patch = torch.randn(M, C, N, N, dtype=f64)
    canvas = at.write(patch, F_X, F_Y, w.gamma)
    assert canvas.shape == (M, C, B, A)
    naive_canvas = torch.einsum("mib,mcij,mja->mcba", F_Y, patch, F_X) / w.gamma[:, None, None, None]
    torch.testing.assert_close(canvas, naive_canvas, rtol=1e-12, atol=1e-14)


def test_write_is_the_adjoint_of_the_glimpse():
    """⟨F_Y x F_Xᵀ, w⟩ = ⟨x, F_Yᵀ w F_X⟩: with γ = 1, write is the transpose of read's linear map."""
    M, C, A, B, N = 3, 2, 13, 9, 5
    w = random_window(M, A, B, N, seed=1)
    F_X, F_Y = at.filterbanks(w, N, A, B)
    x, patch = torch.randn(M, C, B, A, dtype=f64), torch.randn(M, C, N, N, dtype=f64)
    lhs = (at.glimpse(x, F_X, F_Y) * patch).sum((1, 2, 3))
    rhs = (x * at.write(patch, F_X, F_Y, torch.ones(M, dtype=f64))).sum((1, 2, 3))
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_gradcheck_read_and_write_through_the_window():
    M, C, A, B, N = 2, 2, 7, 5, 3
    gen = torch.Generator().manual_seed(0)
    p = (0.3 * torch.randn(M, 5, generator=gen, dtype=f64)).requires_grad_()
    x = torch.rand(M, C, B, A, generator=gen, dtype=f64).requires_grad_()
    x_hat = torch.randn(M, C, B, A, generator=gen, dtype=f64).requires_grad_()
    patch = torch.randn(M, C, N, N, generator=gen, dtype=f64).requires_grad_()

    def filters(p):
        return at.filterbanks(at.window_from_params(p, A, B, N), N, A, B)

    def read(p, x, x_hat):
        w = at.window_from_params(p, A, B, N)
        return at.read(x, x_hat, *at.filterbanks(w, N, A, B), w.gamma)

    def write(p, patch):
        w = at.window_from_params(p, A, B, N)
        return at.write(patch, *at.filterbanks(w, N, A, B), w.gamma)

    assert torch.autograd.gradcheck(filters, (p,))
    assert torch.autograd.gradcheck(read, (p, x, x_hat))
    assert torch.autograd.gradcheck(write, (p, patch))
    F_X, F_Y = (F.detach().requires_grad_() for F in filters(p))
    gamma = torch.rand(M, generator=gen, dtype=f64).add(0.5).requires_grad_()
    assert torch.autograd.gradcheck(at.read, (x, x_hat, F_X, F_Y, gamma))
    assert torch.autograd.gradcheck(at.write, (patch, F_X, F_Y, gamma))


def test_modules_shapes_and_gradients_non_square_colour():
    torch.manual_seed(0)
    M, hidden, A, B, C, N = 4, 16, 32, 24, 3, 5
    read = at.ReadAttention(hidden, A, B, C, N)
    write = at.WriteAttention(hidden, A, B, C, N)
    assert read.size == 2 * C * N * N
    x, x_hat, h = torch.rand(M, C, B, A), torch.randn(M, C, B, A), torch.randn(M, hidden)
    r, w = read(x, x_hat, h)
    assert r.shape == (M, read.size) and r.dtype == torch.float32
    assert all(f.shape == (M,) for f in (w.g_x, w.g_y, w.sigma2, w.delta, w.gamma))
    dc, w2 = write(h)
    assert dc.shape == (M, C, B, A) and dc.dtype == torch.float32
    (r.square().sum() + dc.square().sum()).backward()
    for module in (read, write):
        for name, param in module.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name


def test_modules_in_float64():
    M, hidden, A, B, C, N = 2, 6, 10, 8, 1, 4
    read = at.ReadAttention(hidden, A, B, C, N).double()
    write = at.WriteAttention(hidden, A, B, C, N).double()
    h = torch.randn(M, hidden, dtype=f64)
    r, _ = read(torch.rand(M, C, B, A, dtype=f64), torch.rand(M, C, B, A, dtype=f64), h)
    dc, _ = write(h)
    assert r.dtype == f64 and dc.dtype == f64 and dc.shape == (M, C, B, A)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_matches_cpu():
    M, hidden, A, B, C, N = 3, 8, 20, 14, 3, 6
    torch.manual_seed(0)
    write = at.WriteAttention(hidden, A, B, C, N)
    h = torch.randn(M, hidden)
    cpu, _ = write(h)
    gpu, _ = write.cuda()(h.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)


# ---- the fast forms against the plain ones (the equations as first written), values and gradients ----
def plain_filterbank(g, delta, sigma2, N, size, eps=1e-8):
    """The filterbank as the equations read: exp(−(a − μ)²/2σ²), then divided by the clamped row sum."""
    mu = at.filter_centres(g, delta, N)
    a = torch.arange(1, size + 1, dtype=g.dtype)
    F = torch.exp(-(a - mu[..., None]) ** 2 / (2 * sigma2[..., None, None]))
    return F / F.sum(-1, keepdim=True).clamp_min(eps)


def plain_write(patch, F_X, F_Y, gamma):
    """The write as the equation reads: the canvas F_Yᵀ w F_X, then divided by γ."""
    return (F_Y.transpose(-1, -2)[:, None] @ patch @ F_X[:, None]) / gamma[:, None, None, None]


def window_params(M, seed):
    gen = torch.Generator().manual_seed(seed)
    p = 0.5 * torch.randn(M, 5, generator=gen, dtype=f64)
    p[:, 2] -= 1.0                                   # σ² around e⁻¹: narrow filters, long tails that underflow
    return p.requires_grad_()


@pytest.mark.parametrize("A,B,N", [(60, 60, 8), (28, 28, 2), (23, 17, 5), (12, 12, 1)])
def test_fast_filterbanks_equal_the_plain_form(A, B, N):
    """exp2 with the scale folded in, one pass for both axes when A == B, a product with 1/Z:
    the same F_X, F_Y and the same gradients as exp, two passes and a division."""
    p = window_params(16, seed=A + N)
    w = at.window_from_params(p, A, B, N)
    fast = at.filterbanks(w, N, A, B)
    plain = (plain_filterbank(w.g_x, w.delta, w.sigma2, N, A), plain_filterbank(w.g_y, w.delta, w.sigma2, N, B))
    probe = [torch.randn(F.shape, generator=torch.Generator().manual_seed(k), dtype=f64) for k, F in enumerate(plain)]
    grads = []
    for F_X, F_Y in (fast, plain):
        assert F_X.shape == (16, N, A) and F_Y.shape == (16, N, B)
        grads.append(torch.autograd.grad((F_X * probe[0]).sum() + (F_Y * probe[1]).sum(), p, retain_graph=True)[0])
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_fast_filterbank_underflows_to_zero_like_the_plain_one():
    g = t(-80.0, 200.0, 30.0)                                  # off the image left, right, and inside
    F = at.filterbank(g, t(1.0, 1.0, 1.0), t(0.5, 0.5, 0.5), 4, 60)
    torch.testing.assert_close(F, plain_filterbank(g, t(1.0, 1.0, 1.0), t(0.5, 0.5, 0.5), 4, 60), rtol=1e-12, atol=0)
    assert torch.equal(F[:2], torch.zeros_like(F[:2]))
    F32 = at.filterbank(g.float(), t(1.0, 1.0, 1.0).float(), t(0.5, 0.5, 0.5).float(), 4, 60)
    torch.testing.assert_close(F32, F.float(), rtol=1e-5, atol=1e-7)   # float32 agrees to float tolerance


@pytest.mark.parametrize("A,B,C,N", [(60, 60, 1, 8), (17, 11, 3, 4)])
def test_write_dividing_the_patch_equals_dividing_the_canvas(A, B, C, N):
    """(1/γ) F_Yᵀ w F_X computed as F_Yᵀ (w/γ) F_X: values and gradients (w, F_X, F_Y, γ)."""
    M = 5
    gen = torch.Generator().manual_seed(3)
    w = at.window_from_params(0.4 * torch.randn(M, 5, generator=gen, dtype=f64), A, B, N)
    inputs = [torch.randn(M, C, N, N, generator=gen, dtype=f64), *at.filterbanks(w, N, A, B), w.gamma]
    inputs = [v.detach().requires_grad_() for v in inputs]
    probe = torch.randn(M, C, B, A, generator=gen, dtype=f64)
    fast, plain = at.write(*inputs), plain_write(*inputs)
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-14)
    grads = [torch.autograd.grad((out * probe).sum(), inputs) for out in (fast, plain)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)
