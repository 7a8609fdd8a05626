"""Proxy-Anchor loss (Kim et al., CVPR 2020): the source's training loss, and the companion of
FitNet, Attention and CRD when training the target."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ProxyAnchorLoss(nn.Module):
    """One learnable proxy per class. With cos = cosine(embedding, proxy):
    positive term, averaged over the proxies that have samples in the batch:
        log(1 + sum over their samples of exp(-alpha * (cos - mrg)))
    negative term, averaged over all proxies:
        log(1 + sum over the other classes' samples of exp(alpha * (cos + mrg)))."""

    inputs = ("t_emb", "labels")
    options = ("nb_classes", "sz_embed", "mrg", "alpha")   # what the trainer passes (losses.build_loss)

    def __init__(self, nb_classes, sz_embed, mrg=0.1, alpha=32):
        super().__init__()
        self.nb_classes, self.mrg, self.alpha = nb_classes, mrg, alpha
        self.proxies = nn.Parameter(torch.empty(nb_classes, sz_embed))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")

    def forward(self, emb, labels):
        cos = F.normalize(emb, dim=1) @ F.normalize(self.proxies, dim=1).t()   # (N, C)
        pos = F.one_hot(labels, self.nb_classes).bool()                          # (N, C)
        pos_sum = torch.where(pos, torch.exp(-self.alpha * (cos - self.mrg)), 0).sum(0)   # (C,)
        neg_sum = torch.where(pos, 0, torch.exp(self.alpha * (cos + self.mrg))).sum(0)    # (C,)
        n_with_pos = pos.any(0).sum()
        return torch.log1p(pos_sum).sum() / n_with_pos + torch.log1p(neg_sum).sum() / self.nb_classes
