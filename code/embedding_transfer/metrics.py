"""Retrieval metrics on embeddings: Recall@K, MAP@R and R-Precision with exact Euclidean neighbours.

All three come from one pass over the rows of the distance matrix, in row chunks of

    score[i, j] = |x_j|^2 - 2 x_i.x_j      (= |x_i - x_j|^2 - |x_i|^2, same order along a row)

computed by one matrix product on augmented vectors ([-2 x_i, 1] . [x_j, |x_j|^2]). In each chunk
the few same-class columns of every row are gathered (the scores of the query's positives) and then
overwritten with +inf, so that the block holds only the other-class items. Then:

  Recall@K only needs the rank of the nearest positive: the number of other-class items at or below
  its score, one comparison and one row count over the block. The query is a hit at K when that
  number is below K.
  MAP@R and R-Precision (R = number of positives of the query) only need, for each positive, the
  number of other-class items at or below its score, and only while that number is below R: so the
  R smallest other-class scores of the row suffice. They are found without a top-k over the whole
  row: the row is split into column groups, a group-wise minimum (one cheap pass) and a top-R over
  the group minima pick R groups that together hold the R smallest other-class scores, and a top-R
  over those few groups' columns gives them. The same values settle the nearest positive's rank
  whenever it is below R, so when every K is at most R (CUB, Cars: K <= 8, R ~ 60) the Recall@K
  count is skipped.

Memory stays O(chunk x N); time is dominated by the product itself (benchmarks/bench_recall.py).

Ties are broken against the query: an item of another class at exactly a positive's distance counts
as ranked before it (for Recall@K and for MAP@R / R-Precision alike), and the query itself is
excluded by index, never by position. Collapsed (all-equal) embeddings thus score 0, not 1.
"""
import math

import torch

# Rows per chunk: None picks them from N (see `_chunk_rows`). Chunks are large because every chunk
# costs a few passes over its block and a fixed number of operations: with large chunks the product
# runs as fast as one full product, and the other passes stay a small fraction of it.
DEFAULT_CHUNK = None
# Automatic chunks hold about this many scores (512 MB of float32), with 256 to 4096 rows.
_CHUNK_ELEMENTS = 2 ** 27
# Bounds of the number of columns a group of the top-R search (see `_group_size`).
_GROUP_MIN, _GROUP_MAX = 2, 32
# Same-class pairs (sum of squared class sizes) up to which their indices are computed once.
_PAIRS_AT_ONCE = 2 ** 22
# N x (largest class size) up to which the per-query arrays (the scores of each query's same-class
# items, its smallest other-class scores) hold all queries, and are read after the scan in one go;
# beyond, they hold a chunk's queries and are read chunk by chunk.
_AT_ONCE_ELEMENTS = 2 ** 24
# Rows of the per-query arrays read at a time after the scan: about this many elements.
_TAIL_ELEMENTS = 2 ** 22


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
    if X.numel() and not torch.isfinite(torch.stack(torch.aminmax(X))).all():   # NaN propagates
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
    return v.view(torch.uint8).view(c, 4 * groups).sum(1)         # the 4 lanes of every group word


def _chunk_rows(n, width, largest_class, chunk_size):
    """Rows per chunk: chunk_size, or (None) about _CHUNK_ELEMENTS / width rows (256 to 4096, fewer
    when a class is so large that the chunk x (class size) arrays would be as large), balanced so
    that the last chunk is not a sliver."""
    if chunk_size is None:
        chunk_size = min(4096, max(256, _CHUNK_ELEMENTS // max(width, 1)),
                         max(1, _CHUNK_ELEMENTS // (8 * max(largest_class, 1))))
        chunk_size = max(1, -(-n // max(1, -(-n // chunk_size))))
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    return chunk_size


def _group_size(n, k):
    """Columns per group for the top-R search, a power of two: about sqrt(n / k), which balances the
    top-R over the n/g group minima against the one over the k*g candidate columns, within
    [_GROUP_MIN, _GROUP_MAX] (beyond 32, the group minimum and the scattered gather of the
    candidates get slower)."""
    if k <= 0:
        return _GROUP_MIN
    return int(min(_GROUP_MAX, max(_GROUP_MIN, 2 ** round(math.log2(math.sqrt(n / k))))))


def _chunk_stats(counts, chunk_size):
    """Per row chunk: (sum of class counts, max class count), as Python ints (one device sync)."""
    n = counts.numel()
    padded = torch.zeros(-(-n // chunk_size) * chunk_size, dtype=counts.dtype, device=counts.device)
    padded[:n] = counts
    padded = padded.view(-1, chunk_size)
    return list(zip(padded.sum(1).tolist(), padded.amax(1).tolist()))


def _same_class_pairs(order, start, count, lo, hi):
    """All same-class (query, item) pairs of queries lo..hi-1, the query itself included, query by
    query: (query - lo, place of the item in its class, item)."""
    cnt = count[lo:hi]
    p = int(cnt.sum())
    dev = cnt.device
    rows = torch.repeat_interleave(torch.arange(hi - lo, device=dev), cnt, output_size=p)
    offset = torch.arange(p, device=dev) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt,
                                                                    output_size=p)
    return rows, offset, order[start[lo:hi][rows] + offset]


def _scan(embeddings, labels, max_rank, with_map, chunk_size):
    """The one pass behind all the metrics.

    max_rank: None, or the cap of the nearest-positive rank (then returned as (N,) int64).
    with_map: also return (sum of AP@R, sum of R-Precision, number of queries with R > 0).
    The work on each chunk x N block: the product, then one row count (Recall@K, skipped when
    MAP@R's top-R already settles every rank below max_rank) and one group minimum (MAP@R), each a
    single pass, and a top-k over a few columns; the rest is on arrays of queries x (class size),
    mostly once for all queries after the scan (few operations: each one that is spread over the
    CPU threads waits for all of them, long when other processes share the CPU).
    """
    X, labels = _checked(embeddings, labels)
    n, d = X.shape
    dev, dt = X.device, X.dtype
    inf = float("inf")
    order, start, count = _class_members(labels)
    place = torch.empty_like(order)                                 # of each item within its class
    place[order] = torch.arange(n, device=dev)
    place -= start
    R = count - 1                                                   # (N,) positives of each query
    k_all = int(R.max()) if n else 0
    M = k_all + 1                                                   # the largest class
    width, groups = _padded_width(n)                                # the row-count mask's width
    g = _group_size(width, k_all)
    # Score rows: g slices of G columns, and a multiple of 16 columns (64-byte aligned rows: the
    # product writes them a third faster than unaligned ones).
    npad = -(-width // max(g, 16)) * max(g, 16)
    G = npad // g
    chunk = _chunk_rows(n, width, M, chunk_size)
    keys = torch.zeros(npad, d + 1, dtype=dt, device=dev)          # [x_j, |x_j|^2]
    keys[:n, :d] = X
    keys[:n, d] = (X * X).sum(1)
    # Padding columns score far above any real score: never counted, never among the k smallest
    # that matter (they only fill `other` where a row has fewer than k other-class items).
    keys[n:, d] = torch.finfo(dt).max / 4
    queries = torch.empty(n, d + 1, dtype=dt, device=dev)          # [-2 x_i, 1]
    torch.mul(X, -2, out=queries[:, :d])
    queries[:, d] = 1
    block = torch.empty(min(chunk, n), npad, dtype=dt, device=dev)

    # Per query: the scores of its same-class items (+inf for itself and past its class), and with
    # MAP@R its smallest other-class scores; for all queries at once, or for a chunk's.
    at_once = n * M <= _AT_ONCE_ELEMENTS
    span = n if at_once else block.shape[0]
    pos = torch.full((span, M), inf, dtype=dt, device=dev)
    if with_map:
        other = torch.full((span, max(k_all, 1)), inf, dtype=dt, device=dev)
        ap = torch.zeros(n, dtype=torch.float64, device=dev)      # sum over the hits of precision
        hits = torch.zeros(n, dtype=torch.float64, device=dev)    # positives among the top R
    if max_rank is not None:
        rank = torch.empty(n, dtype=torch.long, device=dev)
        from_top = torch.zeros(n, dtype=torch.bool, device=dev)   # rank given by the top-k
        below = None
    # The same-class pairs (query, item), the query itself included, query by query: indices into
    # the chunk's block and into pos; for all queries at once when they are few.
    stats = _chunk_stats(count, chunk)
    pairs_at_once = sum(p for p, _ in stats) <= _PAIRS_AT_ONCE
    if pairs_at_once:
        rows, offset, cols = _same_class_pairs(order, start, count, 0, n)
        all_block_idx = cols + (rows % chunk) * npad
        all_pos_idx = offset + (rows if at_once else rows % chunk) * M
        del rows, offset, cols
    p_lo = 0

    def tail(lo, hi, r0):
        """MAP@R, RP and the top-k ranks of queries lo..hi-1, rows r0... of pos and other."""
        ps = pos[r0:r0 + hi - lo].sort(1).values                   # positives' scores, nearest first
        # at[:, i-1]: other-class items at or below positive i's score, exact while below the
        # chunk's k. Positive i then stands at rank at + i, and counts for MAP@R and RP when that
        # rank is <= R (so i <= R too: the +inf padding of pos never counts).
        at = torch.searchsorted(other[r0:r0 + hi - lo], ps, right=True)      # (rows, M)
        if max_rank is not None:
            # Exact below k; else >= k >= max_rank, a miss at every K.
            rank[lo:hi] = torch.where(from_top[lo:hi], at[:, 0], rank[lo:hi])
        at += torch.arange(1, M + 1, device=dev)
        hit = at <= R[lo:hi, None]
        precision = torch.arange(1, M + 1, device=dev, dtype=torch.float64) / at
        ap[lo:hi] = torch.where(hit, precision, 0.0).sum(1)
        hits[lo:hi] = hit.sum(1, dtype=torch.float64)

    for lo, (pairs, m) in zip(range(0, n, chunk), stats):
        hi = min(lo + chunk, n)
        c = hi - lo
        r0 = lo if at_once else 0                                   # the chunk's first row in pos
        score = torch.matmul(queries[lo:hi], keys.T, out=block[:c])  # (c, Npad)
        if pairs_at_once:
            block_idx = all_block_idx[p_lo:p_lo + pairs]
            pos_idx = all_pos_idx[p_lo:p_lo + pairs]
            p_lo += pairs
        else:
            rows, offset, cols = _same_class_pairs(order, start, count, lo, hi)
            block_idx = cols + rows * npad
            pos_idx = offset + (rows + r0) * M
        if not at_once:
            pos[:c] = inf
        # Read the same-class scores into pos, then mask them in the block, the query's own
        # included: the block then holds other-class items only.
        pos.view(-1)[pos_idx] = score.view(-1)[block_idx]
        pos[torch.arange(r0, r0 + c, device=dev), place[lo:hi]] = inf   # the query is no positive
        score.view(-1)[block_idx] = inf
        k = m - 1                                                   # the chunk's largest R
        # With MAP@R, the top-k below gives every rank under k exactly: when k >= max_rank, that is
        # all Recall@K needs, and the row count is skipped.
        if max_rank is not None and with_map and k >= max_rank:
            from_top[lo:hi] = True
        elif max_rank is not None:
            # Other-class items at or below the nearest positive's score.
            nearest = pos[r0:r0 + c, :m].amin(1)
            if below is None:
                below = torch.empty(block.shape[0], width, dtype=torch.bool, device=dev)
            rank[lo:hi] = _count_true_rows(torch.le(score[:, :width], nearest[:, None], out=below[:c]),
                                           groups)
        if not with_map:
            continue
        if not at_once:
            other[:c] = inf
        if k > 0:
            if G > k:
                # The k groups of smallest minima hold at least k other-class items at or below the
                # k-th smallest minimum, and every item below it: so they hold the k smallest
                # scores (ties at that minimum are equal values, which is all that is used). Group
                # q is the columns q, q + G, q + 2G, ...: its minimum is an elementwise minimum.
                grouped = score.view(c, g, G)
                pick = grouped.amin(1).topk(k, 1, largest=False, sorted=False).indices   # (c, k)
                candidates = grouped.gather(2, pick[:, None, :].expand(c, g, k)).view(c, g * k)
            else:
                candidates = score
            other[r0:r0 + c, :k] = candidates.topk(k, 1, largest=False).values   # sorted
        if not at_once:
            tail(lo, hi, 0)
    if with_map and at_once:
        step = max(1, _TAIL_ELEMENTS // M)
        for lo in range(0, n, step):
            tail(lo, min(lo + step, n), lo)

    out = {}
    if max_rank is not None:
        # Queries without a positive are a miss at every K.
        out["rank"] = torch.where(R > 0, rank.clamp_(max=max_rank), max_rank)
    if with_map:
        r_inv = 1 / R.clamp(min=1).to(torch.float64)              # queries with R = 0 have no hit
        out["map"] = (float(ap.dot(r_inv)), float(hits.dot(r_inv)), int((R > 0).sum()))
    return out


def _ks(ks):
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


def _recalls(rank, ks):
    n = rank.numel()
    return [float((rank < k).sum()) / n for k in ks]


def _map(sums):
    ap_sum, rp_sum, queries = sums
    return (ap_sum / queries, rp_sum / queries) if queries else (0.0, 0.0)


def nearest_positive_rank(embeddings, labels, max_rank, chunk_size=DEFAULT_CHUNK):
    """Number of other-class items at or before each query's nearest positive, capped at max_rank.

    Queries without any positive get max_rank (a miss at every K <= max_rank).
    embeddings: (N, d) float, labels: (N,) int -> (N,) int64.
    """
    return _scan(embeddings, labels, int(max_rank), False, chunk_size)["rank"]


def recall_at_k(embeddings, labels, ks, chunk_size=DEFAULT_CHUNK):
    """Fraction of queries with a same-class item among their k nearest neighbours, for each k.

    The query itself is excluded by index; a query whose class has no other item is a miss.
    Returns a list of floats, one per k.
    """
    ks = _ks(ks)
    return _recalls(nearest_positive_rank(embeddings, labels, max(ks), chunk_size), ks)


def map_at_r(embeddings, labels, chunk_size=DEFAULT_CHUNK):
    """MAP@R and R-Precision (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).

    For a query whose class has R other items, take its R nearest neighbours (itself excluded by
    index): R-Precision is the fraction of them in its class, MAP@R the mean over i <= R of the
    precision at i, counted at the ranks i that hold a same-class item. Ties are broken against the
    query, as for Recall@K: an other-class item at exactly a positive's distance ranks before it.
    Queries with R = 0 are left out (as pytorch-metric-learning does). Row chunks keep memory at
    O(chunk x N).
    Returns (map_at_r, r_precision) as floats.
    """
    return _map(_scan(embeddings, labels, None, True, chunk_size)["map"])


def retrieval_metrics(embeddings, labels, ks, chunk_size=DEFAULT_CHUNK):
    """Recall@K for each k, MAP@R and R-Precision from one pass over the distance matrix.

    Same values as (recall_at_k(embeddings, labels, ks), *map_at_r(embeddings, labels)), for about
    the cost of one of them. embeddings: (N, d) float, labels: (N,), ks: positive ints.
    Returns (recalls, map_at_r, r_precision): a list of floats (one per k), a float, a float.
    """
    ks = _ks(ks)
    out = _scan(embeddings, labels, max(ks), True, chunk_size)
    return (_recalls(out["rank"], ks), *_map(out["map"]))
