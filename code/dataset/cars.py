"""Cars-196: 196 car models; classes 0-97 train (8,054 images), 98-195 eval (8,131)."""
import os

import numpy as np
import scipy.io

from errors import UserError

from .base import BaseDataset, check_images_exist, require

LAYOUT = "cars196/cars_annos.mat and cars196/car_ims/*.jpg"
URL = "http://ai.stanford.edu/~jkrause/cars/car_dataset.html"
NB_CLASSES = 196
FIELDS = ("relative_im_path", "class")


def _scalar(x):
    # loadmat wraps every struct field in a 2-D (or 1-D) array; unwrap whatever the nesting is.
    # (The reference's `int(a[5][0] - 1)` relies on positions and on NumPy 1's lax int().)
    return np.asarray(x).reshape(-1)[0].item()


class Cars(BaseDataset):
    """Reads DATA_DIR/cars196/cars_annos.mat and the car_ims/ folder beside it.

    Label = annotation `class` - 1, split by class (the annotation's `test` flag is not used,
    as in the reference); labels restart at 0 in each split.
    """

    def __init__(self, data_dir, mode, transform=None):
        super().__init__(os.path.join(data_dir, "cars196"), mode, transform)
        annos_fn = os.path.join(self.root, "cars_annos.mat")
        require(self.root, "a folder", "Cars-196", URL, LAYOUT)
        require(annos_fn, "the annotation file", "Cars-196", URL, LAYOUT)
        try:
            annos = scipy.io.loadmat(annos_fn)["annotations"]
        except Exception as e:  # truncated download, wrong file: say which file, not a stack
            raise UserError(f"cannot read the annotations of {annos_fn}: {e!r}. Download "
                            f"cars_annos.mat again from {URL}.") from e
        names = annos.dtype.names or ()
        if any(f not in names for f in FIELDS):
            raise UserError(f"{annos_fn} has no 'annotations' struct with fields {FIELDS} "
                            f"(found {names}); use the cars_annos.mat of the archive at {URL}.")
        first = 0 if mode == "train" else NB_CLASSES // 2
        for path, cls in zip(annos["relative_im_path"].reshape(-1), annos["class"].reshape(-1)):
            y = int(_scalar(cls)) - 1 - first
            if 0 <= y < NB_CLASSES // 2:
                self.im_paths.append(os.path.join(self.root, str(_scalar(path))))
                self.ys.append(y)
        check_images_exist(self.im_paths, annos_fn)
