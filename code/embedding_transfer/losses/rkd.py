"""Relational Knowledge Distillation (Park et al., CVPR 2019): distance and angle relations."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .distance import pdist


def _relative_pdist(x):
    """(N, d) -> (N, N) distances divided by the mean of the positive (off-diagonal) ones."""
    d = pdist(x)
    return d / d[d > 0].mean()


def _angles(x):
    """(N, d) -> (N*N*N,) cos of angle(x_j - x_i, x_k - x_i) for all triplets (i, j, k)."""
    diff = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)   # (N, N, d): [i, j] = x_j - x_i
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)           # (N, N, N) flattened


class RKDLoss(nn.Module):
    """dist_weight * smooth-L1(relative distances) + angle_weight * smooth-L1(triplet angles);
    the source side carries no gradient."""

    inputs = ("t_emb", "s_emb")
    options = ()   # what the trainer passes (losses.build_loss)

    def __init__(self, dist_weight=1, angle_weight=2):
        super().__init__()
        self.dist_weight, self.angle_weight = dist_weight, angle_weight

    def forward(self, t_emb, s_emb):
        with torch.no_grad():
            s_dist, s_angle = _relative_pdist(s_emb), _angles(s_emb)
        dist_loss = F.smooth_l1_loss(_relative_pdist(t_emb), s_dist)
        angle_loss = F.smooth_l1_loss(_angles(t_emb), s_angle)
        return self.dist_weight * dist_loss + self.angle_weight * angle_loss
