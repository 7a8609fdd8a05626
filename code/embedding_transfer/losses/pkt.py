"""Probabilistic Knowledge Transfer (Passalis & Tefas, ECCV 2018), as in RepDistiller."""
import torch
import torch.nn as nn

EPS = 1e-7


def _conditional_probs(x):
    """(N, d) -> (N, N): cosine similarities mapped to [0, 1], each row normalised to sum 1."""
    x = x / (x.norm(dim=1, keepdim=True) + EPS)
    x = torch.nan_to_num(x, nan=0.0)        # the reference zeroes NaNs (rows of NaN input)
    sim = (x @ x.t() + 1) / 2
    return sim / sim.sum(1, keepdim=True)


class PKTLoss(nn.Module):
    """mean of S * log((S + eps) / (T + eps)): KL-style divergence of the target's conditional
    similarity distribution T from the source's S."""

    inputs = ("t_emb", "s_emb")
    options = ()   # what the trainer passes (losses.build_loss)

    def forward(self, t_emb, s_emb):
        T, S = _conditional_probs(t_emb), _conditional_probs(s_emb)
        return (S * torch.log((S + EPS) / (T + EPS))).mean()
