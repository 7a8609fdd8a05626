"""--dataset Inshop end to end: train_source.py, train_target.py and evaluate.py on a generated tree in
Proxy-Anchor's layout, each query searched in the gallery only, scored at Proxy-Anchor's K; and
evaluate.py's query/gallery mode for any two sets of saved embeddings."""
import importlib.util
import os

import numpy as np
import pytest
import torch

from embedding_transfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("evaluate_cli", os.path.join(ROOT, "evaluate.py"))
evaluate_cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evaluate_cli)

KEYS = ["R@1", "R@10", "R@20", "R@30", "R@40", "R@50", "MAP@R", "RP"]


def evaluate(argv):
    return evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(argv))


def brute_recall(X, T, is_query, k):
    q = torch.as_tensor(is_query)
    D = torch.cdist(X[q].double(), X[~q].double())
    gT = T[~q]
    hits = [(D[i][gT != T[q][i]] <= D[i][gT == T[q][i]].min()).sum() < k for i in range(int(q.sum()))]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def inshop_source(tiny_inshop, tiny_flags, tmp_path_factory):
    """A 16-d resnet_narrow source trained one epoch with Proxy-Anchor on the tiny In-Shop tree."""
    from embedding_transfer import train_source
    out = tmp_path_factory.mktemp("inshop_source")
    args = train_source.get_args_parser().parse_args(
        tiny_flags + ["--dataset", "Inshop", "--DATA_DIR", str(tiny_inshop), "--embedding-size", "16",
                      "--batch-size", "4", "--l2-norm", "1", "--save", "1", "--LOG_DIR", str(out / "logs"),
                      "--save-dir", str(out)])
    _, recalls = train_source.main(args)
    return str(out / "resnet_narrow" / "Inshop_resnet_narrow_16dim_Proxy_Anchor_ckpt.pth"), recalls


@pytest.mark.e2e
def test_source_is_scored_at_proxy_anchors_k_and_evaluate_reproduces_it(tiny_inshop, inshop_source, tmp_path):
    ckpt, recalls = inshop_source
    assert list(recalls) == KEYS
    with open(ckpt.replace("_ckpt.pth", "_results.txt")) as f:
        lines = f.read().splitlines()[1:]
    assert lines == [f"Best Recall@{k[2:]}: {100 * recalls[k]:.4f}" for k in KEYS[:6]]
    emb = tmp_path / "emb.npz"
    got = evaluate(["--dataset", "Inshop", "--DATA_DIR", str(tiny_inshop), "--crop-size", "32", "--workers", "0",
                    "--ckpt", ckpt, "--save-embeddings", str(emb)])
    assert got == pytest.approx(recalls, abs=1e-12)
    z = np.load(emb)
    is_query = z["is_query"]
    assert is_query.sum() == 5 and (~is_query).sum() == 5          # the tree's query and gallery images
    X, T = torch.from_numpy(z["embeddings"]), torch.from_numpy(z["labels"])
    for k in (1, 10):
        assert got[f"R@{k}"] == pytest.approx(brute_recall(X, T, is_query, k), abs=1e-12)
    # The same file scored in the general query/gallery mode (alone: it knows its split).
    assert evaluate(["--query-embeddings", str(emb)]) == pytest.approx(got, abs=1e-12)


def test_general_query_gallery_mode_on_two_files(tmp_path):
    from embedding_transfer.embeddings_file import save_embeddings
    from embedding_transfer.query_gallery import query_gallery_metrics
    g = torch.Generator().manual_seed(0)
    Q, G = torch.randn(30, 8, generator=g), torch.randn(50, 8, generator=g)
    qy, gy = torch.randint(0, 5, (30,), generator=g), torch.randint(0, 5, (50,), generator=g)
    save_embeddings(str(tmp_path / "q.npz"), Q.numpy(), qy.numpy())
    save_embeddings(str(tmp_path / "g.npz"), G.numpy(), gy.numpy())
    got = evaluate(["--query-embeddings", str(tmp_path / "q.npz"), "--gallery-embeddings", str(tmp_path / "g.npz"),
                    "--recall-ks", "1,3"])
    recalls, map_r, rp = query_gallery_metrics(Q, qy, G, gy, [1, 3])
    assert got == {"R@1": recalls[0], "R@3": recalls[1], "MAP@R": map_r, "RP": rp}


def test_query_gallery_mode_errors(tmp_path):
    from embedding_transfer.embeddings_file import save_embeddings
    save_embeddings(str(tmp_path / "q.npz"), np.zeros((3, 8)), [0, 1, 2])
    save_embeddings(str(tmp_path / "g.npz"), np.zeros((4, 16)), [0, 1, 2, 3])
    save_embeddings(str(tmp_path / "nolabels.npz"), np.zeros((4, 8)))
    q, g = str(tmp_path / "q.npz"), str(tmp_path / "g.npz")
    with pytest.raises(UserError, match="8-d and the gallery embeddings 16-d"):
        evaluate(["--query-embeddings", q, "--gallery-embeddings", g])
    with pytest.raises(UserError, match="no 'labels'"):
        evaluate(["--query-embeddings", q, "--gallery-embeddings", str(tmp_path / "nolabels.npz")])
    with pytest.raises(UserError, match="not from a query/gallery split"):
        evaluate(["--query-embeddings", q])
    with pytest.raises(UserError, match="does not exist"):
        evaluate(["--query-embeddings", q, "--gallery-embeddings", str(tmp_path / "none.npz")])
    with pytest.raises(UserError, match="--recall-ks"):
        evaluate(["--query-embeddings", q, "--gallery-embeddings", q, "--recall-ks", "1,x"])
    with pytest.raises(SystemExit):   # a network or saved embeddings, not both
        evaluate_cli.get_args_parser().parse_args(["--ckpt", "a.pth", "--query-embeddings", q])


def test_target_trains_on_inshop_from_the_source(tiny_inshop, inshop_source, tiny_flags, tmp_path):
    from embedding_transfer import train_target
    ckpt, _ = inshop_source
    argv = tiny_flags + ["--dataset", "Inshop", "--DATA_DIR", str(tiny_inshop), "--LOG_DIR", str(tmp_path),
                         "--save", "1", "--embedding-size", "8", "--batch-size", "4", "--IPC", "2", "--loss", "Relaxed_Contra",
                         "--source-ckpt", ckpt, "--source-model", "resnet_narrow", "--source-embedding-size", "16"]
    _, recalls = train_target.main(train_target.get_args_parser().parse_args(argv))
    assert list(recalls) == KEYS
    best = next((tmp_path / "logs_Inshop").iterdir()) / "Inshop_resnet_narrow_best.pth"
    got = evaluate(["--dataset", "Inshop", "--DATA_DIR", str(tiny_inshop), "--crop-size", "32", "--workers", "0",
                    "--ckpt", str(best), "--visualize", "2", "--visualize-k", "3",
                    "--visualize-out", str(tmp_path / "grid.png")])
    assert got == pytest.approx(recalls, abs=1e-12)
    assert (tmp_path / "grid.png").stat().st_size > 0
