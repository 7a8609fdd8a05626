"""In-Shop Clothes Retrieval (DeepFashion), in Proxy-Anchor's layout and protocol.

    DATA_DIR/Inshop_Clothes/Eval/list_eval_partition.txt
    DATA_DIR/Inshop_Clothes/Img/img/WOMEN/Dresses/id_00000002/02_1_front.jpg ...

The partition file: a line with the number of rows, the header `image_name item_id
evaluation_status`, then one `img/... id_NNNNNNNN train|query|gallery` row per image (paths relative
to Img/). train: 3,997 items, 25,882 images; query: 14,218 and gallery: 12,612 images of 3,985
other items. As Proxy-Anchor numbers them, an item's label is the rank of the number in its id among
the split's items (train alone; query and gallery together, so that a query and its gallery images
share the label).

mode 'train' is the training split; mode 'eval' is the query images, then the gallery images, with
`is_query` telling which: evaluation searches each query among the gallery only (evaluation.py).
"""
import os

from ..errors import UserError

from .base import BaseDataset, check_images_exist, require

FOLDER = "Inshop_Clothes"
PARTITION = os.path.join("Eval", "list_eval_partition.txt")
HEADER = ["image_name", "item_id", "evaluation_status"]
STATUSES = ("train", "query", "gallery")
LAYOUT = (f"{FOLDER}/{PARTITION} and the images under {FOLDER}/Img/ (img.zip unpacked there: "
          f"Img/img/WOMEN/..., Img/img/MEN/...)")
URL = ("https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html (In-shop Clothes Retrieval "
       "Benchmark: Img/img.zip and Eval/list_eval_partition.txt, from the Google Drive folder the page "
       "links to; docs/data.md#in-shop-clothes)")


def read_partition(path):
    """[(image path relative to Img/, item number, status)] of the partition file, or a UserError
    naming the line that is not in its format."""
    fix = f"Download {PARTITION} again from {URL}."
    with open(path) as f:
        lines = f.read().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise UserError(f"{path}: the first line must be the number of images, got "
                        f"{(lines[0] if lines else '')!r}. {fix}")
    if lines[1].split() != HEADER:
        raise UserError(f"{path} line 2: expected the header {' '.join(HEADER)!r}, got {lines[1].strip()!r}. {fix}")
    rows = []
    for line_no, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        item = fields[1].rsplit("_", 1)[-1] if len(fields) == 3 else ""
        if len(fields) != 3 or fields[2] not in STATUSES or not item.isdigit():
            raise UserError(f"{path} line {line_no}: expected `image_name id_NNNNNNNN train|query|gallery`, "
                            f"got {line.strip()!r}. {fix}")
        rows.append((fields[0], int(item), fields[2]))
    if len(rows) != int(lines[0]):
        raise UserError(f"{path} announces {int(lines[0])} images on its first line but lists {len(rows)}: "
                        f"the file is truncated or edited. {fix}")
    return rows


class InShop(BaseDataset):
    """See the module docstring. Eval: `is_query` per image (True for the query images, which come
    first)."""

    def __init__(self, data_dir, mode, transform=None):
        super().__init__(os.path.join(data_dir, FOLDER), mode, transform)
        meta = os.path.join(self.root, PARTITION)
        require(self.root, "a folder", "In-Shop Clothes", URL, LAYOUT)
        require(meta, "the partition file", "In-Shop Clothes", URL, LAYOUT)
        rows = read_partition(meta)
        wanted = ("train",) if mode == "train" else ("query", "gallery")
        # Query rows first, then gallery rows, each in the file's order.
        chosen = [r for status in wanted for r in rows if r[2] == status]
        if not chosen:
            raise UserError(f"{meta} lists no {' or '.join(wanted)} images. Download it again from {URL}.")
        label = {item: i for i, item in enumerate(sorted({item for _, item, _ in chosen}))}
        self.im_paths = [os.path.join(self.root, "Img", path) for path, _, _ in chosen]
        self.ys = [label[item] for _, item, _ in chosen]
        if mode == "eval":
            self.is_query = [status == "query" for _, _, status in chosen]
        check_images_exist(self.im_paths, meta)
