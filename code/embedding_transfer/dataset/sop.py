"""Stanford Online Products: train = Ebay_train.txt (11,318 classes, 59,551 images),
eval = Ebay_test.txt (11,316 classes, 60,502 images)."""
import os

from ..errors import UserError

from .base import BaseDataset, check_images_exist, require

LAYOUT = "Stanford_Online_Products/Ebay_{train,test}.txt and the image folders beside them"
URL = "https://cvgl.stanford.edu/projects/lifted_struct/"


class SOP(BaseDataset):
    """Reads DATA_DIR/Stanford_Online_Products/Ebay_{train,test}.txt: a header line, then
    `image_id class_id super_class_id path` per image, path relative to the dataset folder.

    The files number classes globally (1-11318 train, 11319-22634 test); labels are remapped to
    0..C-1 within the split, in class_id order.
    """

    def __init__(self, data_dir, mode, transform=None):
        super().__init__(os.path.join(data_dir, "Stanford_Online_Products"), mode, transform)
        meta = os.path.join(self.root, "Ebay_train.txt" if mode == "train" else "Ebay_test.txt")
        require(self.root, "a folder", "Stanford Online Products", URL, LAYOUT)
        require(meta, "the image list", "Stanford Online Products", URL, LAYOUT)
        class_ids = []
        with open(meta) as f:
            next(f, None)  # header
            for line_no, line in enumerate(f, start=2):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 4 or not fields[1].isdigit():
                    raise UserError(f"{meta} line {line_no}: expected `image_id class_id "
                                    f"super_class_id path`, got {line.strip()!r}. Download "
                                    f"the dataset again from {URL}.")
                class_ids.append(int(fields[1]))
                self.im_paths.append(os.path.join(self.root, fields[3]))
        label = {c: i for i, c in enumerate(sorted(set(class_ids)))}
        self.ys = [label[c] for c in class_ids]
        check_images_exist(self.im_paths, meta)
