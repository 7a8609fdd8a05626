"""Retrieval datasets (CUB-200-2011, Cars-196, Stanford Online Products, In-Shop Clothes, and the
embedded emoji demo set), transforms, sampler.

Every dataset takes `(data_dir, mode, transform)`, mode 'train' or 'eval' (disjoint classes),
and yields `(image, label, index)` with labels 0..C-1 within the split. A query/gallery data set
(In-Shop) marks its eval split's query images with a per-image `is_query` list.
To add a dataset: a module with a BaseDataset subclass, and one entry in DATASETS.
"""
from ..errors import UserError

from .base import BaseDataset, load_image
from .cars import Cars
from .cub import CUBirds
from .emoji import EmojiDataset
from .inshop import InShop
from .image_check import check_images
from .sampler import BalancedBatchSampler, RankBatchSampler
from .sop import SOP
from .transforms import build_transform, convert_input

# Keys are the CLI's --dataset values (the reference's names).
DATASETS = {"cub": CUBirds, "cars": Cars, "SOP": SOP, "Inshop": InShop, "emoji": EmojiDataset}


def build_dataset(name, data_dir, mode, transform=None):
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; valid --dataset values: "
                        f"{', '.join(DATASETS)}.")
    if mode not in ("train", "eval"):
        raise UserError(f"dataset mode must be 'train' or 'eval', got {mode!r}.")
    return DATASETS[name](data_dir, mode, transform)


__all__ = ["DATASETS", "build_dataset", "check_images", "BaseDataset", "load_image", "BalancedBatchSampler", "RankBatchSampler",
           "build_transform", "convert_input", *(c.__name__ for c in DATASETS.values())]
