"""scripts/retrieve.py: a gallery folder searched with a checkpoint or an exported model, the CSV and
the picture, saved gallery embeddings, the faiss index against the exact search, and one clear
error each for unreadable gallery images, mismatched embedding sizes and a model/checkpoint mismatch."""
import csv
import importlib.util
import os

import numpy as np
import PIL.Image
import pytest
import torch

from embedding_transfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_cli", os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


retrieve_cli, export_cli = load("retrieve"), load("export")
# Every test here runs the entry point on real image files (seconds each).
pytestmark = pytest.mark.e2e


def retrieve(argv):
    return retrieve_cli.main(retrieve_cli.get_args_parser().parse_args(argv))


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A class-folder gallery (5 classes x 4 noisy grey squares of one brightness each) and a
    16-d resnet_tiny checkpoint, trained by nothing: its embeddings still order by brightness."""
    from embedding_transfer.models import build_model, weights_record
    base = tmp_path_factory.mktemp("retrieve")
    rng = np.random.default_rng(0)
    for c in range(5):
        (base / "gallery" / f"class{c}").mkdir(parents=True)
        for j in range(4):
            a = np.clip(rng.normal(40 + c * 45, 12, (40, 40, 3)), 0, 255).astype(np.uint8)
            PIL.Image.fromarray(a).save(base / "gallery" / f"class{c}" / f"{j}.png")
    torch.manual_seed(0)
    torch.save(weights_record(build_model("resnet_tiny", 16, l2_norm=True)), base / "m.pth")
    (base / "args.json").write_text('{"crop_size": 32}')          # as a run folder records it
    return base


def brute_top(world, ckpt_runner, query, k, exclude_self=True):
    from embedding_transfer.deploy.images import embed_files, list_images
    gallery = list_images(str(world / "gallery"))
    G = embed_files(ckpt_runner, gallery)
    q = embed_files(ckpt_runner, [query])[0]
    d = np.linalg.norm(G - q, axis=1)
    order = [i for i in np.argsort(d, kind="stable") if not (exclude_self and gallery[i] == query)]
    return [gallery[i] for i in order[:k]]


def test_gallery_folder_with_a_checkpoint(world, tmp_path):
    from embedding_transfer.deploy.runners import open_model
    from embedding_transfer.reporting.retrieval_grid import GREEN, RED
    query = str(world / "gallery" / "class2" / "1.png")
    out, grid = tmp_path / "hits.csv", tmp_path / "grid.png"
    retrieve(["--ckpt", str(world / "m.pth"), "--gallery", str(world / "gallery"), "--query", query,
              str(world / "gallery" / "class4"), "--k", "3", "--out-csv", str(out), "--grid", str(grid),
              "--save-gallery", str(tmp_path / "g.npz")])
    got = rows(out)
    assert len(got) == 5 * 3 and got[0].keys() >= {"query", "rank", "gallery_item", "distance", "same_class"}
    runner = open_model(str(world / "m.pth"))           # crop size from the args.json beside it
    assert runner.spec["crop"] == 32
    assert [r["gallery_item"] for r in got[:3]] == brute_top(world, runner, query, 3)
    assert all(r["gallery_item"] != r["query"] for r in got)          # no query retrieves itself
    assert all(r["query_class"] == os.path.basename(os.path.dirname(r["query"])) for r in got)
    # The picture: one row per query, frames green exactly where the CSV says same_class.
    im = np.asarray(PIL.Image.open(grid).convert("RGB"))
    assert im.shape == (5 * 96, 4 * 96 + 12, 3)
    for qi in range(5):
        for col in range(3):
            same = got[qi * 3 + col]["same_class"] == "1"
            assert tuple(im[qi * 96 + 1, 96 + 12 + col * 96 + 1]) == (GREEN if same else RED)
    # The saved gallery gives the same answers without re-embedding it.
    again = tmp_path / "again.csv"
    retrieve(["--ckpt", str(world / "m.pth"), "--gallery-embeddings", str(tmp_path / "g.npz"), "--query", query,
              str(world / "gallery" / "class4"), "--k", "3", "--out-csv", str(again)])
    assert rows(again) == got


def test_flat_gallery_has_no_classes_and_keep_self(world, tmp_path):
    from embedding_transfer.reporting.retrieval_grid import BLUE
    flat = tmp_path / "flat"
    flat.mkdir()
    for c in (0, 3):
        for j in range(2):
            os.link(world / "gallery" / f"class{c}" / f"{j}.png", flat / f"c{c}_{j}.png")
    out, grid = tmp_path / "hits.csv", tmp_path / "grid.png"
    retrieve(["--ckpt", str(world / "m.pth"), "--gallery", str(flat), "--query", str(flat / "c0_0.png"),
              "--k", "2", "--keep-self", "--out-csv", str(out), "--grid", str(grid)])
    got = rows(out)
    assert list(got[0]) == ["query", "rank", "gallery_item", "distance"]
    assert got[0]["gallery_item"] == str(flat / "c0_0.png") and float(got[0]["distance"]) < 1e-3
    im = np.asarray(PIL.Image.open(grid).convert("RGB"))
    assert tuple(im[1, 96 + 12 + 1]) == BLUE


def test_an_exported_model_retrieves_as_its_checkpoint(world, tmp_path):
    onnx_path = str(tmp_path / "m.onnx")
    export_cli.main(export_cli.get_args_parser().parse_args([str(world / "m.pth"), "--out", onnx_path]))
    args = ["--gallery", str(world / "gallery"), "--query", str(world / "gallery" / "class1"), "--k", "4"]
    retrieve(["--ckpt", str(world / "m.pth"), *args, "--out-csv", str(tmp_path / "a.csv"),
              "--save-gallery", str(tmp_path / "g.npz")])
    retrieve(["--ckpt", onnx_path, *args, "--out-csv", str(tmp_path / "b.csv")])
    a, b = rows(tmp_path / "a.csv"), rows(tmp_path / "b.csv")
    assert [r["gallery_item"] for r in a] == [r["gallery_item"] for r in b]
    assert np.allclose([float(r["distance"]) for r in a], [float(r["distance"]) for r in b], atol=1e-4)
    # The export shares its checkpoint's identity: the checkpoint's saved gallery serves it too.
    retrieve(["--ckpt", onnx_path, "--gallery-embeddings", str(tmp_path / "g.npz"), "--query",
              str(world / "gallery" / "class1"), "--k", "4", "--out-csv", str(tmp_path / "c.csv")])
    c = rows(tmp_path / "c.csv")
    assert [r["gallery_item"] for r in c] == [r["gallery_item"] for r in b]
    assert np.allclose([float(r["distance"]) for r in c], [float(r["distance"]) for r in b], atol=1e-4)


def test_faiss_index_against_the_exact_search(world, tmp_path, capsys):
    from embedding_transfer.deploy.faiss_index import build_ivf, recall_against_exact, search_ivf
    from embedding_transfer.query_gallery import nearest_gallery
    g = torch.Generator().manual_seed(0)
    G, Q = torch.randn(3000, 16, generator=g), torch.randn(50, 16, generator=g)
    exact = nearest_gallery(Q, G, 10)[1].numpy()
    index = build_ivf(G.numpy(), nlist=30)
    full = search_ivf(index, Q.numpy(), 10, nprobe=30)[1]          # every cell probed: exact
    assert np.array_equal(full, exact) and recall_against_exact(full, exact) == 1.0
    part = search_ivf(index, Q.numpy(), 10, nprobe=2)[1]
    r = recall_against_exact(part, exact)
    assert 0 < r < 1 and r == pytest.approx(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(part, exact)]))
    # Through the script: the recall is reported, and one cell is an exhaustive search.
    out = tmp_path / "f.csv"
    retrieve(["--ckpt", str(world / "m.pth"), "--gallery", str(world / "gallery"), "--query",
              str(world / "gallery" / "class3"), "--index", "faiss", "--nlist", "1", "--out-csv", str(out)])
    assert "recall@5 against exact search: 100.0% on 4 queries" in capsys.readouterr().out
    exact_csv = tmp_path / "e.csv"
    retrieve(["--ckpt", str(world / "m.pth"), "--gallery", str(world / "gallery"), "--query",
              str(world / "gallery" / "class3"), "--out-csv", str(exact_csv)])
    assert [r["gallery_item"] for r in rows(out)] == [r["gallery_item"] for r in rows(exact_csv)]


def test_unreadable_gallery_images_are_one_error_naming_them(world, tmp_path):
    bad = tmp_path / "gallery"
    (bad / "a").mkdir(parents=True)
    PIL.Image.new("RGB", (20, 20)).save(bad / "a" / "ok.png")
    (bad / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    data = (world / "gallery" / "class0" / "0.png").read_bytes()
    (bad / "a" / "cut.png").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match=r"2 of the 3 images of gallery .*broken.jpg.*cut.png"):
        retrieve(["--ckpt", str(world / "m.pth"), "--gallery", str(bad), "--query", str(bad / "a" / "ok.png"),
                  "--out-csv", str(tmp_path / "x.csv")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no image files"):
        retrieve(["--ckpt", str(world / "m.pth"), "--gallery", str(tmp_path / "empty"), "--query",
                  str(bad / "a" / "ok.png"), "--out-csv", str(tmp_path / "x.csv")])
    ok = str(bad / "a" / "ok.png")
    for gallery, query, said in ((tmp_path / "nowhere", ok, r"--gallery .*nowhere does not exist: give a folder of images"),
                                 (ok, ok, r"--gallery .*ok.png is a file, not a folder: give a folder of images"),
                                 (world / "gallery", str(tmp_path / "empty"), r"--query .*empty holds no image files")):
        with pytest.raises(UserError, match=said):
            retrieve(["--ckpt", str(world / "m.pth"), "--gallery", str(gallery), "--query", query,
                      "--out-csv", str(tmp_path / "x.csv")])


def test_mismatched_embedding_sizes(world, tmp_path):
    from embedding_transfer.embeddings_file import save_embeddings
    save_embeddings(str(tmp_path / "g64.npz"), np.zeros((4, 64)), paths=["a.png"] * 4)
    save_embeddings(str(tmp_path / "q8.npz"), np.zeros((2, 8)))
    query = str(world / "gallery" / "class0" / "0.png")
    with pytest.raises(UserError, match="holds 64-d embeddings but .* makes 16-d ones"):
        retrieve(["--ckpt", str(world / "m.pth"), "--gallery-embeddings", str(tmp_path / "g64.npz"),
                  "--query", query, "--out-csv", str(tmp_path / "x.csv")])
    with pytest.raises(UserError, match="queries are 8-d .* but the gallery is 64-d"):
        retrieve(["--gallery-embeddings", str(tmp_path / "g64.npz"), "--query-embeddings", str(tmp_path / "q8.npz"),
                  "--out-csv", str(tmp_path / "x.csv")])


def test_model_and_checkpoint_mismatch(world, tmp_path):
    from embedding_transfer.models import build_model, weights_record
    query = str(world / "gallery" / "class0" / "0.png")
    base = ["--gallery", str(world / "gallery"), "--query", query, "--out-csv", str(tmp_path / "x.csv")]
    # The flags name another network than the checkpoint holds: the message says which fits.
    with pytest.raises(UserError, match="--model resnet_tiny --embedding-size 16"):
        retrieve(["--ckpt", str(world / "m.pth"), "--model", "resnet_narrow", *base])
    # A gallery embedded by another checkpoint of the same network and size.
    torch.manual_seed(1)
    (tmp_path / "run").mkdir()
    torch.save(weights_record(build_model("resnet_tiny", 16, l2_norm=True)), tmp_path / "run" / "other.pth")
    (tmp_path / "run" / "args.json").write_text('{"crop_size": 32}')
    retrieve(["--ckpt", str(tmp_path / "run" / "other.pth"), *base, "--save-gallery", str(tmp_path / "g.npz")])
    with pytest.raises(UserError, match="embedded by .* and the queries by .*another checkpoint"):
        retrieve(["--ckpt", str(world / "m.pth"), "--gallery-embeddings", str(tmp_path / "g.npz"), "--query", query,
                  "--out-csv", str(tmp_path / "x.csv")])
    with pytest.raises(UserError, match="needs a model"):
        retrieve(base)
