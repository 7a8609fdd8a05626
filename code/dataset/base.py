"""Common base of the retrieval datasets: a list of image paths with integer class labels."""
import PIL.Image
import torch.utils.data

from errors import UserError


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

    def __len__(self):
        return len(self.ys)

    def __getitem__(self, index):
        im = load_image(self.im_paths[index])
        if self.transform is not None:
            im = self.transform(im)
        return im, self.ys[index], index
