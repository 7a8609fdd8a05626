"""The retrieval picture: the right neighbours, framed by whether they share the query's class."""
import numpy as np
import PIL.Image
import pytest
import torch

from embedding_transfer.reporting.retrieval_grid import GREEN, GREY, RED, draw_grid, nearest_neighbours, pick_queries


def test_nearest_neighbours_excludes_the_query_and_matches_brute_force():
    torch.manual_seed(0)
    X = torch.randn(40, 5)
    queries = [3, 17, 0]
    got = nearest_neighbours(X, queries, 4)
    for q, row in zip(queries, got.tolist()):
        d = [(float((X[q] - X[j]).norm()), j) for j in range(40) if j != q]
        assert row == [j for _, j in sorted(d)[:4]]
    assert nearest_neighbours(X[:3], [0], 10).shape == (1, 2)   # k beyond the data: all others


def test_queries_are_distinct_and_repeatable():
    assert pick_queries(50, 10) == pick_queries(50, 10)
    assert len(set(pick_queries(50, 10))) == 10 and len(pick_queries(5, 10)) == 5


def test_frames_say_right_or_wrong(tmp_path):
    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"{i}.jpg"))
        PIL.Image.new("RGB", (40, 30), (30 * i, 100, 200)).save(paths[-1])
    labels = [0, 0, 1, 1, 0, 2]
    neighbours = torch.tensor([[1, 2, 4], [3, 0, 5]])
    out = draw_grid(paths, labels, [0, 2], neighbours, str(tmp_path / "grid.png"), size=50, border=4, gap=10)
    im = np.asarray(PIL.Image.open(out).convert("RGB"))
    assert im.shape == (2 * 50, 4 * 50 + 10, 3)
    expect = [[GREEN, RED, GREEN], [GREEN, RED, RED]]
    for row in range(2):
        assert tuple(im[row * 50 + 1, 1]) == GREY   # the query's frame
        for col in range(3):
            corner = tuple(im[row * 50 + 1, 50 + 10 + col * 50 + 1])
            assert corner == expect[row][col], (row, col)


def test_unreadable_image_is_named(tmp_path):
    from embedding_transfer.errors import UserError
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError, match="bad.jpg"):
        draw_grid([str(bad)] * 2, [0, 0], [0], torch.tensor([[1]]), str(tmp_path / "g.png"))
