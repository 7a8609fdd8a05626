"""An approximate index for galleries too big for the exact scan: faiss's inverted file (IVF-Flat, L2).

The gallery is split into `nlist` cells by k-means; a query is compared with the items of its
`nprobe` nearest cells only, so a search costs about nprobe / nlist of the exact scan, and misses a
neighbour that lies in another cell: hence recall_against_exact. The items are stored uncompressed
(float32), as the exact scan holds them. faiss-cpu comes from PyPI (requirements.txt).
"""
import math

import numpy as np

from ..errors import UserError

DEFAULT_NPROBE = 32
TRAIN_PER_CELL = 64      # k-means training points per cell (faiss asks for at least 39)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UserError("--index faiss needs the faiss-cpu package: pip install -r requirements.txt.") from None
    return faiss


def default_nlist(n):
    """About 4 sqrt(n) cells (faiss's guideline for IVF), and no more than n / 39 so that k-means has
    enough points per cell."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def build_ivf(gallery, nlist=None, seed=0):
    """An IVF-Flat index holding the (N, d) gallery; trained on at most TRAIN_PER_CELL points per cell."""
    faiss = _faiss()
    X = np.ascontiguousarray(gallery, dtype=np.float32)
    n, d = X.shape
    nlist = int(nlist or default_nlist(n))
    if not 1 <= nlist <= n:
        raise UserError(f"--nlist {nlist}: give between 1 and the gallery's {n} items.")
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_L2)
    rng = np.random.default_rng(seed)
    sample = X[rng.choice(n, min(n, nlist * TRAIN_PER_CELL), replace=False)]
    index.cp.seed = seed
    index.train(sample)
    index.add(X)
    return index


def search_ivf(index, queries, k, nprobe=DEFAULT_NPROBE):
    """((Nq, k) Euclidean distances, (Nq, k) gallery indices), nearest first; -1 where fewer than k
    items lie in the probed cells."""
    index.nprobe = max(1, min(int(nprobe), index.nlist))
    d2, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), int(k))
    return np.sqrt(np.maximum(d2, 0)), idx


def recall_against_exact(approx, exact):
    """Fraction of the exact k nearest neighbours that the approximate search also returned (both
    (Nq, k) index arrays; entries -1, no item, are not neighbours)."""
    hits = sum(len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) for a, e in zip(approx, exact))
    return hits / max(int((exact >= 0).sum()), 1)
