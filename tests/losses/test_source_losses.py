"""The source losses against pytorch-metric-learning (pml) objects set up as the authors'
code/DML_losses.py (LabelRelaxation-CVPR21) sets them up, on random embeddings and labels; and the
installed pml (requirements.txt) taking the authors' arguments."""
import os
import re

import numpy as np
import pytest
import pytorch_metric_learning
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners

from embedding_transfer.errors import UserError
from embedding_transfer.losses.proxy_anchor import ProxyAnchorLoss
from embedding_transfer.losses.source_losses import (SOURCE_LOSSES, ContrastiveLoss, MultiSimilarityLoss, NPairLoss, ProxyNCALoss,
                                  TripletLoss, build_source_loss)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = [0, 1, 2]


def batch(seed, n=24, dim=16, classes=6, scale=1.0):
    """Float64 embeddings with a gradient and labels with several samples per class."""
    g = torch.Generator().manual_seed(seed)
    emb = (scale * torch.randn(n, dim, generator=g, dtype=torch.float64)).requires_grad_(True)
    labels = torch.randint(0, classes, (n,), generator=g)
    return emb, labels


def value_and_grad(fn, emb, labels):
    e = emb.detach().clone().requires_grad_(True)
    loss = fn(e, labels)
    loss.backward()
    return loss.detach(), e.grad


def assert_same(ours, authors, emb, labels):
    (l1, g1), (l2, g2) = value_and_grad(ours, emb, labels), value_and_grad(authors, emb, labels)
    assert l1.item() > 0
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


def test_installed_pml_is_the_pinned_version():
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        pinned = re.search(r"^pytorch-metric-learning==(\S+)", f.read(), re.M).group(1)
    assert pytorch_metric_learning.__version__ == pinned == "2.9.0"


def test_installed_pml_accepts_the_authors_arguments():
    # Exactly the calls of DML_losses.py for Proxy_NCA, MS, Contrastive and Triplet.
    nca = pml_losses.ProxyNCALoss(num_classes=5, embedding_size=8, softmax_scale=32)
    assert nca.softmax_scale == 32 and tuple(nca.proxies.shape) == (5, 8)
    ms_miner, ms = miners.MultiSimilarityMiner(epsilon=0.1), pml_losses.MultiSimilarityLoss(2, 50, 0.5)
    assert ms_miner.epsilon == 0.1 and (ms.alpha, ms.beta, ms.base) == (2, 50, 0.5)
    contra = pml_losses.ContrastiveLoss(neg_margin=0.5)
    assert (contra.pos_margin, contra.neg_margin) == (0, 0.5)
    tri_miner = miners.TripletMarginMiner(0.2, type_of_triplets="DistanceWeightedMiner")
    assert tri_miner.margin == 0.2 and pml_losses.TripletMarginLoss(margin=0.2).margin == 0.2


def test_installed_pml_rejects_the_authors_npairs_keywords():
    # Why NPairLoss spells them as a distance (pml 0.9.90 replaced both keywords).
    with pytest.raises(TypeError, match="l2_reg_weight"):
        pml_losses.NPairsLoss(l2_reg_weight=0, normalize_embeddings=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_proxy_nca_is_the_authors_configuration(seed):
    emb, labels = batch(seed)
    ours = ProxyNCALoss(nb_classes=6, sz_embed=16)
    authors = pml_losses.ProxyNCALoss(num_classes=6, embedding_size=16, softmax_scale=32)
    with torch.no_grad():
        ours.loss_func.proxies.copy_(torch.randn(6, 16, generator=torch.Generator().manual_seed(seed + 100)))
        authors.proxies.copy_(ours.loss_func.proxies)
    assert_same(ours, authors, emb, labels)


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_similarity_is_the_authors_configuration(seed):
    emb, labels = batch(seed)
    miner, loss = miners.MultiSimilarityMiner(epsilon=0.1), pml_losses.MultiSimilarityLoss(2, 50, 0.5)
    assert_same(MultiSimilarityLoss(), lambda e, y: loss(e, y, miner(e, y)), emb, labels)


@pytest.mark.parametrize("seed", SEEDS)
def test_contrastive_is_the_authors_configuration(seed):
    emb, labels = batch(seed)
    assert_same(ContrastiveLoss(), pml_losses.ContrastiveLoss(neg_margin=0.5), emb, labels)


@pytest.mark.parametrize("seed", SEEDS)
def test_triplet_is_the_authors_configuration(seed):
    emb, labels = batch(seed)
    miner = miners.TripletMarginMiner(0.2, type_of_triplets="DistanceWeightedMiner")
    loss = pml_losses.TripletMarginLoss(margin=0.2)
    ours = TripletLoss()
    # The authors' unknown miner type selects the same triplets as "all": every margin violator.
    with torch.no_grad():
        for a, b in zip(ours.miner(emb, labels), miner(emb, labels)):
            assert torch.equal(a, b)
    assert len(miner(emb, labels)[0]) > 0
    assert_same(ours, lambda e, y: loss(e, y, miner(e, y)), emb, labels)


def test_triplet_is_not_the_proxy_anchor_codebases_semihard_variant():
    emb, labels = batch(0)
    miner = miners.TripletMarginMiner(0.1, type_of_triplets="semihard")
    semihard = pml_losses.TripletMarginLoss(margin=0.1)
    with torch.no_grad():
        assert not torch.isclose(TripletLoss()(emb, labels), semihard(emb, labels, miner(emb, labels)))


def npairs_unnormalised(emb, labels):
    """The authors' N-pair loss as pml 0.9.89 computed it with normalize_embeddings=False: per class
    its first sample (in label order) is the anchor and the next sample of that class its positive;
    cross-entropy of the anchors' raw dot products with all positives, mean over classes."""
    y = labels.tolist()
    anchors, positives = [], []
    for c in sorted(set(y)):
        members = [i for i in range(len(y)) if y[i] == c]
        if len(members) > 1:
            anchors.append(members[0])
            positives.append(members[1])
    logits = emb[anchors] @ emb[positives].t()
    return F.cross_entropy(logits, torch.arange(len(anchors)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_npair_is_the_authors_unnormalised_dot_product(seed, scale):
    g = torch.Generator().manual_seed(seed)
    labels = torch.from_numpy(np.repeat(np.arange(6), 3))[torch.randperm(18, generator=g)]
    emb, _ = batch(seed, n=18, scale=scale)
    assert_same(NPairLoss(), npairs_unnormalised, emb, labels)
    with torch.no_grad():   # pml's default (normalised) would be another loss
        assert not torch.isclose(NPairLoss()(emb, labels), pml_losses.NPairsLoss()(emb, labels))


def test_npair_l2_regulariser_is_the_mean_embedding_norm():
    emb, labels = batch(0, scale=2.0)
    with torch.no_grad():
        expected = NPairLoss()(emb, labels) + 0.1 * emb.norm(dim=1).mean()
        torch.testing.assert_close(NPairLoss(l2_reg=0.1)(emb, labels), expected)


RUN = dict(nb_classes=7, sz_embed=12, mrg=0.1, alpha=32)   # the run's quantities train_source passes


def test_build_source_loss_uses_the_authors_defaults():
    nca = build_source_loss("Proxy_NCA", **RUN)
    assert tuple(nca.loss_func.proxies.shape) == (7, 12) and nca.loss_func.softmax_scale == 32
    pa = build_source_loss("Proxy_Anchor", nb_classes=7, sz_embed=12, mrg=0.2, alpha=16)
    assert type(pa) is ProxyAnchorLoss and (pa.mrg, pa.alpha) == (0.2, 16)
    tri = build_source_loss("Triplet", **RUN)
    assert (tri.miner.margin, tri.miner.type_of_triplets, tri.loss_func.margin) == (0.2, "all", 0.2)
    ms = build_source_loss("MS", **RUN)
    assert (ms.miner.epsilon, ms.loss_func.alpha, ms.loss_func.beta, ms.loss_func.base) == (0.1, 2, 50, 0.5)
    contra = build_source_loss("Contrastive", **RUN)
    assert (contra.loss_func.pos_margin, contra.loss_func.neg_margin) == (0, 0.5)
    npair = build_source_loss("NPair", **RUN)
    assert not npair.loss_func.distance.normalize_embeddings and npair.loss_func.embedding_regularizer is None
    assert list(SOURCE_LOSSES) == ["Proxy_Anchor", "Proxy_NCA", "MS", "Contrastive", "Triplet", "NPair"]
    with pytest.raises(UserError, match="Proxy_Anchor, Proxy_NCA"):
        build_source_loss("Nope", **RUN)


@pytest.mark.parametrize("name", ["Proxy_NCA", "MS", "Contrastive", "Triplet", "NPair"])
def test_float32_batches_give_finite_losses_and_gradients(name):
    emb, labels = batch(3)
    emb = emb.detach().float().requires_grad_(True)
    loss = build_source_loss(name, nb_classes=6, sz_embed=16, mrg=0.1, alpha=32)(emb, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
