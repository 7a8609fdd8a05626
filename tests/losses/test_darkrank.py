import math

import pytest
import torch

from embedding_transfer.losses.darkrank import DarkRankLoss


def rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def unit_rows(x):
    return [[c / math.sqrt(sum(v * v for v in row)) for c in row] for row in x.tolist()]


def dark_rank_loop(t, s, alpha, beta, L):
    t, s = unit_rows(t), unit_rows(s)
    N = len(t)
    total = 0.0
    for i in range(N):
        # the source's L nearest neighbours of i, nearest first
        order = sorted((j for j in range(N) if j != i), key=lambda j: math.dist(s[i], s[j]))[:L]
        score = [-alpha * math.dist(t[i], t[j]) ** beta for j in order]
        # Plackett-Luce log-likelihood of that order under the target's scores
        log_p = sum(score[a] - math.log(sum(math.exp(score[b]) for b in range(a, len(score))))
                    for a in range(len(score)))
        total -= log_p
    return total / N


def triplet_loop(t, y, margin):
    """Mean over all margin-violating triplets (a, p, n) of d(a,p) - d(a,n) + margin."""
    t, y = unit_rows(t), y.tolist()
    N = len(t)
    viol = []
    for a in range(N):
        for p in range(N):
            for n in range(N):
                if p != a and y[p] == y[a] and y[n] != y[a]:
                    v = math.dist(t[a], t[p]) - math.dist(t[a], t[n]) + margin
                    if v > 0:
                        viol.append(v)
    return sum(viol) / len(viol) if viol else 0.0


@pytest.mark.parametrize("N,alpha,beta,L,w,margin",
                         [(12, 3, 3, 4, 1.0, 0.2), (10, 2, 2, 3, 0.5, 0.3), (9, 3, 3, 8, 0.0, 0.2)])
def test_matches_loop(N, alpha, beta, L, w, margin):
    t, s = rand(N, 5, seed=N), rand(N, 7, seed=N + 1)
    y = torch.arange(N) % 3
    loss = DarkRankLoss(alpha=alpha, beta=beta, permute_len=L, triplet_weight=w, triplet_margin=margin)
    expected = dark_rank_loop(t, s, alpha, beta, L) + w * triplet_loop(t, y, margin)
    assert loss(t, s, y).item() == pytest.approx(expected, rel=1e-9)


def test_self_excluded_when_a_source_embedding_is_duplicated():
    s = rand(8, 4, seed=2)
    s[5] = s[3]   # distance 0 between rows 3 and 5 ties with the diagonal
    order = DarkRankLoss(permute_len=7).neighbour_order(s)
    assert order.shape == (8, 7)
    for i in range(8):
        assert sorted(order[i].tolist()) == [j for j in range(8) if j != i]
    assert order[3, 0] == 5 and order[5, 0] == 3


def test_gradcheck():
    t, s = rand(8, 3, seed=3).requires_grad_(True), rand(8, 4, seed=4)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    assert torch.autograd.gradcheck(lambda x: DarkRankLoss()(x, s, y), (t,))


def test_float32():
    t, s, y = rand(12, 8, seed=5), rand(12, 8, seed=6), torch.arange(12) % 4
    got = DarkRankLoss()(t.float(), s.float(), y)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(DarkRankLoss()(t, s, y).item(), rel=1e-4)
