"""Recall@K against a brute-force restatement: full distance matrix, stable sort with ties broken
against the query (other-class items first), query excluded by index."""
import numpy as np
import pytest
import torch

from metrics import nearest_positive_rank, recall_at_k


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
    from metrics import _count_true_rows, _padded_width
    width, groups = _padded_width(n)
    assert width >= n and width % 4 == 0 and width // 4 // groups <= 255
    g = torch.Generator().manual_seed(n)
    mask = torch.rand(3, width, generator=g) < torch.tensor([[0.0], [0.5], [1.0]])
    assert _count_true_rows(mask, groups).tolist() == mask.sum(1).tolist()


def brute_map_at_r(X, T):
    """MAP@R and R-Precision by the definition, one query at a time (queries with R = 0 skipped)."""
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

    from metrics import map_at_r
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
    from metrics import map_at_r
    X = torch.tensor([[0.0], [0.1], [0.2], [10.0], [10.1], [20.0]])
    T = torch.tensor([0, 0, 0, 1, 1, 2])
    assert map_at_r(X, T) == (1.0, 1.0)
    g = torch.Generator().manual_seed(7)
    Y, L = torch.randn(70, 3, generator=g), torch.randint(0, 7, (70,), generator=g)
    assert map_at_r(Y, L, chunk_size=1) == pytest.approx(map_at_r(Y, L, chunk_size=256), abs=1e-6)
