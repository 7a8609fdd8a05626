import math

import pytest
import torch

from embedding_transfer.losses.pkt import PKTLoss

EPS = 1e-7


def rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def probs_loop(x):
    x = [[c / (math.sqrt(sum(v * v for v in row)) + EPS) for c in row] for row in x.tolist()]
    sim = [[(sum(a * b for a, b in zip(r, q)) + 1) / 2 for q in x] for r in x]
    return [[v / sum(row) for v in row] for row in sim]


def pkt_loop(t, s):
    T, S = probs_loop(t), probs_loop(s)
    N = len(T)
    return sum(S[i][j] * math.log((S[i][j] + EPS) / (T[i][j] + EPS))
               for i in range(N) for j in range(N)) / N ** 2


@pytest.mark.parametrize("N", [5, 11])
def test_matches_loop(N):
    t, s = rand(N, 4, seed=N), rand(N, 7, seed=N + 1)
    assert PKTLoss()(t, s).item() == pytest.approx(pkt_loop(t, s), rel=1e-10)


def test_gradcheck():
    t, s = rand(5, 3, seed=1).requires_grad_(True), rand(5, 4, seed=2)
    assert torch.autograd.gradcheck(lambda x: PKTLoss()(x, s), (t,))


def test_zero_row_is_finite():
    t, s = rand(6, 4, seed=3), rand(6, 4, seed=4)
    t[2] = 0
    t.requires_grad_(True)
    loss = PKTLoss()(t, s)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(t.grad).all()


def test_float32():
    t, s = rand(10, 8, seed=5), rand(10, 8, seed=6)
    got = PKTLoss()(t.float(), s.float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(PKTLoss()(t, s).item(), rel=1e-4)
