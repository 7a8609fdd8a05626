"""The paper's losses: relaxed contrastive and relaxed multi-similarity.

Both compare the target's relative distances D with the source's similarities W:
  D = pdist(t_emb), each row divided by its mean over all N entries (the zero diagonal included);
  W = exp(-pdist(normalize(s_emb))^2 / sigma), no gradient.
Pairs with a high W are pulled together, pairs with a low W pushed beyond `delta`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError

from .distance import pdist


def relative_distances(t_emb):
    """(N, d) -> (N, N) target distances divided row-wise by the row mean (diagonal included)."""
    D = pdist(t_emb)
    return D / D.mean(1, keepdim=True)


@torch.no_grad()
def source_similarities(s_emb, sigma):
    """(N, d) -> (N, N) W = exp(-|s_i - s_j|^2 / sigma) on L2-normalised source embeddings.

    The training loop already normalises the source, but the reference normalises again inside
    the loss (the golden values need it); on unit vectors this is a no-op.
    """
    s = F.normalize(s_emb, p=2, dim=1)
    return torch.exp(-pdist(s).pow(2) / sigma)


def _off_diagonal(n, device):
    return ~torch.eye(n, dtype=torch.bool, device=device)


class RelaxedContrastiveLoss(nn.Module):
    """Sum over pairs i != j of W*D^2 + (1-W)*relu(delta-D)^2, divided by N."""

    inputs = ("t_emb", "s_emb")
    options = ("sigma", "delta")   # what the trainer passes (losses.build_loss)

    def __init__(self, sigma=1, delta=1):
        super().__init__()
        self.sigma, self.delta = sigma, delta

    def forward(self, t_emb, s_emb):
        D = relative_distances(t_emb)                                  # (N, N)
        W = source_similarities(s_emb, self.sigma)                     # (N, N)
        pair = W * D.pow(2) + (1 - W) * F.relu(self.delta - D).pow(2)
        off = _off_diagonal(len(t_emb), t_emb.device)
        return pair[off].sum() / len(t_emb)


def _log1p_weighted_sumexp(w, x, mask):
    """Row-wise log(1 + sum_j mask*w*exp(x)), (N, N) -> (N,), via logsumexp so that large
    relative distances cannot overflow exp in float32. Entries with w = 0 become -inf and drop out."""
    logits = (x + w.log()).masked_fill(~mask, float("-inf"))       # (N, N)
    zero = logits.new_zeros(len(logits), 1)                        # the "1 +" term
    return torch.logsumexp(torch.cat([zero, logits], 1), 1)        # (N,)


class RelaxedMSLoss(nn.Module):
    """Relaxed multi-similarity loss. The batch must be two views stacked (rows i and i + N/2 are
    the same image); W is set to 1 for those pairs. Per anchor i, over j != i:
        log(1 + sum W*exp(scale_pos*D)) / scale_pos
      + log(1 + sum (1-W)*exp(scale_neg*(delta-D))) / scale_neg
    and the loss is the mean of the anchors' terms that are > 0 (0 when none is), as in the
    reference (which looped over anchors in Python and crashed on an undefined name).
    """

    inputs = ("t_emb", "s_emb")
    options = ("sigma", "delta")   # what the trainer passes (losses.build_loss)

    def __init__(self, sigma=1, delta=1, scale_pos=1, scale_neg=2):
        super().__init__()
        self.sigma, self.delta = sigma, delta
        self.scale_pos, self.scale_neg = scale_pos, scale_neg

    def forward(self, t_emb, s_emb):
        N = len(t_emb)
        if N % 2:
            raise UserError(f"Relaxed_MS needs a batch of two stacked views, got an odd batch of "
                            f"{N} embeddings: train with --view 2.")
        D = relative_distances(t_emb)                                  # (N, N)
        W = source_similarities(s_emb, self.sigma)                     # (N, N)
        # the two views of one image are positives whatever the source says
        i = torch.arange(N, device=W.device)
        W = W.index_put((i, (i + N // 2) % N), W.new_ones(N))
        off = _off_diagonal(N, t_emb.device)
        pos = _log1p_weighted_sumexp(W, self.scale_pos * D, off) / self.scale_pos
        neg = _log1p_weighted_sumexp(1 - W, self.scale_neg * (self.delta - D), off) / self.scale_neg
        terms = pos + neg                                              # (N,)
        keep = terms > 0
        return (terms * keep).sum() / keep.sum().clamp(min=1)
