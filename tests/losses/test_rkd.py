import math

import pytest
import torch

from embedding_transfer.losses.rkd import RKDLoss


def rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def smooth_l1(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def rel_dist_loop(x):
    N = len(x)
    d = [[math.dist(x[i], x[j]) for j in range(N)] for i in range(N)]
    mean = sum(d[i][j] for i in range(N) for j in range(N) if i != j) / (N * (N - 1))
    return [[d[i][j] / mean for j in range(N)] for i in range(N)]


def angles_loop(x):
    """cos of the angle at vertex i between x_j - x_i and x_k - x_i (0 when j or k is i)."""
    N = len(x)

    def unit(i, j):
        v = [b - a for a, b in zip(x[i], x[j])]
        n = math.sqrt(sum(c * c for c in v))
        return [c / n for c in v] if n > 0 else [0.0] * len(v)

    return [sum(a * b for a, b in zip(unit(i, j), unit(i, k)))
            for i in range(N) for j in range(N) for k in range(N)]


def rkd_loop(t, s, wd, wa):
    t, s = t.tolist(), s.tolist()
    dt, ds = rel_dist_loop(t), rel_dist_loop(s)
    N = len(t)
    dist_loss = sum(smooth_l1(dt[i][j], ds[i][j]) for i in range(N) for j in range(N)) / N ** 2
    at, as_ = angles_loop(t), angles_loop(s)
    angle_loss = sum(smooth_l1(a, b) for a, b in zip(at, as_)) / N ** 3
    return wd * dist_loss + wa * angle_loss


@pytest.mark.parametrize("N,wd,wa", [(7, 1, 2), (5, 0.5, 3)])
def test_matches_loop(N, wd, wa):
    # an outlier in the target makes some relative distances differ by more than 1, so that
    # smooth-L1 runs in both its branches for distances too (angles already do)
    t, s = rand(N, 4, seed=N), rand(N, 6, seed=N + 1)
    t[0] *= 8
    got = RKDLoss(dist_weight=wd, angle_weight=wa)(t, s)
    assert got.item() == pytest.approx(rkd_loop(t, s, wd, wa), rel=1e-10)


def test_gradcheck_and_no_source_gradient():
    t, s = rand(5, 3, seed=1).requires_grad_(True), rand(5, 4, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: RKDLoss()(x, s.detach()), (t,))
    RKDLoss()(t, s).backward()
    assert s.grad is None


def test_float32():
    t, s = rand(10, 8, seed=3), rand(10, 8, seed=4)
    got = RKDLoss()(t.float(), s.float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(RKDLoss()(t, s).item(), rel=1e-4)
