"""Queries searched in a separate gallery (In-Shop's protocol, and scripts/retrieve.py): Recall@K,
MAP@R and R-Precision, and the exact k nearest gallery items.

The same blocked scan as metrics.py: per chunk of queries one matrix product on augmented vectors,

    score[i, j] = |g_j|^2 - 2 q_i.g_j      (= |q_i - g_j|^2 - |q_i|^2, same order along a row)

so memory stays O(chunk x gallery). The conventions are metrics.py's: exact Euclidean distances on
the embeddings as given; ties are broken against the query (a gallery item of another class at
exactly the distance of the nearest same-class item ranks before it); a query without any
same-class gallery item is a miss at every K and is left out of MAP@R and R-Precision (as
pytorch-metric-learning leaves out such "lone" queries). Nothing is excluded by index: query and
gallery are different images.
"""
import torch

# The helpers of the self-retrieval scan (input checks, chunk sizes, K lists, averaging) are shared,
# so that both modes accept and refuse the same inputs.
from .metrics import DEFAULT_CHUNK, _checked, _chunk_rows, _ks, _map, _recalls


def _augmented(queries, gallery):
    """[-2 q, 1] (Nq, d+1) and [g, |g|^2] (Ng, d+1): one product gives the scores."""
    q = torch.cat([-2 * queries, torch.ones_like(queries[:, :1])], 1)
    g = torch.cat([gallery, (gallery * gallery).sum(1, keepdim=True)], 1)
    return q, g


def _checked_pair(queries, q_labels, gallery, g_labels):
    Q, q_labels = _checked(queries, q_labels)
    G, g_labels = _checked(gallery, g_labels)
    if Q.shape[1] != G.shape[1]:
        raise ValueError(f"queries are {Q.shape[1]}-d but the gallery is {G.shape[1]}-d: both must come "
                         "from the same network")
    if G.shape[0] == 0:
        raise ValueError("the gallery is empty")
    dt = torch.promote_types(Q.dtype, G.dtype)
    return Q.to(dt), q_labels.to(G.device), G.to(Q.device, dt), g_labels.to(Q.device)


def _positives(q_labels, g_labels):
    """(Nq, M) gallery indices of each query's same-class items, padded with -1, and (Nq,) their
    counts R; M = the largest R (at least 1)."""
    order = torch.argsort(g_labels, stable=True)
    classes, counts = torch.unique(g_labels, return_counts=True)          # sorted classes
    starts = torch.cumsum(counts, 0) - counts
    where = torch.searchsorted(classes, q_labels).clamp(max=len(classes) - 1)
    found = classes[where] == q_labels
    R = torch.where(found, counts[where], 0)
    M = max(int(R.max()) if len(R) else 0, 1)
    offset = torch.arange(M, device=g_labels.device)
    idx = order[(starts[where][:, None] + offset).clamp(max=len(order) - 1)]
    return torch.where(offset < R[:, None], idx, -1), R


def _scan(queries, q_labels, gallery, g_labels, max_rank, chunk_size):
    """(nearest-positive rank capped at max_rank, (sum AP@R, sum RP, queries with R > 0))."""
    Q, q_labels, G, g_labels = _checked_pair(queries, q_labels, gallery, g_labels)
    nq, ng = Q.shape[0], G.shape[0]
    pos_idx, R = _positives(q_labels, g_labels)
    M = pos_idx.shape[1]
    qa, ga = _augmented(Q, G)
    chunk = _chunk_rows(nq, ng, M, chunk_size)
    inf = float("inf")
    rank = torch.empty(nq, dtype=torch.long, device=Q.device)
    ap = torch.zeros(nq, dtype=torch.float64, device=Q.device)
    hits = torch.zeros(nq, dtype=torch.float64, device=Q.device)
    steps = torch.arange(1, M + 1, device=Q.device)
    for lo in range(0, nq, chunk):
        hi = min(lo + chunk, nq)
        score = qa[lo:hi] @ ga.T                                              # (c, Ng)
        idx, r = pos_idx[lo:hi], R[lo:hi]
        valid = idx >= 0
        rows, cols = torch.nonzero(valid, as_tuple=True)[0], idx[valid]
        pos = torch.full(idx.shape, inf, dtype=score.dtype, device=score.device)
        pos[valid] = score[rows, cols]                                        # same-class scores
        score[rows, cols] = inf                                               # negatives only now
        nearest = pos.amin(1)
        rank[lo:hi] = (score <= nearest[:, None]).sum(1)
        k = int(r.max())
        if k == 0:
            continue
        # The k smallest negative scores settle every positive's rank below k (metrics.py's tail).
        other = score.topk(min(k, ng), 1, largest=False).values
        at = torch.searchsorted(other, pos.sort(1).values, right=True) + steps
        hit = at <= r[:, None]
        ap[lo:hi] = torch.where(hit, steps.to(torch.float64) / at, 0.0).sum(1)
        hits[lo:hi] = hit.sum(1, dtype=torch.float64)
    rank = torch.where(R > 0, rank.clamp(max=max_rank), max_rank)
    r_inv = 1 / R.clamp(min=1).to(torch.float64)
    return rank, (float(ap.dot(r_inv)), float(hits.dot(r_inv)), int((R > 0).sum()))


def query_gallery_metrics(queries, query_labels, gallery, gallery_labels, ks, chunk_size=DEFAULT_CHUNK):
    """Recall@K for each k (fraction of queries with a same-class gallery item among their k nearest
    gallery items), MAP@R and R-Precision (R = the query's same-class gallery items).
    Returns (recalls, map_at_r, r_precision): a list of floats (one per k), a float, a float."""
    ks = _ks(ks)
    rank, sums = _scan(queries, query_labels, gallery, gallery_labels, max(ks), chunk_size)
    return (_recalls(rank, ks), *_map(sums))


def nearest_gallery(queries, gallery, k, chunk_size=DEFAULT_CHUNK):
    """The k nearest gallery items of each query, exact: ((Nq, k) Euclidean distances, (Nq, k) gallery
    indices), nearest first; k is capped at the gallery's size."""
    Q, G = torch.as_tensor(queries), torch.as_tensor(gallery)
    no_labels = [torch.zeros(x.shape[0] if x.dim() else 1, dtype=torch.long) for x in (Q, G)]
    Q, _, G, _ = _checked_pair(Q, no_labels[0], G, no_labels[1])
    k = min(int(k), G.shape[0])
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    qa, ga = _augmented(Q, G)
    q_norm = (Q * Q).sum(1, keepdim=True)
    dist, index = [], []
    chunk = _chunk_rows(Q.shape[0], G.shape[0], 1, chunk_size)
    for lo in range(0, Q.shape[0], chunk):
        hi = min(lo + chunk, Q.shape[0])
        top = (qa[lo:hi] @ ga.T).topk(k, 1, largest=False)                    # sorted, nearest first
        dist.append((top.values + q_norm[lo:hi]).clamp(min=0).sqrt())
        index.append(top.indices)
    return torch.cat(dist), torch.cat(index)
