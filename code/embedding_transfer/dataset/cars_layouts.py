"""The three Cars-196 layouts people hold today, how to recognise each, and how to read each.

  'annos'   the reference's: car_ims/NNNNNN.jpg + cars_annos.mat (one list of all 16,185 images)
  'devkit'  the classification layout (Kaggle, torchvision's StanfordCars): cars_train/, cars_test/,
            devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat (beside cars_train/ or in
            devkit/); Kaggle copies nest the image folders once more (cars_train/cars_train/*.jpg)
  'folders' class folders (e.g. github.com/cyizhuo/Stanford-Cars-dataset): train/<class name>/*.jpg and
            test/<class name>/*.jpg, plus cars_meta.mat for the order of the class names

Every reader returns records (class id 1..196, image path, file that listed the image or None) over
train and test images together: the metric-learning split is by class, not by the classification split.
"""
import os
import re

import numpy as np
import scipy.io

from ..errors import UserError

NB_CLASSES = 196
URL = "http://ai.stanford.edu/~jkrause/cars/car_dataset.html"
# The official links have returned 404 since 2023 (torchvision issue #7545), hence the copies.
SOURCES = (f"{URL} (offline since 2023; copies: http://ftp.cs.stanford.edu/cs/cvgl/CARS196.zip for the "
           f"reference's layout, Kaggle 'jessicali9530/stanford-cars-dataset' plus "
           f"https://github.com/pytorch/vision/files/11644847/car_devkit.tgz and the "
           f"cars_test_annos_withlabels.mat linked from https://github.com/pytorch/vision/issues/7545 for "
           f"the classification layout, or github.com/cyizhuo/Stanford-Cars-dataset plus cars_meta.mat)")
DESCRIPTIONS = {
    "annos": "the reference's layout (cars_annos.mat + car_ims/)",
    "devkit": "the classification layout (cars_train/, cars_test/, devkit/ annotation files)",
    "folders": "the class-folder layout (train/<class name>/, test/<class name>/ + cars_meta.mat)",
}
ORDER = ("annos", "devkit", "folders")  # preference when several are complete: the reference's first
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
WITH_LABELS = "cars_test_annos_withlabels.mat"


def _scalar(x):
    # loadmat wraps every struct field in a 2-D (or 1-D) array; unwrap whatever the nesting is.
    # (The reference's `int(a[5][0] - 1)` relies on positions and on NumPy 1's lax int().)
    return np.asarray(x).reshape(-1)[0].item()


def _first_file(root, name, folders):
    """The first of root/<folder>/name that exists, or None: copies keep the .mat files in different
    places (torchvision: labels beside cars_train/, others: everything in devkit/)."""
    for folder in folders:
        path = os.path.join(root, folder, name)
        if os.path.isfile(path):
            return path
    return None


def _train_annos(root):
    return _first_file(root, "cars_train_annos.mat", ("devkit", ""))


def _test_labels(root):
    return _first_file(root, WITH_LABELS, ("", "devkit"))


def _names_file(root):
    # The real cars_annos.mat carries the same `class_names` as the devkit's cars_meta.mat.
    return (_first_file(root, "cars_meta.mat", ("devkit", ""))
            or _first_file(root, "cars_annos.mat", ("",)))


def missing_parts(root, layout):
    """What `layout` lacks under `root`, as short phrases for the error message ([] = complete)."""
    isdir = lambda p: os.path.isdir(os.path.join(root, p))  # noqa: E731
    if layout == "annos":
        need = [("cars_annos.mat", os.path.isfile(os.path.join(root, "cars_annos.mat"))),
                ("car_ims/", isdir("car_ims"))]
    elif layout == "devkit":
        need = [("cars_train/", isdir("cars_train")), ("cars_test/", isdir("cars_test")),
                ("devkit/cars_train_annos.mat (or cars_train_annos.mat beside cars_train/)", _train_annos(root)),
                (f"{WITH_LABELS} (beside cars_train/ or in devkit/; the devkit's cars_test_annos.mat has no "
                 f"labels, get it from https://github.com/pytorch/vision/issues/7545)", _test_labels(root))]
    else:
        need = [("train/", isdir("train")), ("test/", isdir("test")),
                (f"cars_meta.mat, the only record of the class order (put it in {os.path.join(root, 'devkit')}/ "
                 f"or beside train/; it is in car_devkit.tgz, "
                 f"https://github.com/pytorch/vision/files/11644847/car_devkit.tgz)", _names_file(root))]
    return [what for what, ok in need if not ok]


def _candidate_roots(base):
    """base, then its sub-folders: a git clone or a torchvision-style copy adds one level
    (cars196/Stanford-Cars-dataset/train/..., cars196/stanford_cars/cars_train/...)."""
    subs = sorted(e.path for e in os.scandir(base) if e.is_dir() and not e.name.startswith("."))
    return [base] + subs


def find_layout(base):
    """(layout, root) of the preferred complete layout under base; UserError naming what the closest
    one lacks when none is complete."""
    roots = _candidate_roots(base)
    missing = {(layout, root): missing_parts(root, layout) for layout in ORDER for root in roots}
    for (layout, root), parts in missing.items():  # dicts keep ORDER-major insertion order
        if not parts:
            return layout, root
    (layout, root), parts = min(missing.items(), key=lambda kv: len(kv[1]))  # first of the closest
    others = "; ".join(f"{DESCRIPTIONS[k]}" for k in ORDER if k != layout)
    raise UserError(f"Cars-196: no complete layout under {base}. Closest: {DESCRIPTIONS[layout]} in {root}, "
                    f"which lacks {'; '.join(parts)}. The other accepted layouts are {others}. "
                    f"Sources: {SOURCES}.")


def _load(path, key, fix):
    try:
        value = scipy.io.loadmat(path).get(key)
    except Exception as e:  # truncated download, wrong file: say which file, not a stack
        raise UserError(f"cannot read {path}: {e!r}. {fix}") from e
    if value is None:
        raise UserError(f"{path} holds no '{key}' variable; {fix}")
    return value


def load_struct(path, fields, fix):
    """The `annotations` struct array of a .mat file, checked for `fields`, flattened."""
    annos = _load(path, "annotations", fix)
    names = annos.dtype.names or ()
    if any(f not in names for f in fields):
        raise UserError(f"{path} has no 'annotations' struct with fields {fields} (found {names}); {fix}")
    return annos.reshape(-1)


def class_id(value, source):
    cid = _scalar(value)
    if not isinstance(cid, (int, float)) or cid != int(cid) or not 1 <= cid <= NB_CLASSES:
        raise UserError(f"{source} gives class {cid!r}; Cars-196 classes are 1..{NB_CLASSES}. The file is "
                        f"not a Cars-196 annotation file: replace it with the one of the archive.")
    return int(cid)


def read_annos(root):
    """In the reference's order: the annotation list as it is."""
    fn = os.path.join(root, "cars_annos.mat")
    annos = load_struct(fn, ("relative_im_path", "class"),
                        f"use the cars_annos.mat of the reference's archive ({URL} or its copies).")
    return [(class_id(c, fn), os.path.join(root, str(_scalar(p))), fn)
            for p, c in zip(annos["relative_im_path"], annos["class"])]


def _image_dir(folder, first_name):
    """Kaggle's copies nest the image folder once more (cars_train/cars_train/*.jpg): use the level
    that holds the listed files."""
    nested = os.path.join(folder, os.path.basename(folder))
    if not os.path.exists(os.path.join(folder, first_name)) and os.path.isdir(nested):
        return nested
    return folder


def _by_class_then_name(records):
    """Sorted by class, then file name, then train before test: deterministic whatever the order of
    the files on disk; within a class it is the reference's order where the files keep their car_ims
    numbers (class-folder copies seem to: their trees show 6-digit names)."""
    return [(cid, path, src) for cid, _, _, path, src in sorted(records)]


def read_devkit(root):
    fix = (f"use the files of car_devkit.tgz and the {WITH_LABELS} linked from "
           f"https://github.com/pytorch/vision/issues/7545.")
    records = []
    for split, (folder, fn) in enumerate((("cars_train", _train_annos(root)), ("cars_test", _test_labels(root)))):
        annos = load_struct(fn, ("class", "fname"), fix)
        names = [str(_scalar(f)) for f in annos["fname"]]
        images = _image_dir(os.path.join(root, folder), names[0] if names else "")
        records += [(class_id(c, fn), name, split, os.path.join(images, name), fn)
                    for c, name in zip(annos["class"], names)]
    return _by_class_then_name(records)


def class_names(root):
    fn = _names_file(root)
    names = [str(_scalar(n)) for n in np.asarray(_load(
        fn, "class_names", "the class-folder layout needs the cars_meta.mat of car_devkit.tgz "
        "(https://github.com/pytorch/vision/files/11644847/car_devkit.tgz).")).reshape(-1)]
    if len(names) != NB_CLASSES or len(set(names)) != NB_CLASSES:
        raise UserError(f"{fn} lists {len(names)} class names ({len(set(names))} distinct), expected "
                        f"{NB_CLASSES}; use the cars_meta.mat of car_devkit.tgz.")
    return names, fn


def _key(name):
    # A folder cannot hold '/': "Ram C/V Cargo Van Minivan 2012" is stored as "Ram C-V ...", "Ram CV ..."
    # or "Ram C_V ..." depending on the copy, so compare names without punctuation, spaces or case.
    return re.sub(r"[\W_]+", "", name).casefold()


def folder_matcher(names, source):
    """folder name -> class id 1..196, by exact name first, then by _key when that is unambiguous."""
    exact = {n: i for i, n in enumerate(names, start=1)}
    keys = {}
    for i, n in enumerate(names, start=1):
        keys.setdefault(_key(n), []).append(i)

    def match(folder, split_dir):
        ids = [exact[folder]] if folder in exact else keys.get(_key(folder), [])
        if len(ids) != 1:
            why = "matches several class names" if ids else "matches no class name"
            raise UserError(f"class folder {os.path.join(split_dir, folder)} {why} of {source}; rename it to "
                            f"its class name in {source} (a '/' in a name may be any of '-', '_' or nothing).")
        return ids[0]
    return match


def read_folders(root):
    names, source = class_names(root)
    match = folder_matcher(names, source)
    records, seen = [], {}
    for split, split_name in enumerate(("train", "test")):
        split_dir = os.path.join(root, split_name)
        for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            cid = match(entry.name, split_dir)
            other = seen.setdefault((split, cid), entry.path)
            if other != entry.path:
                raise UserError(f"{other} and {entry.path} are both class '{names[cid - 1]}' of {source}; "
                                f"merge them or remove one.")
            records += [(cid, f.name, split, f.path, None) for f in os.scandir(entry.path)
                        if f.is_file() and f.name.lower().endswith(IMAGE_EXTS) and not f.name.startswith(".")]
    absent = [names[i - 1] for i in range(1, NB_CLASSES + 1) if (0, i) not in seen and (1, i) not in seen]
    if absent:
        raise UserError(f"{root}/train and test/ hold {NB_CLASSES - len(absent)} of the {NB_CLASSES} classes of "
                        f"{source}; no folder for {', '.join(repr(n) for n in absent[:3])}"
                        f"{', ...' if len(absent) > 3 else ''}. The copy is incomplete: extract or clone it again.")
    return _by_class_then_name(records)


READERS = {"annos": read_annos, "devkit": read_devkit, "folders": read_folders}
