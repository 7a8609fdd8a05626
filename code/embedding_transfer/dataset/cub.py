"""CUB-200-2011: 200 bird species; classes 0-99 train (5,864 images), 100-199 eval (5,924)."""
import os

from ..errors import UserError

from .base import BaseDataset, require

LAYOUT = "CUB_200_2011/images/<class folders>/*.jpg"
URL = "https://www.vision.caltech.edu/datasets/cub_200_2011/"
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png")
NB_CLASSES = 200


class CUBirds(BaseDataset):
    """Reads DATA_DIR/CUB_200_2011/images/<class folder>/*.jpg (the layout of CUB_200_2011.tgz).

    Classes are the folder names in sorted order, as torchvision's ImageFolder in the reference
    numbers them; labels restart at 0 in each split.
    """

    def __init__(self, data_dir, mode, transform=None):
        super().__init__(os.path.join(data_dir, "CUB_200_2011"), mode, transform)
        images = os.path.join(self.root, "images")
        require(images, "the folder of class folders", "CUB-200-2011", URL, LAYOUT)
        classes = sorted(d.name for d in os.scandir(images) if d.is_dir())
        if len(classes) != NB_CLASSES:
            raise UserError(f"{images} holds {len(classes)} class folders, CUB-200-2011 has "
                            f"{NB_CLASSES}: the split (first 100 train, last 100 eval) would be "
                            f"wrong. Extract the archive from {URL} again.")
        first = 0 if mode == "train" else NB_CLASSES // 2
        for y, cls in enumerate(classes[first:first + NB_CLASSES // 2]):
            folder = os.path.join(images, cls)
            for fn in sorted(os.listdir(folder)):
                # `._*` files are macOS metadata shipped in some copies of the archive, not images.
                if fn.startswith("._") or not fn.lower().endswith(IMG_EXTENSIONS):
                    continue
                self.im_paths.append(os.path.join(folder, fn))
                self.ys.append(y)
