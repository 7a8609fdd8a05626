"""Cross-vendor emoji retrieval: one class per emoji, one image per vendor's drawing of it.

A small real dataset for CPU demos (the paper's CUB/Cars/SOP cannot be shipped). Query an emoji
as drawn by one vendor, retrieve the same emoji drawn by another.

The images are rendered once by `python scripts/prepare_emoji.py --data-dir <data_dir>` (or
`make demo`; the preparation code lives in scripts/emoji_prep/, which training never imports)
into `<data_dir>/emoji/`:
  images/<key>/<vendor>.png   RGB, white background, the drawing cropped and centred
  classes.tsv                 the manifest, written last: `# vendors: ...` and `# sources: ...`
                              lines, then `key  emoji  vendors  paths` rows (paths relative to
                              emoji/, one image per vendor that drew the class)

A class key is the emoji's code point sequence without U+FE0F, lowercase hex without leading
zeros joined by '-' (e.g. '1f468-200d-1f469-200d-1f467', '23-20e3'). `EmojiDataset` sorts the
classes by code points and gives the first half to 'train', the second half to 'eval'.
"""
import os

from ..errors import UserError

from .base import BaseDataset

MANIFEST = "classes.tsv"


def emoji_dir(data_dir):
    return os.path.join(data_dir, "emoji")


def prepare_hint(data_dir):
    return f"run `python scripts/prepare_emoji.py --data-dir {data_dir}` (or `make demo`)"


def sort_key(key):
    """Classes are ordered by their code point sequences ('23-20e3' -> [0x23, 0x20E3])."""
    return [int(part, 16) for part in key.split("-")]


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
    if header_vendors is None:  # vendors in order of first appearance
        header_vendors = list(dict.fromkeys(v for _, vs, _ in rows for v in vs))
    return rows, header_vendors


class EmojiDataset(BaseDataset):
    """Cross-vendor emoji retrieval from `<root>/emoji/` (prepared by scripts/prepare_emoji.py).

    Classes sorted by code points: the first half is 'train', the second half 'eval' (disjoint).
    Besides `im_paths`/`ys`: `vendors` (per image), `keys` (per image), `classes` (per label) and
    `all_vendors` (the manifest's vendor list).
    """

    def __init__(self, root, mode, transform=None):
        super().__init__(root, mode, transform)
        manifest = read_manifest(root)
        if manifest is None:
            raise UserError(
                f"the emoji dataset is not prepared in {emoji_dir(root)} (no complete "
                f"{MANIFEST}): {prepare_hint(root)} first.")
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
