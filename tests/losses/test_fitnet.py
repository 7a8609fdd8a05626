import pytest
import torch
import torch.nn as nn

from embedding_transfer.losses.fitnet import FitNetLoss

PAIRS = [(3, 5), (4, 2), (6, 6), (2, 7)]
SIZES = [6, 4, 3, 2]


def rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def maps(N=2):
    t = [rand(N, tc, h, h, seed=i) for i, ((tc, sc), h) in enumerate(zip(PAIRS, SIZES))]
    s = [rand(N, sc, h, h, seed=10 + i) for i, ((tc, sc), h) in enumerate(zip(PAIRS, SIZES))]
    return t, s


def fitnet_loop(weights, t_maps, s_maps):
    total = 0.0
    for W, t, s in zip(weights, t_maps, s_maps):
        N, tc, H, Wd = t.shape
        sc = s.shape[1]
        err = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(Wd):
                    for o in range(sc):   # 1x1 convolution = matrix-vector product per pixel
                        y = sum(W[o, c, 0, 0].item() * t[n, c, h, w].item() for c in range(tc))
                        err += (y - s[n, o, h, w].item()) ** 2
        total += err / s.numel()
    return total


def test_regressors_in_pair_order_with_reference_init():
    loss = FitNetLoss(channels=PAIRS)
    convs = [m for m in loss.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == PAIRS
    for c in convs:
        assert c.bias is None and c.kernel_size == (1, 1)
        assert c.weight.abs().max() <= 0.005
    assert len(list(loss.parameters())) == 4


def test_matches_loop_with_four_pairs():
    loss = FitNetLoss(channels=PAIRS).double()
    with torch.no_grad():   # weights larger than the init, so the regression matters
        for i, c in enumerate(loss.regressors):
            c.weight.copy_(rand(*c.weight.shape, seed=20 + i))
    t, s = maps()
    weights = [c.weight.detach() for c in loss.regressors]
    assert loss(t, s).item() == pytest.approx(fitnet_loop(weights, t, s), rel=1e-10)


def test_gradcheck_inputs_and_regressors():
    loss = FitNetLoss(channels=PAIRS[:2]).double()
    t, s = maps()
    t = [x[:, :, :2, :2].clone().requires_grad_(True) for x in t[:2]]
    s = [x[:, :, :2, :2] for x in s[:2]]
    w = [c.weight.detach().clone().requires_grad_(True) for c in loss.regressors]

    def f(t0, t1, w0, w1):
        params = {"regressors.0.weight": w0, "regressors.1.weight": w1}
        return torch.func.functional_call(loss, params, ([t0, t1], s))

    assert torch.autograd.gradcheck(f, (*t, *w))


def test_count_mismatch_is_an_error():
    t, s = maps()
    with pytest.raises(ValueError, match="4 feature-map pairs"):
        FitNetLoss(channels=PAIRS).double()(t[:3], s[:3])
