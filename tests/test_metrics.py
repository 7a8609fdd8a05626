"""Recall@K, MAP@R and R-Precision against brute-force restatements: full distance matrix, stable
sort with ties broken against the query (other-class items first), query excluded by index; MAP@R
also against pytorch-metric-learning's AccuracyCalculator (on data without ties)."""
import numpy as np
import pytest
import torch

from embedding_transfer.metrics import nearest_positive_rank, recall_at_k


def brute_recall(X, T, ks):
    X = np.asarray(X, dtype=np.float64)
    T = np.asarray(T)
    n = len(T)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    hits = np.zeros(len(ks))
    for i in range(n):
        others = [j for j in range(n) if j != i]
        # Sort by distance; among equal distances, other-class items come first (pessimistic).
        others.sort(key=lambda j: (D[i, j], T[j] == T[i]))
        for a, k in enumerate(ks):
            if any(T[j] == T[i] for j in others[:k]):
                hits[a] += 1
    return list(hits / n)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk", [1, 7, 256])
def test_matches_brute_force_random(seed, chunk):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(90, 5, generator=g)
    T = torch.randint(0, 12, (90,), generator=g)
    ks = [1, 2, 4, 8, 16]
    assert recall_at_k(X, T, ks, chunk_size=chunk) == pytest.approx(brute_recall(X, T, ks), abs=1e-12)


def test_ties_are_broken_against_the_query():
    # Integer coordinates: every distance is computed exactly, so ties are real ties.
    X = torch.tensor([[0.0], [1.0], [-1.0], [2.0], [0.0], [5.0]])
    T = torch.tensor([0, 0, 1, 1, 2, 2])
    ks = [1, 2, 3, 4, 5]
    got = recall_at_k(X, T, ks)
    assert got == pytest.approx(brute_recall(X, T, ks))
    # Query 0: item 4 (other class) at distance 0 comes first, then items 1 and 2 tie at
    # distance 1 and the other-class item 2 wins the tie: its positive is third.
    assert nearest_positive_rank(X, T, 10)[0] == 2


def test_duplicate_points_with_ties_against_brute_force():
    g = torch.Generator().manual_seed(3)
    X = torch.randint(-2, 3, (60, 3), generator=g).float()
    T = torch.randint(0, 6, (60,), generator=g)
    ks = [1, 2, 4, 8]
    assert recall_at_k(X, T, ks, chunk_size=16) == pytest.approx(brute_recall(X, T, ks))


def test_collapsed_embeddings_score_zero():
    X = torch.ones(20, 4)
    T = torch.arange(20) % 4
    assert recall_at_k(X, T, [1, 4]) == [0.0, 0.0]


def test_singleton_class_is_a_miss():
    X = torch.tensor([[0.0], [0.1], [5.0]])
    T = torch.tensor([0, 0, 1])       # item 2 has no other item of its class
    assert recall_at_k(X, T, [1, 2]) == pytest.approx([2 / 3, 2 / 3])


def test_k_larger_than_n():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(10, 3, generator=g)
    T = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 3, 9])   # 9 is a singleton
    assert recall_at_k(X, T, [100, 1000]) == pytest.approx([0.9, 0.9])


def test_query_excluded_by_index_not_by_position_in_sort():
    # Query 0 and item 1 are identical but of different classes: excluding "the first neighbour"
    # (as a top-k search does) could drop item 1 instead of the query itself.
    X = torch.tensor([[0.0], [0.0], [0.5]])
    T = torch.tensor([0, 1, 0])
    assert nearest_positive_rank(X, T, 5).tolist() == [1, 5, 1]


def test_float64_and_numpy_inputs():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(40, 4, generator=g, dtype=torch.float64)
    T = torch.randint(0, 5, (40,), generator=g)
    ks = [1, 2, 4]
    assert recall_at_k(X.numpy(), T.numpy(), ks) == pytest.approx(brute_recall(X, T, ks))


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        recall_at_k(torch.randn(4, 2), torch.zeros(4), [0])
    with pytest.raises(ValueError, match="len"):
        recall_at_k(torch.randn(4, 2), torch.zeros(5), [1])
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k(torch.tensor([[float("nan")], [0.0]]), torch.zeros(2), [1])


@pytest.mark.parametrize("n", [1, 3, 1020, 1021, 60502])
def test_packed_row_count_equals_plain_sum(n):
    from embedding_transfer.metrics import _count_true_rows, _padded_width
    width, groups = _padded_width(n)
    assert width >= n and width % 4 == 0 and width // 4 // groups <= 255
    g = torch.Generator().manual_seed(n)
    mask = torch.rand(3, width, generator=g) < torch.tensor([[0.0], [0.5], [1.0]])
    assert _count_true_rows(mask, groups).tolist() == mask.sum(1).tolist()


def brute_map_at_r(X, T):
    """MAP@R and R-Precision by the definition, one query at a time (queries with R = 0 skipped);
    ties by index, so only for data without ties (see brute_all)."""
    X, T = np.asarray(X, dtype=np.float64), np.asarray(T)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    aps, rps = [], []
    for i in range(len(T)):
        R = int((T == T[i]).sum()) - 1
        if R == 0:
            continue
        order = [j for j in np.argsort(D[i], kind="stable") if j != i][:R]
        rel = [T[j] == T[i] for j in order]
        aps.append(sum(sum(rel[:r + 1]) / (r + 1) for r in range(R) if rel[r]) / R)
        rps.append(sum(rel) / R)
    return float(np.mean(aps)), float(np.mean(rps))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_at_r_matches_pytorch_metric_learning(seed):
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    from embedding_transfer.metrics import map_at_r
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(120, 5, generator=g, dtype=torch.float64)
    T = torch.randint(0, 10, (120,), generator=g)
    T[0] = 99                                             # a singleton class: no R, left out
    calc = AccuracyCalculator(include=("mean_average_precision_at_r", "r_precision"), k="max_bin_count",
                              knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))
    want = calc.get_accuracy(X, T)
    got = map_at_r(X, T, chunk_size=16)
    assert got[0] == pytest.approx(want["mean_average_precision_at_r"], abs=1e-12)
    assert got[1] == pytest.approx(want["r_precision"], abs=1e-12)
    assert got == pytest.approx(brute_map_at_r(X, T), abs=1e-12)


def test_map_at_r_perfect_and_chunk_independent():
    from embedding_transfer.metrics import map_at_r
    X = torch.tensor([[0.0], [0.1], [0.2], [10.0], [10.1], [20.0]])
    T = torch.tensor([0, 0, 0, 1, 1, 2])
    assert map_at_r(X, T) == (1.0, 1.0)
    g = torch.Generator().manual_seed(7)
    Y, L = torch.randn(70, 3, generator=g), torch.randint(0, 7, (70,), generator=g)
    assert map_at_r(Y, L, chunk_size=1) == pytest.approx(map_at_r(Y, L, chunk_size=256), abs=1e-6)


# ---- retrieval_metrics: Recall@K, MAP@R and R-Precision from one pass ----

def brute_all(X, T, ks):
    """Recall@K, MAP@R and R-Precision by the definitions, one query at a time, with ties broken
    against the query: at equal distance, other-class items rank before same-class ones."""
    X, T = np.asarray(X, dtype=np.float64), np.asarray(T)
    n = len(T)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    hits, aps, rps = np.zeros(len(ks)), [], []
    for i in range(n):
        others = np.array([j for j in range(n) if j != i], dtype=int)
        same = T[others] == T[i]
        ranked = same[np.lexsort((same, D[i, others]))]     # by distance, then other-class first
        for a, k in enumerate(ks):
            hits[a] += ranked[:k].any()
        R = int(same.sum())
        if R:
            rel = ranked[:R]
            aps.append(sum(rel[:r + 1].sum() / (r + 1) for r in range(R) if rel[r]) / R)
            rps.append(rel.sum() / R)
    return list(hits / n), (float(np.mean(aps)) if aps else 0.0), (float(np.mean(rps)) if rps else 0.0)


def make_data(kind, seed, dtype, n=150):
    g = torch.Generator().manual_seed(seed)
    if kind == "continuous":
        X = torch.randn(n, 6, generator=g, dtype=dtype)
        T = torch.randint(0, n // 8, (n,), generator=g)
    elif kind == "duplicates":          # integer points: many exact ties, across and within classes
        X = torch.randint(-1, 2, (n, 3), generator=g).to(dtype)
        T = torch.randint(0, 7, (n,), generator=g)
    elif kind == "singletons":          # about a third of the items alone in their class
        X = torch.randint(-3, 4, (n, 2), generator=g).to(dtype)
        T = torch.randint(0, n, (n,), generator=g)
    elif kind == "large_classes":       # R close to N/2: the top-R search takes whole rows
        X = torch.randn(n, 4, generator=g, dtype=dtype)
        T = torch.randint(0, 2, (n,), generator=g)
    else:
        raise ValueError(kind)
    return X, T


KINDS = ["continuous", "duplicates", "singletons", "large_classes"]


def check_all(X, T, ks, chunk):
    from embedding_transfer.metrics import map_at_r, retrieval_metrics
    recalls, mapr, rp = retrieval_metrics(X, T, ks, chunk_size=chunk)
    # The same numbers as the separate functions, exactly...
    assert recalls == recall_at_k(X, T, ks, chunk_size=chunk)
    assert (mapr, rp) == map_at_r(X, T, chunk_size=chunk)
    # ... and as the definitions.
    want_recalls, want_map, want_rp = brute_all(X, T, ks)
    assert recalls == pytest.approx(want_recalls, abs=1e-12)
    assert mapr == pytest.approx(want_map, abs=1e-12)
    assert rp == pytest.approx(want_rp, abs=1e-12)
    return recalls, mapr, rp


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1, 7, 64, None])      # 150 rows: several chunks, a short last one
# Largest K above the largest R (Recall@K from a row count) or not (from MAP@R's top-R search).
@pytest.mark.parametrize("ks", [[1, 2, 3, 8, 50], [1, 2, 4]], ids=["count", "top"])
def test_retrieval_metrics_match_separate_functions_and_brute_force(kind, dtype, chunk, ks):
    X, T = make_data(kind, 0, dtype)
    check_all(X, T, ks, chunk)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_retrieval_metrics_group_search_and_bookkeeping(monkeypatch, kind, seed):
    """The top-R search through group minima (with ties at the k-th smallest minimum in the integer
    data), and every way of keeping the per-query arrays: the same numbers."""
    from embedding_transfer import metrics
    X, T = make_data(kind, seed, torch.float32, n=260)
    width, _ = metrics._padded_width(len(T))
    k = int(torch.bincount(T).max()) - 1
    g = metrics._group_size(width, k)
    if kind != "large_classes":
        assert 1 < g and -(-width // g) > k                 # the group path is taken
    got = check_all(X, T, [1, 4, 16], 37)
    for name, value in [("_AT_ONCE_ELEMENTS", 0),           # per-query arrays chunk by chunk
                        ("_TAIL_ELEMENTS", 100),            # read back a few queries at a time
                        ("_PAIRS_AT_ONCE", 0)]:             # same-class pairs chunk by chunk
        monkeypatch.setattr(metrics, name, value)
        assert metrics.retrieval_metrics(X, T, [1, 4, 16], chunk_size=37) == got
        assert metrics.recall_at_k(X, T, [1, 4, 16], chunk_size=37) == got[0]


def test_retrieval_metrics_k_larger_than_n_and_below_r():
    # K > N (a hit whenever the query has a positive), and K below and above the largest R, which
    # decides whether Recall@K comes from the top-R search or from a row count.
    X, T = make_data("duplicates", 4, torch.float64, n=40)
    for ks in ([100, 1000], [1, 2], [1, 39, 40, 41]):
        check_all(X, T, ks, 16)
    recalls, _, _ = check_all(X, T, [100], None)
    assert recalls == [float((torch.bincount(T)[T] > 1).float().mean())]


def test_retrieval_metrics_singletons_and_collapse():
    from embedding_transfer.metrics import retrieval_metrics
    X = torch.tensor([[0.0], [0.1], [5.0], [9.0]])
    T = torch.tensor([0, 0, 1, 2])                       # items 2 and 3: no positive, no R
    assert retrieval_metrics(X, T, [1, 2]) == ([0.5, 0.5], 1.0, 1.0)
    assert retrieval_metrics(X[2:], T[2:], [1]) == ([0.0], 0.0, 0.0)   # nobody has a positive
    # Collapsed embeddings: every other-class item ties with every positive and ranks first.
    X, T = torch.ones(20, 4), torch.arange(20) % 4
    assert retrieval_metrics(X, T, [1, 4]) == ([0.0, 0.0], 0.0, 0.0)


def test_map_at_r_ties_are_broken_against_the_query():
    from embedding_transfer.metrics import map_at_r
    # Query 0: item 2 (other class) ties with its positive item 1 at distance 1 and ranks first:
    # R = 1 and its top-1 is item 2, so AP = RP = 0. Query 1: R = 1, item 0 at distance 1 ties
    # with nothing else (item 2 is at 2): AP = RP = 1.
    X = torch.tensor([[0.0], [1.0], [-1.0]])
    T = torch.tensor([0, 0, 1])
    assert map_at_r(X, T) == (0.5, 0.5)
    assert map_at_r(X, T) == pytest.approx(brute_all(X, T, [1])[1:])


def test_retrieval_metrics_rejects_bad_input():
    from embedding_transfer.metrics import retrieval_metrics
    with pytest.raises(ValueError, match="positive"):
        retrieval_metrics(torch.randn(4, 2), torch.zeros(4), [])
    with pytest.raises(ValueError, match="chunk_size"):
        retrieval_metrics(torch.randn(4, 2), torch.zeros(4), [1], chunk_size=0)
