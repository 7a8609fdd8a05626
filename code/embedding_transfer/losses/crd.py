"""Contrastive Representation Distillation (Tian et al., ICLR 2020), RepDistiller's math.

Works on the pooled features (the vector before the embedding layer). Each side is embedded
(Linear + L2 norm) into `feat_dim`; each side has a memory bank with one slot per training
sample (per view, see `sample_contrast_index`). A target embedding is scored against the source
memory at the slots `contrast_index` (column 0 = its own slot, the positive; the others are
negatives) and vice versa, and an NCE loss tells the positive from the negatives.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError

EPS = 1e-7


def sample_contrast_index(index, slot_labels, nce_k, generator=None):
    """(N,) memory slots of a batch -> (N, nce_k + 1) long tensor of slots to contrast with.

    Column 0 is `index`; the other columns are memory slots drawn uniformly among those whose
    label differs from the anchor's. `slot_labels[j]` is the class of memory slot j (with V views
    of n images, slot v*n + i holds view v of image i). Drawn by rejection: draw from all slots,
    redraw the same-class ones; no per-class negative lists, so memory stays O(N * nce_k).
    """
    if bool((slot_labels == slot_labels[0]).all()):
        raise UserError("CRD needs negatives from other classes, but every memory slot has the "
                        "same label: use a training set with at least two classes.")
    n_slots = len(slot_labels)
    anchor = slot_labels[index].unsqueeze(1)                               # (N, 1)

    def draw(*shape):
        return torch.randint(n_slots, shape, generator=generator, device=slot_labels.device)

    neg = draw(len(index), nce_k)                                          # (N, nce_k)
    same = slot_labels[neg] == anchor
    while same.any():   # each round keeps a fraction ~(class share) of the clashes
        neg[same] = draw(int(same.sum()))
        same = slot_labels[neg] == anchor
    return torch.cat([index.to(neg.device).unsqueeze(1), neg], 1)           # (N, nce_k + 1)


class _Embed(nn.Module):
    """Linear projection to feat_dim, then L2 norm (RepDistiller's Embed)."""

    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return F.normalize(self.linear(x.flatten(1)), p=2, dim=1)


def _nce_loss(scores, n_data):
    """(N, K+1) normalised scores, column 0 the positive -> scalar NCE loss.

    With noise prior Pn = 1/n_data and K noise samples, P(data | x) = x / (x + K*Pn); the loss is
    -[log P(data | positive) + sum log P(noise | negatives)], averaged over the batch.
    """
    noise = (scores.shape[1] - 1) / n_data                                 # K * Pn
    log_d1 = torch.log(scores[:, 0] / (scores[:, 0] + noise + EPS))        # (N,)
    log_d0 = torch.log(noise / (scores[:, 1:] + noise + EPS))              # (N, K)
    return -(log_d1.sum() + log_d0.sum()) / len(scores)


class CRDLoss(nn.Module):
    """CRD between target pooled features (t_dim) and source pooled features (s_dim).
    `n_data` is the number of memory slots: training images x views, one slot per view.

    Buffers (in state_dict, so a resumed run continues with the same state):
      memory_t, memory_s  (n_data, feat_dim) memory banks of target / source embeddings;
      z_t, z_s            normalisation constants, -1 until set from the first batch
                          (mean score * n_data), then fixed.
    """

    inputs = ("t_pool", "s_pool", "index", "contrast_index")
    options = ("t_dim", "s_dim", "n_data", "nce_k")   # what the trainer passes (losses.build_loss)

    def __init__(self, t_dim, s_dim, n_data, feat_dim=128, nce_k=4096, nce_t=0.07, nce_m=0.5):
        super().__init__()
        self.n_data, self.nce_k, self.nce_t, self.nce_m = n_data, nce_k, nce_t, nce_m
        self.embed_t = _Embed(t_dim, feat_dim)
        self.embed_s = _Embed(s_dim, feat_dim)
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("memory_t", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("memory_s", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("z_t", torch.tensor(-1.0))
        self.register_buffer("z_s", torch.tensor(-1.0))

    def _scores(self, v, memory, contrast_index):
        """exp(v . memory[slot] / T) for each row's slots: (N, D), (N, K+1) -> (N, K+1)."""
        m = memory[contrast_index]                                         # (N, K+1, D), a copy
        return torch.exp(torch.einsum("nkd,nd->nk", m, v) / self.nce_t)

    @torch.no_grad()
    def _update_memory(self, memory, v, index):
        """Momentum update of the slots `index` toward v, re-normalised to unit length
        (a slot repeated in the batch keeps one of its updates, as in the reference)."""
        new = memory[index] * self.nce_m + v * (1 - self.nce_m)
        memory.index_copy_(0, index, F.normalize(new, p=2, dim=1))

    def forward(self, t_feat, s_feat, index, contrast_index):
        if contrast_index.shape != (len(index), self.nce_k + 1):
            raise ValueError(f"CRD expects contrast_index of shape (N, nce_k + 1) = "
                             f"({len(index)}, {self.nce_k + 1}), got {tuple(contrast_index.shape)}")
        index, contrast_index = index.to(self.memory_t.device), contrast_index.to(self.memory_t.device)
        v_t, v_s = self.embed_t(t_feat), self.embed_s(s_feat)              # (N, feat_dim) each
        out_t = self._scores(v_t, self.memory_s, contrast_index)           # target vs source memory
        out_s = self._scores(v_s, self.memory_t, contrast_index)           # source vs target memory
        with torch.no_grad():   # Z: set once, from the first batch, then constant
            self.z_t.copy_(torch.where(self.z_t < 0, out_t.mean() * self.n_data, self.z_t))
            self.z_s.copy_(torch.where(self.z_s < 0, out_s.mean() * self.n_data, self.z_s))
        # clones: the buffers must not be saved for backward (a later batch may write them)
        loss = (_nce_loss(out_t / self.z_t.clone(), self.n_data)
                + _nce_loss(out_s / self.z_s.clone(), self.n_data))
        if self.training:   # evaluating the loss must not move the memory
            self._update_memory(self.memory_t, v_t.detach(), index)
            self._update_memory(self.memory_s, v_s.detach(), index)
        return loss
