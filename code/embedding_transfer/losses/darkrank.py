"""Hard DarkRank (Chen et al., AAAI 2018) plus a triplet loss on the target, as the reference."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .distance import pdist


class DarkRankLoss(nn.Module):
    """For each row, the source's `permute_len` nearest neighbours (itself excluded), in order;
    loss = negative log-likelihood of that order under the target's scores -alpha*dist^beta
    (Plackett-Luce over those neighbours), mean over rows, computed on L2-normalised embeddings;
    plus `triplet_weight` x triplet loss (margin `triplet_margin`) over all margin-violating
    triplets of the target embeddings.
    """

    inputs = ("t_emb", "s_emb", "labels")
    options = ()   # what the trainer passes (losses.build_loss)

    def __init__(self, alpha=3, beta=3, permute_len=4, triplet_weight=1.0, triplet_margin=0.2):
        super().__init__()
        # Imported here: pytorch-metric-learning pulls in scipy.stats, a second at every start of a
        # trainer that does not use this loss.
        from pytorch_metric_learning import losses as pml_losses, miners as pml_miners
        self.alpha, self.beta, self.permute_len = alpha, beta, permute_len
        self.triplet_weight = triplet_weight
        # the reference passes an invalid miner type, which the library treats as "all"
        self.miner = pml_miners.TripletMarginMiner(margin=triplet_margin, type_of_triplets="all")
        self.triplet = pml_losses.TripletMarginLoss(margin=triplet_margin)

    def _scores(self, x):
        return -self.alpha * pdist(F.normalize(x, p=2, dim=1)).pow(self.beta)   # (N, N)

    @torch.no_grad()
    def neighbour_order(self, s_emb):
        """(N, d) -> (N, k): each row's source nearest neighbours, nearest first, itself excluded."""
        # the reference sorts and drops column 0 (itself); masking the diagonal instead is the
        # same, but stays right when another embedding ties with it at distance 0
        eye = torch.eye(len(s_emb), dtype=torch.bool, device=s_emb.device)
        k = min(self.permute_len, len(s_emb) - 1)
        return self._scores(s_emb).masked_fill(eye, float("-inf")).topk(k, dim=1).indices

    def dark_rank(self, t_emb, s_emb):
        ranked = self._scores(t_emb).gather(1, self.neighbour_order(s_emb))   # (N, k) target scores
        # Plackett-Luce: log P(order) = sum_i [ranked_i - logsumexp(ranked_i..k-1)]
        tail_lse = ranked.flip(1).logcumsumexp(1).flip(1)              # (N, k)
        return -(ranked - tail_lse).sum(1).mean()

    def forward(self, t_emb, s_emb, labels):
        triplet = self.triplet(t_emb, labels, self.miner(t_emb, labels))
        return self.dark_rank(t_emb, s_emb) + self.triplet_weight * triplet
