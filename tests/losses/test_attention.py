import math

import pytest
import torch

from embedding_transfer.losses.attention import AttentionLoss


def rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def attention_loop(x):
    N, C, H, W = x.shape
    maps = []
    for n in range(N):
        a = [sum(x[n, c, h, w].item() ** 2 for c in range(C)) / C for h in range(H) for w in range(W)]
        norm = math.sqrt(sum(v * v for v in a))
        maps.append([v / norm for v in a])
    return maps


def loss_loop(t_maps, s_maps):
    total = 0.0
    for t, s in zip(t_maps, s_maps):
        at, as_ = attention_loop(t), attention_loop(s)
        total += sum((a - b) ** 2 for ra, rb in zip(at, as_) for a, b in zip(ra, rb)) / (len(at) * len(at[0]))
    return total


def test_matches_loop_with_differing_channels():
    shapes = [(3, 5, 6, 6), (4, 8, 4, 4), (2, 3, 3, 3), (6, 2, 2, 2)]
    t = [rand(3, tc, h, w, seed=i) for i, (tc, sc, h, w) in enumerate(shapes)]
    s = [rand(3, sc, h, w, seed=10 + i) for i, (tc, sc, h, w) in enumerate(shapes)]
    assert AttentionLoss()(t, s).item() == pytest.approx(loss_loop(t, s), rel=1e-10)


def test_gradcheck():
    t = [rand(2, 3, 3, 3, seed=1).requires_grad_(True), rand(2, 2, 2, 2, seed=2).requires_grad_(True)]
    s = [rand(2, 4, 3, 3, seed=3), rand(2, 5, 2, 2, seed=4)]
    assert torch.autograd.gradcheck(lambda a, b: AttentionLoss()([a, b], s), tuple(t))


def test_mismatches_are_errors():
    with pytest.raises(ValueError, match="as many"):
        AttentionLoss()([rand(2, 3, 4, 4, seed=0)], [])
    with pytest.raises(ValueError, match="spatial"):
        AttentionLoss()([rand(2, 3, 4, 4, seed=0)], [rand(2, 3, 2, 2, seed=1)])
