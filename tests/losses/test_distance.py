import math

import torch

from embedding_transfer.losses.distance import pdist


def pdist_loop(X):
    N = len(X)
    out = torch.zeros(N, N, dtype=X.dtype)
    for i in range(N):
        for j in range(N):
            if i != j:
                out[i, j] = math.sqrt(sum((X[i, k].item() - X[j, k].item()) ** 2 for k in range(X.shape[1])))
    return out


def test_matches_loop():
    X = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pdist(X), pdist_loop(X), rtol=1e-10, atol=1e-12)


def test_diagonal_exactly_zero_in_float32():
    X = 100 * torch.randn(9, 4, generator=torch.Generator().manual_seed(1))
    d = pdist(X)
    assert d.dtype == torch.float32
    assert (d.diagonal() == 0).all()
    assert (d[~torch.eye(9, dtype=torch.bool)] > 0).all()


def test_gradcheck():
    X = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    assert torch.autograd.gradcheck(pdist, (X,))


def test_duplicate_rows_give_finite_gradient():
    X = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    X = torch.cat([X, X[:1]]).requires_grad_(True)   # rows 0 and 4 coincide
    pdist(X).sum().backward()
    assert torch.isfinite(X.grad).all()
