"""Losses for training a source network (the Proxy-Anchor codebase's `--loss` choices).

Proxy_Anchor is ours (proxy_anchor.py); the baselines wrap pytorch-metric-learning with the
settings of the Proxy-Anchor reference. All take (embeddings, labels).
"""
import torch.nn as nn
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners

from errors import UserError

from .proxy_anchor import ProxyAnchorLoss


class ProxyNCALoss(nn.Module):
    def __init__(self, nb_classes, sz_embed, scale=32):
        super().__init__()
        self.loss_func = pml_losses.ProxyNCALoss(num_classes=nb_classes, embedding_size=sz_embed,
                                                 softmax_scale=scale)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels)


class MultiSimilarityLoss(nn.Module):
    def __init__(self, thresh=0.5, epsilon=0.1, scale_pos=2, scale_neg=50):
        super().__init__()
        self.miner = miners.MultiSimilarityMiner(epsilon=epsilon)
        self.loss_func = pml_losses.MultiSimilarityLoss(alpha=scale_pos, beta=scale_neg, base=thresh)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels, self.miner(emb, labels))


class ContrastiveLoss(nn.Module):
    def __init__(self, margin=0.5):
        super().__init__()
        self.loss_func = pml_losses.ContrastiveLoss(neg_margin=margin)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels)


class TripletLoss(nn.Module):
    def __init__(self, margin=0.1):
        super().__init__()
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
        self.loss_func = pml_losses.TripletMarginLoss(margin=margin)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels, self.miner(emb, labels))


class NPairLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.loss_func = pml_losses.NPairsLoss()

    def forward(self, emb, labels):
        return self.loss_func(emb, labels)


SOURCE_LOSSES = {"Proxy_Anchor": ProxyAnchorLoss, "Proxy_NCA": ProxyNCALoss, "MS": MultiSimilarityLoss,
                 "Contrastive": ContrastiveLoss, "Triplet": TripletLoss, "NPair": NPairLoss}


def build_source_loss(name, nb_classes, sz_embed, mrg=0.1, alpha=32):
    """The reference's construction: Proxy-Anchor with (mrg, alpha), Proxy-NCA with its class count
    and size (the reference forgot them and crashed), the others with their defaults."""
    if name == "Proxy_Anchor":
        return ProxyAnchorLoss(nb_classes=nb_classes, sz_embed=sz_embed, mrg=mrg, alpha=alpha)
    if name == "Proxy_NCA":
        return ProxyNCALoss(nb_classes=nb_classes, sz_embed=sz_embed)
    if name in SOURCE_LOSSES:
        return SOURCE_LOSSES[name]()
    raise UserError(f"unknown --loss {name!r} for a source network; valid: {', '.join(SOURCE_LOSSES)}")
