import math

import pytest
import torch

from embedding_transfer.errors import UserError
from embedding_transfer.losses.relaxed import RelaxedContrastiveLoss, RelaxedMSLoss


def rand(*shape, seed, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def prepare(t, s, sigma):
    """Loop version of D (row-mean-normalised target distances) and W (source similarities)."""
    t, s = t.tolist(), s.tolist()
    N = len(t)
    s = [[x / math.sqrt(sum(y * y for y in row)) for x in row] for row in s]
    d = [[dist(t[i], t[j]) for j in range(N)] for i in range(N)]
    D = [[d[i][j] / (sum(d[i]) / N) for j in range(N)] for i in range(N)]
    W = [[math.exp(-dist(s[i], s[j]) ** 2 / sigma) for j in range(N)] for i in range(N)]
    return D, W


def contra_loop(t, s, sigma, delta):
    N = len(t)
    D, W = prepare(t, s, sigma)
    total = 0.0
    for i in range(N):
        for j in range(N):
            if i != j:
                total += W[i][j] * D[i][j] ** 2 + (1 - W[i][j]) * max(delta - D[i][j], 0) ** 2
    return total / N


def ms_loop(t, s, sigma, delta, sp=1, sn=2):
    N = len(t)
    D, W = prepare(t, s, sigma)
    terms = []
    for i in range(N):
        pos = neg = 0.0
        for j in range(N):
            if i == j:
                continue
            w = 1.0 if j == (i + N // 2) % N else W[i][j]   # the other view of the same image
            pos += w * math.exp(sp * D[i][j])
            neg += (1 - w) * math.exp(sn * (delta - D[i][j]))
        terms.append(math.log(1 + pos) / sp + math.log(1 + neg) / sn)
    positive = [x for x in terms if x > 0]
    return sum(positive) / len(positive) if positive else 0.0


@pytest.mark.parametrize("N,sigma,delta", [(10, 1, 1), (7, 0.5, 0.8), (13, 2.0, 1.5)])
def test_contra_matches_loop(N, sigma, delta):
    t, s = rand(N, 6, seed=N), rand(N, 9, seed=N + 100)
    got = RelaxedContrastiveLoss(sigma=sigma, delta=delta)(t, s)
    assert got.item() == pytest.approx(contra_loop(t, s, sigma, delta), rel=1e-10)


@pytest.mark.parametrize("N", [2, 4, 6, 10, 32])
def test_ms_vectorised_matches_loop(N):
    t, s = rand(N, 5, seed=N), rand(N, 7, seed=N + 100)
    for sigma, delta in [(1, 1), (0.5, 0.7)]:
        got = RelaxedMSLoss(sigma=sigma, delta=delta)(t, s)
        assert got.item() == pytest.approx(ms_loop(t, s, sigma, delta), rel=1e-10)


def test_ms_scales_are_arguments():
    t, s = rand(8, 5, seed=1), rand(8, 7, seed=2)
    got = RelaxedMSLoss(scale_pos=2, scale_neg=3)(t, s)
    assert got.item() == pytest.approx(ms_loop(t, s, 1, 1, sp=2, sn=3), rel=1e-10)


def test_ms_rejects_odd_batch():
    with pytest.raises(UserError, match="two stacked views"):
        RelaxedMSLoss()(rand(7, 4, seed=0), rand(7, 4, seed=1))


@pytest.mark.parametrize("cls", [RelaxedContrastiveLoss, RelaxedMSLoss])
def test_gradcheck(cls):
    t = rand(6, 3, seed=5).requires_grad_(True)
    s = rand(6, 4, seed=6)
    assert torch.autograd.gradcheck(lambda x: cls(sigma=0.8, delta=1.2)(x, s), (t,))


@pytest.mark.parametrize("cls", [RelaxedContrastiveLoss, RelaxedMSLoss])
def test_source_is_normalised_and_gets_no_gradient(cls):
    t, s = rand(8, 4, seed=7), rand(8, 5, seed=8).requires_grad_(True)
    loss = cls()(t.requires_grad_(True), s)
    torch.testing.assert_close(loss, cls()(t, 3 * s.detach()))
    loss.backward()
    assert s.grad is None and t.grad is not None


@pytest.mark.parametrize("cls", [RelaxedContrastiveLoss, RelaxedMSLoss])
def test_float32(cls):
    t, s = rand(12, 8, seed=9), rand(12, 8, seed=10)
    got = cls()(t.float(), s.float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(cls()(t, s).item(), rel=1e-4)
