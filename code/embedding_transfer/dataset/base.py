"""Common base of the retrieval datasets: a list of image paths with integer class labels."""
import copy
import os

import PIL.Image
import torch
import torch.utils.data

from ..errors import UserError


def load_image(path):
    """Open an image as RGB; an unreadable or corrupt file is a UserError naming it."""
    try:
        with PIL.Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {path}: {e}. Replace or delete the file "
                        f"(re-extract the dataset archive if several are broken).") from e


class BaseDataset(torch.utils.data.Dataset):
    """Subclasses fill `im_paths` and `ys` (labels starting at 0 within the split's classes).

    `__getitem__` returns `(image, label, index)`; the index lets CRD address its memory banks.
    """

    def __init__(self, root, mode, transform=None):
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        self.root, self.mode, self.transform = root, mode, transform
        self.im_paths, self.ys = [], []

    def nb_classes(self):
        return len(set(self.ys))

    def subset_classes(self, labels, transform):
        """A copy holding only the images of `labels`, relabelled 0..len(labels)-1 in sorted order,
        with another transform. Per-image lists (paths, labels, e.g. emoji vendors) are filtered
        alike, and a per-class `classes` list follows its classes."""
        labels = sorted(set(labels))
        new_label = {c: j for j, c in enumerate(labels)}
        keep = [i for i, y in enumerate(self.ys) if y in new_label]
        n, n_classes = len(self.ys), self.nb_classes()
        sub = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, list) and len(value) == n:
                setattr(sub, name, [value[i] for i in keep])
        if isinstance(getattr(self, "classes", None), list) and len(self.classes) == n_classes:
            sub.classes = [self.classes[c] for c in labels]
        sub.ys = [new_label[self.ys[i]] for i in keep]
        sub.transform = transform
        return sub

    def __len__(self):
        return len(self.ys)

    def __getitem__(self, key):
        """key: an index, or (index, seed) to draw the augmentation from that seed (see
        sampler.RankBatchSampler); the global random state is left as it was."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        im = load_image(self.im_paths[index])
        if self.transform is not None:
            if seed is None:
                im = self.transform(im)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    im = self.transform(im)
        return im, self.ys[index], index


def require(path, what, dataset, url, layout):
    """Fail with one UserError when a dataset's folder or metadata file is absent.

    Checked before anything else so that a missing download is reported once, with the path
    that was looked for and where the data comes from, instead of as a later traceback.
    """
    if not os.path.exists(path):
        raise UserError(f"{dataset} not found: expected {what} at {path}. Download {dataset} from "
                        f"{url} and extract it so that the data directory holds {layout} "
                        f"(or pass --DATA_DIR pointing at the folder that already holds it; "
                        f"scripts/download_datasets.sh fetches and unpacks them).")


def check_images_exist(paths, source):
    """Fail at construction, not hours into training, when metadata lists absent image files.

    One directory listing per folder instead of one stat per image: SOP has 120k images in a
    dozen folders.
    """
    listings = {}
    missing = []
    for p in paths:
        folder, name = os.path.split(p)
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        if name not in listings[folder]:
            missing.append(p)
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(f"{len(missing)} image file(s) listed in {source} do not exist: {shown}. "
                        f"The image archive seems incompletely extracted: extract it again next "
                        f"to {os.path.basename(source)}.")
