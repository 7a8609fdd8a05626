"""In-Shop Clothes on a generated tree in Proxy-Anchor's exact layout (tests/conftest.py make_inshop)."""
import os

import pytest

from embedding_transfer.dataset import DATASETS, build_dataset
from embedding_transfer.errors import UserError

PARTITION = os.path.join("Inshop_Clothes", "Eval", "list_eval_partition.txt")


def expected(layout, statuses):
    """(relative path, item number) of the rows with those statuses, in the loader's order: by status
    in the order given, then in the file's order."""
    return [(path, int(item[3:])) for status in statuses for path, item, s in layout.inshop_rows if s == status]


def test_registered_under_proxy_anchors_name():
    assert "Inshop" in DATASETS


def test_train_split_paths_and_labels(inshop_dir, layout):
    ds = build_dataset("Inshop", str(inshop_dir), "train")
    rows = expected(layout, ["train"])
    assert ds.im_paths == [os.path.join(str(inshop_dir), "Inshop_Clothes", "Img", p) for p, _ in rows]
    items = sorted({n for _, n in rows})                     # labels: rank of the id's number
    assert ds.ys == [items.index(n) for _, n in rows]
    assert ds.nb_classes() == len([1 for _, st in layout.inshop.values() if "train" in st])
    assert not hasattr(ds, "is_query")


def test_eval_split_is_queries_then_gallery_with_shared_labels(inshop_dir, layout):
    ds = build_dataset("Inshop", str(inshop_dir), "eval")
    rows = expected(layout, ["query", "gallery"])
    n_query = sum(st.count("query") for _, st in layout.inshop.values())
    assert ds.is_query == [True] * n_query + [False] * (len(rows) - n_query)
    assert [os.path.relpath(p, os.path.join(str(inshop_dir), "Inshop_Clothes", "Img")) for p in ds.im_paths] == \
        [p for p, _ in rows]
    items = sorted({n for _, n in rows})                     # query and gallery numbered together
    assert ds.ys == [items.index(n) for _, n in rows]
    # The images are real files at the rows' paths, in the layout of img.zip (Img/img/WOMEN/...).
    assert all(os.path.isfile(p) and "/Img/img/" in p for p in ds.im_paths)


def test_missing_partition_file_says_where_to_get_it(inshop_dir):
    os.remove(inshop_dir / PARTITION)
    with pytest.raises(UserError, match=r"list_eval_partition.txt.*DeepFashion/InShopRetrieval.html"):
        build_dataset("Inshop", str(inshop_dir), "train")


@pytest.mark.parametrize("edit, message", [
    (lambda lines: ["52712"] + lines[1:], "announces 52712 images"),            # truncated file
    (lambda lines: lines[1:], "first line must be the number of images"),
    (lambda lines: lines[:1] + ["image_name item_id"] + lines[2:], "expected the header"),
    (lambda lines: lines[:3] + ["img/WOMEN/x.jpg id_00000002 test"] + lines[4:], "line 4: expected"),
    (lambda lines: lines[:3] + ["img/WOMEN/x.jpg train"] + lines[4:], "line 4: expected"),
])
def test_malformed_partition_file_names_the_problem(inshop_dir, edit, message):
    path = inshop_dir / PARTITION
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(UserError, match=message):
        build_dataset("Inshop", str(inshop_dir), "eval")


def test_missing_image_fails_at_construction(inshop_dir, layout):
    path, _, _ = next(r for r in layout.inshop_rows if r[2] == "gallery")
    os.remove(inshop_dir / "Inshop_Clothes" / "Img" / path)
    with pytest.raises(UserError, match="do not exist.*" + os.path.basename(path)):
        build_dataset("Inshop", str(inshop_dir), "eval")
