"""The emoji dataset (code/embedding_transfer/dataset/emoji.py): reading a prepared tree, the split, missing data.

The preparation code (scripts/emoji_prep/) is tested in test_emoji_prep.py."""
import ast
import inspect
import os

import PIL.Image
import pytest
import torch

from embedding_transfer.dataset import emoji as E
from embedding_transfer.dataset.emoji import EmojiDataset
from embedding_transfer.errors import UserError

SMALL = {  # key -> vendors; sorted by code points: 23-20e3, a9 | 2764, 1f468-200d-1f469, 1f600
    "1f600": ["twemoji", "openmoji", "noto", "fluent", "emojione"],
    "a9": ["twemoji", "openmoji"],
    "23-20e3": ["twemoji", "openmoji", "noto"],
    "2764": ["openmoji", "noto"],
    "1f468-200d-1f469": ["twemoji", "noto"],
}
HEADER = ["twemoji", "openmoji", "noto", "fluent", "emojione"]


def make_tree(data_dir, classes=SMALL, header=True):
    """A prepared-layout tree with flat-colour images, written independently of the code."""
    root = os.path.join(data_dir, "emoji")
    lines = [f"# vendors: {','.join(HEADER)}"] if header else []
    lines += ["# sources: made up for the test", "key\temoji\tvendors\tpaths"]
    for i, (key, vendors) in enumerate(classes.items()):
        os.makedirs(os.path.join(root, "images", key), exist_ok=True)
        for j, v in enumerate(vendors):
            colour = (40 * i, 50 * j, 255 - 40 * i)
            PIL.Image.new("RGB", (64, 64), colour).save(os.path.join(root, "images", key, f"{v}.png"))
        paths = ",".join(f"images/{key}/{v}.png" for v in vendors)
        text = "".join(chr(int(c, 16)) for c in key.split("-"))
        lines.append(f"{key}\t{text}\t{','.join(vendors)}\t{paths}")
    with open(os.path.join(root, E.MANIFEST), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return root


def test_sort_key_orders_by_code_points():
    keys = ["1f600", "a9", "23-20e3", "2764", "1f468-200d-1f469"]
    assert sorted(keys, key=E.sort_key) == ["23-20e3", "a9", "2764", "1f468-200d-1f469", "1f600"]


def test_read_manifest_records_the_vendors_of_each_class(tmp_path):
    root = make_tree(tmp_path)
    rows, vendors = E.read_manifest(str(tmp_path))
    assert vendors == HEADER
    assert {k: vs for k, vs, _ in rows} == SMALL
    key, vs, paths = next(r for r in rows if r[0] == "1f600")
    assert paths == [os.path.join(root, "images", "1f600", f"{v}.png") for v in vs]
    make_tree(tmp_path / "no_header", header=False)  # vendors in order of first appearance
    assert E.read_manifest(str(tmp_path / "no_header"))[1] == HEADER


def test_dataset_split_halves_and_labels(tmp_path):
    make_tree(tmp_path)
    train, ev = EmojiDataset(str(tmp_path), "train"), EmojiDataset(str(tmp_path), "eval")
    assert train.classes == ["23-20e3", "a9"]
    assert ev.classes == ["2764", "1f468-200d-1f469", "1f600"]
    assert train.ys == [0, 0, 0, 1, 1] and train.nb_classes() == 2
    assert ev.ys == [0, 0, 1, 1, 2, 2, 2, 2, 2] and ev.nb_classes() == 3
    assert ev.vendors == ["openmoji", "noto", "twemoji", "noto"] + SMALL["1f600"]
    assert ev.keys[2] == "1f468-200d-1f469" and ev.all_vendors == HEADER
    assert all(os.path.isfile(p) for p in train.im_paths + ev.im_paths)
    assert ev.im_paths[3].endswith(os.path.join("1f468-200d-1f469", "noto.png"))
    im, label, index = ev[4]
    assert isinstance(im, PIL.Image.Image) and im.mode == "RGB" and (label, index) == (2, 4)
    ev.transform = lambda im: torch.zeros(1)
    assert ev[0][0].shape == (1,)
    with pytest.raises(ValueError):
        EmojiDataset(str(tmp_path), "test")


def test_split_does_not_depend_on_manifest_order(tmp_path):
    make_tree(tmp_path / "a")
    make_tree(tmp_path / "b", classes=dict(reversed(list(SMALL.items()))))
    for mode in ("train", "eval"):
        a, b = EmojiDataset(str(tmp_path / "a"), mode), EmojiDataset(str(tmp_path / "b"), mode)
        assert a.classes == b.classes and a.ys == b.ys and a.vendors == b.vendors


def test_dataset_missing_data_says_how_to_prepare(tmp_path):
    with pytest.raises(UserError, match=r"not prepared.*scripts/prepare_emoji\.py.*make demo"):
        EmojiDataset(str(tmp_path), "train")
    make_tree(tmp_path)
    os.remove(os.path.join(tmp_path, "emoji", "images", "a9", "openmoji.png"))
    with pytest.raises(UserError, match=r"not prepared"):  # an incomplete tree counts as missing
        EmojiDataset(str(tmp_path), "eval")


def test_dataset_takes_no_preparation_arguments():
    assert list(inspect.signature(EmojiDataset.__init__).parameters) == [
        "self", "root", "mode", "transform"]


def test_training_does_not_import_preparation_code():
    """Every training run imports code/embedding_transfer/dataset: the dataset module imports no vendor or
    rendering code (only the standard library, errors and its base class)."""
    tree = ast.parse(inspect.getsource(E))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported <= {"os", "..errors", ".base"}, imported
