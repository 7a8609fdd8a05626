"""Retrieval metrics on embeddings: Recall@K with exact Euclidean nearest neighbours.

Recall@K only needs, for each query, the rank of its nearest positive (same-class item other than
the query itself): the query is a hit at K when fewer than K other items stand before that positive.
So instead of sorting or a top-1000 search we compute, in row chunks,

    score[i, j] = |x_j|^2 - 2 x_i.x_j      (= |x_i - x_j|^2 - |x_i|^2, same order along a row)

with one matrix product on augmented vectors ([-2 x_i, 1] . [x_j, |x_j|^2]), read the nearest
positive's score by gathering the few same-class columns, and count the row entries at or below it.
Memory stays O(chunk x N); time is dominated by the product itself.

Ties are broken against the query: an item of another class at exactly the nearest positive's
distance counts as ranked before it. Collapsed (all-equal) embeddings thus score 0, not 1.
"""
import torch

# Rows per chunk: large enough for an efficient product, small enough that a chunk x N block of
# float32 scores stays near the CPU caches at SOP scale (60k columns).
DEFAULT_CHUNK = 256


def _class_members(labels):
    """For each item, the (start, count) of its class in `order`, the indices sorted by label."""
    order = torch.argsort(labels, stable=True)
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    return order, starts[inverse], counts[inverse]


def _checked(embeddings, labels):
    """(N, d) floating embeddings and (N,) labels on their device, or a ValueError saying what is off."""
    X = torch.as_tensor(embeddings)
    if not X.is_floating_point():
        X = X.float()
    labels = torch.as_tensor(labels, device=X.device).reshape(-1)
    if X.dim() != 2 or X.shape[0] != labels.shape[0]:
        raise ValueError(f"embeddings must be (N, d) with N = len(labels); got {tuple(X.shape)} "
                         f"and {tuple(labels.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError("embeddings contain NaN or infinite values; the model that produced them diverged")
    return X, labels


def _padded_width(n):
    """Row width for `_count_true_rows`: 4 bytes a word, at most 255 words a group."""
    words = -(-n // 4)
    groups = -(-words // 255)
    return groups * (-(-words // groups)) * 4, groups


def _count_true_rows(mask, groups):
    """Row sums of a (c, W) bool mask, W from `_padded_width`.

    Summing bools in eager PyTorch first casts them to int64, which costs about as much as the
    whole product. Instead sum the mask as int32 words: each of the 4 byte lanes holds a 0/1, and
    over at most 255 words a lane cannot carry into the next, so the lanes add up separately.
    """
    c = mask.shape[0]
    v = mask.view(torch.uint8).view(torch.int32).view(c, groups, -1).sum(-1, dtype=torch.int32)
    lanes = (v & 255) + ((v >> 8) & 255) + ((v >> 16) & 255) + ((v >> 24) & 255)   # (c, groups)
    return lanes.sum(1)


def nearest_positive_rank(embeddings, labels, max_rank, chunk_size=DEFAULT_CHUNK):
    """Number of other-class items at or before each query's nearest positive, capped at max_rank.

    Queries without any positive get max_rank (a miss at every K <= max_rank).
    embeddings: (N, d) float, labels: (N,) int -> (N,) int64.
    """
    X, labels = _checked(embeddings, labels)
    n = X.shape[0]
    npad, groups = _padded_width(n)
    sq = (X * X).sum(1, keepdim=True)                               # (N, 1)
    keys = torch.cat([X, sq], 1)                                    # (N, d+1)
    # Padding columns score far above any threshold, so they are never counted.
    pad = torch.zeros(npad - n, X.shape[1] + 1, dtype=X.dtype, device=X.device)
    pad[:, -1] = torch.finfo(X.dtype).max / 4
    keys = torch.cat([keys, pad], 0)                                # (Npad, d+1)
    queries = torch.cat([-2 * X, torch.ones_like(sq)], 1)           # (N, d+1)
    order, start, count = _class_members(labels)
    rank = torch.full((n,), max_rank, dtype=torch.long, device=X.device)
    below = torch.empty(min(chunk_size, n), npad, dtype=torch.bool, device=X.device)

    for lo in range(0, n, chunk_size):
        hi = min(lo + chunk_size, n)
        score = queries[lo:hi] @ keys.T                             # (c, Npad)
        # All same-class (row, column) pairs of the chunk, the query itself included.
        cnt = count[lo:hi]
        rows = torch.repeat_interleave(torch.arange(hi - lo, device=X.device), cnt)   # (P,)
        offset = torch.arange(rows.numel(), device=X.device) - torch.repeat_interleave(
            torch.cumsum(cnt, 0) - cnt, cnt)
        cols = order[start[lo:hi][rows] + offset]                   # (P,)
        same = score[rows, cols]                                    # (P,)
        is_self = cols == rows + lo
        pos_best = torch.full((hi - lo,), float("inf"), dtype=score.dtype, device=X.device)
        pos_best.scatter_reduce_(0, rows[~is_self], same[~is_self], "amin")
        # Items at or below the nearest positive's score, minus the same-class ones among them.
        at_or_before = _count_true_rows(torch.le(score, pos_best[:, None], out=below[:hi - lo]), groups)
        same_before = torch.zeros(hi - lo, dtype=torch.long, device=X.device)
        same_before.index_add_(0, rows, (same <= pos_best[rows]).long())
        r = at_or_before - same_before
        has_pos = torch.isfinite(pos_best)
        rank[lo:hi] = torch.where(has_pos, r.clamp(max=max_rank), torch.full_like(r, max_rank))
    return rank


def recall_at_k(embeddings, labels, ks, chunk_size=DEFAULT_CHUNK):
    """Fraction of queries with a same-class item among their k nearest neighbours, for each k.

    The query itself is excluded by index; a query whose class has no other item is a miss.
    Returns a list of floats, one per k.
    """
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    rank = nearest_positive_rank(embeddings, labels, max(ks), chunk_size)
    n = rank.numel()
    return [float((rank < k).sum()) / n for k in ks]


def map_at_r(embeddings, labels, chunk_size=DEFAULT_CHUNK):
    """MAP@R and R-Precision (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).

    For a query whose class has R other items, take its R nearest neighbours (itself excluded by
    index): R-Precision is the fraction of them in its class, MAP@R the mean over i <= R of the
    precision at i, counted at the ranks i that hold a same-class item. Queries with R = 0 are left
    out (as pytorch-metric-learning does). Row chunks keep memory at O(chunk x N).
    Returns (map_at_r, r_precision) as floats.
    """
    X, labels = _checked(embeddings, labels)
    n = X.shape[0]
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    R = counts[inverse] - 1                                         # (N,) same-class items per query
    sq = (X * X).sum(1)                                             # (N,)
    ap_sum = rp_sum = 0.0
    for lo in range(0, n, chunk_size):
        hi = min(lo + chunk_size, n)
        r = R[lo:hi]
        k = int(r.max()) if len(r) else 0
        if k == 0:
            continue
        score = sq[None, :] - 2 * X[lo:hi] @ X.T                    # (c, N): distance order per row
        score[torch.arange(hi - lo), torch.arange(lo, hi)] = float("inf")   # never the query itself
        nearest = score.topk(k, dim=1, largest=False).indices       # (c, k), nearest first
        rel = (labels[nearest] == labels[lo:hi, None]) & (torch.arange(k, device=X.device) < r[:, None])
        ranks = torch.arange(1, k + 1, device=X.device, dtype=X.dtype)
        precision = rel.cumsum(1).to(X.dtype) / ranks               # (c, k) precision at each rank
        denom = r.clamp(min=1).to(X.dtype)
        ap_sum += float(((precision * rel).sum(1) / denom)[r > 0].sum())
        rp_sum += float((rel.sum(1) / denom)[r > 0].sum())
    queries = int((R > 0).sum())
    return (ap_sum / queries, rp_sum / queries) if queries else (0.0, 0.0)
