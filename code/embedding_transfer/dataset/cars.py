"""Cars-196: 196 car models; classes 0-97 train (8,054 images), 98-195 eval (8,131)."""
import os

from .base import BaseDataset, check_images_exist, require
from .cars_layouts import DESCRIPTIONS, NB_CLASSES, READERS, SOURCES, find_layout

LAYOUT = ("cars196/ with one of: cars_annos.mat + car_ims/ (the reference's); cars_train/ + cars_test/ + "
          "devkit/ + cars_test_annos_withlabels.mat (the classification layout); train/<class>/ + "
          "test/<class>/ + cars_meta.mat (class folders)")


class Cars(BaseDataset):
    """Reads DATA_DIR/cars196/ in any of the three layouts of cars_layouts.py (or one folder deeper).

    Label = annotation `class` - 1, split by class (the annotation's `test` flag and the train/test
    folders are not used, as in the reference); labels restart at 0 in each split. When several
    layouts are complete the reference's wins. `layout` says which was read, `layout_root` where.
    """

    def __init__(self, data_dir, mode, transform=None):
        super().__init__(os.path.join(data_dir, "cars196"), mode, transform)
        require(self.root, "a folder", "Cars-196", SOURCES, LAYOUT)
        self.layout, self.layout_root = find_layout(self.root)
        first = 0 if mode == "train" else NB_CLASSES // 2
        listed = {}  # annotation file -> the images it lists, to report missing ones against it
        for cid, path, source in READERS[self.layout](self.layout_root):
            y = cid - 1 - first
            if 0 <= y < NB_CLASSES // 2:
                self.im_paths.append(path)
                self.ys.append(y)
                if source is not None:
                    listed.setdefault(source, []).append(path)
        for source, paths in listed.items():
            check_images_exist(paths, source)

    @property
    def layout_description(self):
        return f"{DESCRIPTIONS[self.layout]} in {self.layout_root}"
