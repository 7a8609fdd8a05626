"""Download and unpack the paper's data sets into DATA_DIR in the layouts the loaders read, then
count the images with scripts/verify_data.py.

    python scripts/download_data.py [--DATA_DIR DIR] [cub] [cars] [SOP] [Inshop]

DATA_DIR defaults to $DATA_DIR, else ./data. With no names: the paper's three (cub, cars, SOP).

Archives land in DATA_DIR (Cars' official pair in DATA_DIR/cars196/) and are kept; delete them once
the counts are right. Interrupted downloads resume from their `.part` file on the next run. An
archive with a wrong MD5 (or, where no MD5 is known, one that fails its integrity test) is removed
and not unpacked. A data set that is already unpacked is not downloaded again (for Cars-196: any
complete layout its loader reads, e.g. Kaggle's copy). An archive downloaded by hand is used (after
the same checks): put it where this script would save it and run it again.

Cars-196: its official host (ai.stanford.edu/~jkrause) has answered 404 since 2023. The script
still tries it first, then the copy at ftp.cs.stanford.edu (CARS196.zip); failing both, it says
how to get Kaggle's copy by hand. The Cars loader also reads that copy's layout.

In-Shop Clothes (Inshop): its only official host is a Google Drive folder, linked from the DeepFashion
project page, which needs a browser. The script cannot fetch it: it says which two files to download
and where to put them, and unpacks img.zip once it is there.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from downloads import FetchError, check_archive, check_md5, fetch_first, merge, unpack  # noqa: E402

# name -> where to get it and its MD5 (None: unknown, the archive is integrity-tested instead).
# CUB, SOP, CARS196.zip: the paper material's datasets.md. car_ims.tgz, cars_annos.mat: the MD5s
# that many metric-learning code bases' Cars196 loaders check these two files against.
ARCHIVES = {
    "CUB_200_2011.tgz": {
        "urls": ["https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"],
        "md5": "97eceeb196236b17998738112f37df78"},
    "Stanford_Online_Products.zip": {
        # HTTP first: it can resume an interrupted download, FTP through urllib cannot.
        "urls": ["http://ftp.cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
                 "ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip"],
        "md5": "7f73d41a2f44250d4779881525aea32e"},
    "car_ims.tgz": {
        "urls": ["http://ai.stanford.edu/~jkrause/car196/car_ims.tgz"],
        "md5": "d5c8f0aa497503f355e17dc7886c3f14"},
    "cars_annos.mat": {
        "urls": ["http://ai.stanford.edu/~jkrause/car196/cars_annos.mat"],
        "md5": "b407c6086d669747186bd1d764ff9dbc"},
    "CARS196.zip": {
        "urls": ["http://ftp.cs.stanford.edu/cs/cvgl/CARS196.zip"],
        "md5": None},
}

PAGES = {  # where a person can look when every download fails
    "cub": "https://www.vision.caltech.edu/datasets/cub_200_2011/",
    "SOP": "https://cvgl.stanford.edu/projects/lifted_struct/",
}
# Cars-196 by hand, as torchvision issue #7545 (the official host's 404) describes it.
KAGGLE_CARS = "https://www.kaggle.com/datasets/jessicali9530/stanford-cars-dataset"
CARS_DEVKIT = "https://github.com/pytorch/vision/files/11644847/car_devkit.tgz"
CARS_LABELS = "https://github.com/pytorch/vision/issues/7545#issuecomment-1631441616"


def obtain(name, folder, quiet=False):
    """Path of a verified copy of archive `name` in `folder`, downloading it if needed."""
    spec = ARCHIVES[name]
    path = os.path.join(folder, name)
    if os.path.isfile(path):
        if not spec["md5"]:
            return path  # integrity-tested before unpacking
        try:
            check_md5(path, spec["md5"])
            print(f"have {path}")
            return path
        except FetchError as e:
            print(f"{e}; downloading it again", file=sys.stderr)
    return fetch_first(spec["urls"], path, spec["md5"], quiet)


def get_archive(name, archive, marker, data_dir, quiet=False):
    """One archive holding a whole data set: skipped when `marker` (a path under data_dir) is there."""
    if os.path.exists(os.path.join(data_dir, marker)):
        print(f"have {os.path.join(data_dir, marker.split('/')[0])}")
        return
    try:
        unpack(obtain(archive, data_dir, quiet), data_dir, quiet)
    except FetchError as e:
        raise FetchError(f"{e}. Get {archive} from {PAGES[name]}, put it in {data_dir}/ and run this again") from None


def get_cub(data_dir, quiet=False):
    get_archive("cub", "CUB_200_2011.tgz", "CUB_200_2011/images", data_dir, quiet)


def get_sop(data_dir, quiet=False):
    get_archive("SOP", "Stanford_Online_Products.zip", "Stanford_Online_Products/Ebay_train.txt", data_dir, quiet)


def cars_layout(root):
    """Description of the complete Cars layout under `root`, or None. The loader's own test
    (dataset/cars_layouts.py), so that what counts as present here is what it can read."""
    if not os.path.isdir(root):
        return None
    from embedding_transfer.dataset.cars_layouts import DESCRIPTIONS, find_layout  # here: imports torch via dataset/
    from embedding_transfer.errors import UserError
    try:
        layout, where = find_layout(root)
    except UserError:
        return None
    return f"{DESCRIPTIONS[layout]} in {where}"


def get_cars(data_dir, quiet=False):
    root = os.path.join(data_dir, "cars196")
    layout = cars_layout(root)
    if layout:
        print(f"have {layout}")
        return
    partial = os.path.isdir(root) and any(not n.startswith(".") for n in os.listdir(root))
    os.makedirs(root, exist_ok=True)
    failures = []
    for attempt in (cars_official, cars_zip):
        try:
            attempt(data_dir, root, quiet)
            return
        except FetchError as e:
            failures.append(str(e))
    raise FetchError(
        "Cars-196 is not available from any known host (" + "; ".join(failures) + "). "
        f"Get it by hand: download Kaggle's copy from {KAGGLE_CARS} (needs a free account) and "
        f"unzip it into {root}/ (cars_train/, cars_test/), unpack {CARS_DEVKIT} there too (devkit/ "
        f"with cars_meta.mat and cars_train_annos.mat), and add cars_test_annos_withlabels.mat "
        f"({CARS_LABELS} says where); or put car_ims.tgz + cars_annos.mat in {root}/, or "
        f"CARS196.zip in {data_dir}/; then run this again"
        + (f". What the files already in {root}/ lack: python scripts/verify_data.py --DATA_DIR "
           f"{data_dir} cars" if partial else ""))


def cars_official(data_dir, root, quiet):
    """The reference's files, from their official host (gone since 2023; tried in case it returns)."""
    images = obtain("car_ims.tgz", root, quiet)
    obtain("cars_annos.mat", root, quiet)
    unpack(images, root, quiet)


def cars_zip(data_dir, root, quiet):
    """CARS196.zip: unpacked into a scratch folder, from which car_ims/ and cars_annos.mat are
    moved to DATA_DIR/cars196/ wherever inside the archive they are."""
    archive = obtain("CARS196.zip", data_dir, quiet)
    check_archive(archive)
    scratch = os.path.join(data_dir, ".unpacking-cars196")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    try:
        unpack(archive, scratch, quiet)
        images, annos = find(scratch, "car_ims", os.path.isdir), find(scratch, "cars_annos.mat", os.path.isfile)
        if not (images and annos):
            raise FetchError(f"{archive} holds no car_ims/ folder and cars_annos.mat; it contains: "
                             + ", ".join(listing(scratch)))
        merge(images, os.path.join(root, "car_ims"))
        merge(annos, os.path.join(root, "cars_annos.mat"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def find(top, name, kind):
    """The shallowest path under `top` called `name` that passes `kind` (e.g. os.path.isdir)."""
    for folder, dirs, files in sorted(os.walk(top), key=lambda w: w[0].count(os.sep)):
        if name in dirs + files and kind(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def listing(top, limit=20):
    """Up to `limit` relative paths under `top`, folders first level by level (for error messages)."""
    out = []
    for folder, dirs, files in os.walk(top):
        dirs.sort()
        rel = os.path.relpath(folder, top)
        out += [os.path.normpath(os.path.join(rel, n)) + ("/" if n in dirs else "") for n in dirs + sorted(files)]
        if len(out) >= limit:
            return out[:limit] + ["..."]
    return out or ["nothing"]


INSHOP_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html"


def get_inshop(data_dir, quiet=False):
    """In-Shop Clothes: nothing to download automatically (see the module docstring); unpacks an
    img.zip put in Inshop_Clothes/Img/ by hand, and says what is still missing."""
    root = os.path.join(data_dir, "Inshop_Clothes")
    partition = os.path.join(root, "Eval", "list_eval_partition.txt")
    images, archive = os.path.join(root, "Img", "img"), os.path.join(root, "Img", "img.zip")
    if not os.path.isdir(images) and os.path.isfile(archive):
        check_archive(archive)          # no MD5 is published: its CRCs catch a truncated download
        unpack(archive, os.path.dirname(archive), quiet)
    missing = [what for what, ok in ((f"{partition}", os.path.isfile(partition)),
                                     (f"{images}/ (unpacked from img.zip)", os.path.isdir(images))) if not ok]
    if not missing:
        print(f"have {root}")
        return
    raise FetchError(
        f"In-Shop Clothes needs a manual download; missing: {'; '.join(missing)}. Open {INSHOP_PAGE}, follow "
        "its download link to the Google Drive folder of the In-shop Clothes Retrieval Benchmark (a browser "
        "step), and download Img/img.zip and Eval/list_eval_partition.txt from it. Put img.zip in "
        f"{os.path.dirname(archive)}/ and list_eval_partition.txt in {os.path.dirname(partition)}/, then run "
        "this again: it checks and unpacks img.zip (docs/data.md#in-shop-clothes)")


GETTERS = {"cub": get_cub, "cars": get_cars, "SOP": get_sop, "Inshop": get_inshop}
DEFAULT = ("cub", "cars", "SOP")   # the paper's; In-Shop only when named


def verify(data_dir, names):
    """scripts/verify_data.py on the data sets just obtained: 0 when the counts are the paper's."""
    import verify_data  # here: it imports the dataset code (and torch), needed only now
    return verify_data.main(["--DATA_DIR", data_dir, *names])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--DATA_DIR", default=os.environ.get("DATA_DIR") or "./data")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    # Checked below, not with choices=: argparse < 3.12 rejects an empty list against choices.
    ap.add_argument("datasets", nargs="*", metavar="{cub,cars,SOP,Inshop}", help="default: cub cars SOP")
    args = ap.parse_args(argv)
    unknown = [n for n in args.datasets if n not in GETTERS]
    if unknown:
        ap.error(f"unknown data set(s) {', '.join(unknown)}: choose among {', '.join(GETTERS)}")
    names = list(dict.fromkeys(args.datasets)) or [n for n in DEFAULT if n in GETTERS]
    os.makedirs(args.DATA_DIR, exist_ok=True)
    done, failed = [], []
    for name in names:
        try:
            GETTERS[name](args.DATA_DIR, args.quiet)
            done.append(name)
        except FetchError as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            failed.append(name)
        except KeyboardInterrupt:
            print("interrupted: run again to resume the download", file=sys.stderr)
            return 130
    status = verify(args.DATA_DIR, done) if done else 0
    if failed:
        print(f"error: not downloaded: {', '.join(failed)} (see above)", file=sys.stderr)
    return 1 if failed or status else 0


if __name__ == "__main__":
    sys.exit(main())
