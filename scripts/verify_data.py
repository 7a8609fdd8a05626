"""Check that the datasets under --DATA_DIR have the paper's image and class counts (and, for Cars-196,
say which of its three layouts was found, or what the closest one lacks).

    python scripts/verify_data.py [--DATA_DIR ./data] [cub] [cars] [SOP] [Inshop]

With no names, every data set whose folder is under --DATA_DIR is checked.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "code"))

from embedding_transfer.dataset import build_dataset  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402

# (images, classes) of the train and eval splits, from the papers' data sections.
EXPECTED = {
    "cub": {"train": (5864, 100), "eval": (5924, 100)},
    "cars": {"train": (8054, 98), "eval": (8131, 98)},
    "SOP": {"train": (59551, 11318), "eval": (60502, 11316)},
    # In-Shop: eval = 14,218 query + 12,612 gallery images of the same 3,985 items.
    "Inshop": {"train": (25882, 3997), "eval": (26830, 3985)},
}
QUERIES = {"Inshop": 14218}
# The folder each data set's loader reads under --DATA_DIR (code/embedding_transfer/dataset/).
FOLDERS = {"cub": "CUB_200_2011", "cars": "cars196", "SOP": "Stanford_Online_Products", "Inshop": "Inshop_Clothes"}


def present(data_dir):
    """The data sets whose folder is under data_dir."""
    return [name for name in EXPECTED if os.path.isdir(os.path.join(data_dir, FOLDERS[name]))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--DATA_DIR", default="./data")
    # Names checked here, not by argparse `choices`: Python 3.11's argparse checks an empty or
    # default list against the choices as one value and refuses it.
    ap.add_argument("datasets", nargs="*", metavar="{" + ",".join(EXPECTED) + "}",
                    help="data sets to check (default: every one found under --DATA_DIR)")
    args = ap.parse_args(argv)
    unknown = [name for name in args.datasets if name not in EXPECTED]
    if unknown:
        ap.error(f"unknown data set(s) {', '.join(unknown)}; valid: {', '.join(EXPECTED)}")
    if not args.datasets:
        args.datasets = present(args.DATA_DIR)
        if not args.datasets:
            print(f"no data set found under {os.path.abspath(args.DATA_DIR)}: expected one of the folders "
                  f"{', '.join(FOLDERS.values())}. Download them with scripts/download_datasets.sh, or pass "
                  "--DATA_DIR pointing at the folder that holds them.")
            return 1
    ok = True
    for name in args.datasets:
        for mode, (n_img, n_cls) in EXPECTED[name].items():
            try:
                ds = build_dataset(name, args.DATA_DIR, mode)
            except UserError as e:
                print(f"{name} {mode}: {e}")
                ok = False
                break
            if mode == "train" and hasattr(ds, "layout_description"):  # Cars-196: which of its layouts
                print(f"{name}: found {ds.layout_description}")
            got = (len(ds), ds.nb_classes())
            good = got == (n_img, n_cls)
            if mode == "eval" and name in QUERIES:   # query/gallery split: both parts' sizes
                n_query = sum(ds.is_query)
                good &= n_query == QUERIES[name]
                print(f"{name} eval: {n_query} query and {len(ds) - n_query} gallery images "
                      f"(expected {QUERIES[name]} and {n_img - QUERIES[name]})")
            ok &= good
            print(f"{name} {mode}: {got[0]} images, {got[1]} classes "
                  + ("(as expected)" if good else f"(expected {n_img} images, {n_cls} classes)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
