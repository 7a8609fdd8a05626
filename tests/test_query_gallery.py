"""Query/gallery retrieval (code/embedding_transfer/query_gallery.py) against brute force and against
pytorch-metric-learning's AccuracyCalculator given separate query and reference sets."""
import numpy as np
import pytest
import torch

from embedding_transfer.query_gallery import nearest_gallery, query_gallery_metrics

KS = [1, 2, 5, 10]


def brute(Q, qy, G, gy, ks):
    """Recall@K, MAP@R, RP by sorting every row, ties against the query (negatives first)."""
    D = torch.cdist(Q.double(), G.double()).numpy()
    qy, gy = np.asarray(qy), np.asarray(gy)
    hits = {k: 0 for k in ks}
    aps, rps = [], []
    for i in range(len(qy)):
        pos = gy == qy[i]
        if pos.any():
            nearest = D[i][pos].min()
            before = int((D[i][~pos] <= nearest).sum())
            for k in ks:
                hits[k] += before < k
            R = int(pos.sum())
            order = np.lexsort((pos, D[i]))[:R]           # by distance, then negatives before positives
            rel = pos[order]
            aps.append(sum(rel[:r + 1].sum() / (r + 1) for r in range(R) if rel[r]) / R)
            rps.append(rel.sum() / R)
    return [hits[k] / len(qy) for k in ks], float(np.mean(aps)), float(np.mean(rps))


def data(seed, nq=70, ng=90, d=6, classes=12):
    g = torch.Generator().manual_seed(seed)
    Q, G = torch.randn(nq, d, generator=g), torch.randn(ng, d, generator=g)
    qy, gy = torch.randint(0, classes, (nq,), generator=g), torch.randint(0, classes, (ng,), generator=g)
    return Q, qy, G, gy


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_matches_brute_force(seed, chunk):
    Q, qy, G, gy = data(seed)
    qy[0] = 99                                             # no gallery item of its class: a miss
    got = query_gallery_metrics(Q, qy, G, gy, KS, chunk_size=chunk)
    recalls, map_r, rp = brute(Q, qy, G, gy, KS)
    assert got[0] == pytest.approx(recalls, abs=1e-12)
    assert got[1:] == pytest.approx((map_r, rp), abs=1e-6)


def test_ties_are_broken_against_the_query():
    G = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])           # both at distance 1 from the query
    Q = torch.zeros(1, 2)
    recalls, map_r, rp = query_gallery_metrics(Q, [0], G, [0, 1], [1, 2])
    assert recalls == [0.0, 1.0] and map_r == 0.0 and rp == 0.0
    # Collapsed embeddings score 0, not 1.
    recalls, map_r, _ = query_gallery_metrics(torch.zeros(3, 4), [0, 1, 2], torch.zeros(6, 4), [0, 1, 2] * 2, [1])
    assert recalls == [0.0] and map_r == 0.0


def test_the_gallery_only_is_searched():
    # Two queries of one class side by side; their only gallery item is far: in self-retrieval each
    # would find the other first, here neither can.
    Q = torch.tensor([[0.0], [0.1]])
    G = torch.tensor([[5.0], [0.05]])
    recalls, _, _ = query_gallery_metrics(Q, [0, 0], G, [0, 1], [1, 2])
    assert recalls == [0.0, 1.0]


class WithRecallAtK:
    """pytorch-metric-learning's AccuracyCalculator plus Recall@K from its own k-NN labels (it has
    precision_at_1 = R@1, and no Recall@K beyond)."""

    def __new__(cls, ks, k):
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
        from pytorch_metric_learning.utils.inference import CustomKNN

        def recall_at(K):
            def calculate(self, knn_labels, query_labels, **kwargs):
                return float((knn_labels[:, :K] == query_labels[:, None]).any(1).float().mean())
            return calculate

        extra = {f"calculate_recall_at_{K}": recall_at(K) for K in ks}
        extra["requires_knn"] = lambda self: AccuracyCalculator.requires_knn(self) + [f"recall_at_{K}" for K in ks]
        calc_cls = type("Calc", (AccuracyCalculator,), extra)
        include = ("precision_at_1", "mean_average_precision_at_r", "r_precision") + tuple(f"recall_at_{K}" for K in ks)
        return calc_cls(include=include, k=k, knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pytorch_metric_learning_with_separate_query_and_reference(seed):
    Q, qy, G, gy = data(seed, nq=60, ng=80, classes=8)
    Q, G = Q.double(), G.double()
    gy[:8] = torch.arange(8)                               # every query has a positive (pml drops lone ones)
    calc = WithRecallAtK(KS, k=len(G))
    want = calc.get_accuracy(Q, qy, G, gy, ref_includes_query=False)
    recalls, map_r, rp = query_gallery_metrics(Q, qy, G, gy, KS, chunk_size=16)
    assert recalls[0] == pytest.approx(want["precision_at_1"], abs=1e-6)
    assert recalls == pytest.approx([want[f"recall_at_{K}"] for K in KS], abs=1e-6)
    assert map_r == pytest.approx(want["mean_average_precision_at_r"], abs=1e-6)
    assert rp == pytest.approx(want["r_precision"], abs=1e-6)


@pytest.mark.parametrize("chunk", [None, 3])
def test_nearest_gallery_is_exact(chunk):
    Q, _, G, _ = data(3)
    dist, index = nearest_gallery(Q, G, 5, chunk_size=chunk)
    D = torch.cdist(Q.double(), G.double())
    want = D.argsort(1)[:, :5]
    assert torch.equal(index, want)
    assert torch.allclose(dist.double(), D.gather(1, want), atol=1e-4)
    assert nearest_gallery(Q, G[:3], 10)[1].shape == (len(Q), 3)   # k capped at the gallery's size


def test_rejects_mismatched_sizes_and_bad_input():
    with pytest.raises(ValueError, match="queries are 4-d but the gallery is 3-d"):
        query_gallery_metrics(torch.zeros(2, 4), [0, 1], torch.zeros(2, 3), [0, 1], [1])
    with pytest.raises(ValueError, match="queries are 4-d but the gallery is 3-d"):
        nearest_gallery(torch.zeros(2, 4), torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="NaN"):
        query_gallery_metrics(torch.full((2, 3), float("nan")), [0, 1], torch.zeros(2, 3), [0, 1], [1])
    with pytest.raises(ValueError, match="empty"):
        nearest_gallery(torch.zeros(2, 3), torch.zeros(0, 3), 1)
