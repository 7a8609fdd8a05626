"""Broken or missing images found before training, not in the middle of an epoch.

A fast check of every file: PIL reads its header (format, size), and a JPEG or PNG must end with
its end marker (a truncated download or extraction cuts it off). The result is remembered per
list of files (their paths, sizes and modification times), so a re-run only re-stats the files.
"""
import concurrent.futures
import hashlib
import json
import os

import PIL.Image

from ..errors import UserError
from ..storage import save_json

# Where each format's file must end. JPEG: the EOI marker, possibly followed by a few padding bytes.
END_MARKERS = {"JPEG": (b"\xff\xd9", 64), "PNG": (b"IEND", 16)}


def problem(path):
    """Why `path` cannot be an image, or None."""
    try:
        with PIL.Image.open(path) as im:
            fmt, _ = im.format, im.size
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as e:
        return f"not a readable image ({e})"
    marker, tail = END_MARKERS.get(fmt, (None, 0))
    if marker is not None:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - tail - len(marker)))
            if marker not in f.read():
                return f"truncated ({fmt} without its end marker)"
    return None


def files_signature(paths):
    """A hash of the files' paths, sizes and modification times: it changes when any file does."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "embedding-transfer", "image-checks")


def check_images(paths, what, workers=8):
    """UserError naming the broken files among `paths` (the images of `what`, e.g. 'cub train')."""
    paths = [os.path.abspath(p) for p in paths]
    key = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:24]
    record = os.path.join(cache_dir(), f"{key}.json")
    signature = files_signature(paths)
    try:
        with open(record) as f:
            if json.load(f).get("signature") == signature:
                return
    except (OSError, ValueError):
        pass
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        found = [(p, why) for p, why in zip(paths, pool.map(problem, paths)) if why]
    if found:
        shown = "; ".join(f"{p}: {why}" for p, why in found[:3]) + ("; ..." if len(found) > 3 else "")
        raise UserError(f"{len(found)} of the {len(paths)} images of {what} cannot be used: {shown}. Replace or "
                        "delete them (re-extract the dataset archive if several are broken).")
    try:
        save_json({"signature": signature, "images": len(paths), "what": what}, record)
    except OSError:
        pass   # an unwritable cache only means checking again next time
