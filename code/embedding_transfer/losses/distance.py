"""Pairwise Euclidean distances, computed exactly as the reference does."""
import torch


def pdist(X):
    """(N, d) -> (N, N) Euclidean distance matrix.

    sqrt(clamp(|a|^2 + |b|^2 - 2 a.b, min=1e-12)), then the diagonal set to exactly 0. The clamp
    keeps sqrt's gradient finite where rounding makes a squared distance 0 or negative.
    """
    sq = X.pow(2).sum(1)                                              # (N,)
    d2 = sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * X @ X.t()            # (N, N)
    d = d2.clamp(min=1e-12).sqrt()
    # out-of-place, so autograd keeps what it saved for sqrt; the diagonal gets zero gradient
    eye = torch.eye(len(X), dtype=torch.bool, device=X.device)
    return d.masked_fill(eye, 0.0)
