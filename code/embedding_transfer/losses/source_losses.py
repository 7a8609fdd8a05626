"""Losses for training a source network (the `--loss` choices of the authors' train_source.py).

Proxy_Anchor is ours (proxy_anchor.py). The other five wrap pytorch-metric-learning (pml) objects
configured as the authors' `code/DML_losses.py` (LabelRelaxation-CVPR21) configures them; that file
was written against pml 0.9.89 or older, so where pml 2.x spells a setting differently it is given
here in the 2.x spelling, with the same result (see each class). All take (embeddings, labels), the
embeddings as the network gives them (pml normalises where the authors' configuration does).
"""
import torch
import torch.nn as nn

from ..errors import UserError

from . import build_from
from .proxy_anchor import ProxyAnchorLoss


def pml():
    """pytorch-metric-learning, imported on first use: it pulls in scipy.stats, a second at every
    start of train_source.py, whose default loss (Proxy_Anchor) does not need it."""
    import pytorch_metric_learning.distances
    import pytorch_metric_learning.losses
    import pytorch_metric_learning.miners
    import pytorch_metric_learning.regularizers
    return pytorch_metric_learning


class ProxyNCALoss(nn.Module):
    """pml `ProxyNCALoss(num_classes, embedding_size, softmax_scale=32)`, as in the authors'
    `Proxy_NCA` class (DML_losses.py): squared Euclidean distances between L2-normalised
    embeddings and L2-normalised proxies, softmax scale 32. The authors' train_source.py built the
    class without its class count and embedding size and crashed; here both are passed
    (build_source_loss)."""

    inputs = ("t_emb", "labels")
    options = ("nb_classes", "sz_embed")

    def __init__(self, nb_classes, sz_embed, scale=32):
        super().__init__()
        self.loss_func = pml().losses.ProxyNCALoss(num_classes=nb_classes, embedding_size=sz_embed,
                                                 softmax_scale=scale)

    def forward(self, emb, labels):
        # pml's value, computed in log space: pml takes -log(sum of softmax terms), whose softmax
        # underflows to subnormals at scale 32 for far proxies, and the log's gradient becomes
        # inf * 0 = NaN (seen on small batches). Where pml does not underflow, the values agree.
        proxies = self.loss_func.proxies
        logits = -self.loss_func.softmax_scale * self.loss_func.distance(emb, proxies.to(emb.dtype))  # (N, C)
        same = labels.view(-1, 1) == torch.arange(len(proxies), device=labels.device).view(1, -1)
        positive = torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1)
        return (torch.logsumexp(logits, dim=1) - positive).mean()


class MultiSimilarityLoss(nn.Module):
    """pml `MultiSimilarityMiner(epsilon=0.1)` feeding `MultiSimilarityLoss(2, 50, 0.5)` (alpha=2,
    beta=50, base=0.5; cosine similarity of L2-normalised embeddings), the authors'
    `MultiSimilarityLoss` class (DML_losses.py)."""

    inputs = ("t_emb", "labels")
    options = ()

    def __init__(self, thresh=0.5, epsilon=0.1, scale_pos=2, scale_neg=50):
        super().__init__()
        self.miner = pml().miners.MultiSimilarityMiner(epsilon=epsilon)
        self.loss_func = pml().losses.MultiSimilarityLoss(alpha=scale_pos, beta=scale_neg, base=thresh)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels, self.miner(emb, labels))


class ContrastiveLoss(nn.Module):
    """pml `ContrastiveLoss(neg_margin=0.5)` (positive margin 0, Euclidean distance of
    L2-normalised embeddings, all pairs, mean over the non-zero terms), the authors'
    `ContrastiveLoss` class (DML_losses.py)."""

    inputs = ("t_emb", "labels")
    options = ()

    def __init__(self, margin=0.5):
        super().__init__()
        self.loss_func = pml().losses.ContrastiveLoss(neg_margin=margin)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels)


class TripletLoss(nn.Module):
    """pml `TripletMarginMiner` feeding `TripletMarginLoss(margin=0.2)`, both with margin 0.2, as
    the authors' `TripletLoss` class (DML_losses.py; the Proxy-Anchor codebase it derives from used
    margin 0.1 and semi-hard triplets instead). The authors give the miner
    `type_of_triplets='DistanceWeightedMiner'`, which is not one of the miner's types; pml then keeps
    every triplet that violates the margin, i.e. type "all", which is what is passed here."""

    inputs = ("t_emb", "labels")
    options = ()

    def __init__(self, margin=0.2):
        super().__init__()
        self.miner = pml().miners.TripletMarginMiner(margin=margin, type_of_triplets="all")
        self.loss_func = pml().losses.TripletMarginLoss(margin=margin)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels, self.miner(emb, labels))


class NPairLoss(nn.Module):
    """pml `NPairsLoss` on dot products of the embeddings as they are (not normalised), without an
    L2 regulariser, as the authors' `NPairLoss` class (DML_losses.py). The authors wrote
    `NPairsLoss(l2_reg_weight=0, normalize_embeddings=False)`, keywords that pml 0.9.90 and later
    (2.9.0 included) reject; pml 2.x says the same with
    `distance=DotProductSimilarity(normalize_embeddings=False)` and, for a non-zero `l2_reg`, an
    `LpRegularizer` (mean L2 norm of the embeddings) weighted by `l2_reg`."""

    inputs = ("t_emb", "labels")
    options = ()

    def __init__(self, l2_reg=0):
        super().__init__()
        reg = {"embedding_regularizer": pml().regularizers.LpRegularizer(), "embedding_reg_weight": l2_reg} if l2_reg else {}
        self.loss_func = pml().losses.NPairsLoss(distance=pml().distances.DotProductSimilarity(normalize_embeddings=False), **reg)

    def forward(self, emb, labels):
        return self.loss_func(emb, labels)


SOURCE_LOSSES = {"Proxy_Anchor": ProxyAnchorLoss, "Proxy_NCA": ProxyNCALoss, "MS": MultiSimilarityLoss,
                 "Contrastive": ContrastiveLoss, "Triplet": TripletLoss, "NPair": NPairLoss}


def build_source_loss(name, **available):
    """The criterion of train_source.py `--loss name`, given the run's quantities (nb_classes,
    sz_embed, mrg, alpha): each loss takes its `options` (losses.build_from). Proxy-Anchor as the
    authors build it; Proxy-NCA also with its class count and embedding size (the authors' script
    omitted them and crashed)."""
    if name not in SOURCE_LOSSES:
        raise UserError(f"unknown --loss {name!r} for a source network; valid: {', '.join(SOURCE_LOSSES)}")
    return build_from(SOURCE_LOSSES, name, {k: available[k] for k in SOURCE_LOSSES[name].options})
