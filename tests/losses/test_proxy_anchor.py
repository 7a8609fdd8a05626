import math

import pytest
import torch

from embedding_transfer.losses.proxy_anchor import ProxyAnchorLoss


def rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def proxy_anchor_loop(X, y, P, mrg, alpha):
    X, y, P = X.tolist(), y.tolist(), P.tolist()

    def cos(a, b):
        return sum(u * v for u, v in zip(a, b)) / math.sqrt(sum(u * u for u in a) * sum(v * v for v in b))

    pos_total, neg_total, with_pos = 0.0, 0.0, 0
    for c, p in enumerate(P):
        members = [i for i in range(len(X)) if y[i] == c]
        if members:
            with_pos += 1
            pos_total += math.log(1 + sum(math.exp(-alpha * (cos(X[i], p) - mrg)) for i in members))
        neg_total += math.log(1 + sum(math.exp(alpha * (cos(X[i], p) + mrg))
                                      for i in range(len(X)) if y[i] != c))
    return pos_total / with_pos + neg_total / len(P)


@pytest.mark.parametrize("mrg,alpha", [(0.1, 32), (0.2, 8)])
def test_matches_loop_with_absent_classes(mrg, alpha):
    loss = ProxyAnchorLoss(nb_classes=7, sz_embed=6, mrg=mrg, alpha=alpha).double()
    X = rand(15, 6, seed=1)
    y = torch.tensor([0, 0, 1, 1, 1, 3, 3, 4, 4, 4, 0, 1, 3, 4, 0])   # classes 2, 5, 6 absent
    expected = proxy_anchor_loop(X, y, loss.proxies.detach(), mrg, alpha)
    assert loss(X, y).item() == pytest.approx(expected, rel=1e-10)


def test_gradcheck_embeddings_and_proxies():
    loss = ProxyAnchorLoss(nb_classes=4, sz_embed=3, alpha=8).double()
    X, y = rand(6, 3, seed=2).requires_grad_(True), torch.tensor([0, 0, 1, 2, 2, 1])
    P = loss.proxies.detach().clone().requires_grad_(True)
    f = lambda x, p: torch.func.functional_call(loss, {"proxies": p}, (x, y))
    assert torch.autograd.gradcheck(f, (X, P))


def test_one_proxy_parameter_with_kaiming_fan_out_init():
    loss = ProxyAnchorLoss(nb_classes=100, sz_embed=512)
    params = list(loss.parameters())
    assert len(params) == 1 and params[0].shape == (100, 512)
    # kaiming normal, fan_out = nb_classes for a 2-D tensor: std = sqrt(2 / nb_classes)
    assert params[0].std().item() == pytest.approx(math.sqrt(2 / 100), rel=0.05)
