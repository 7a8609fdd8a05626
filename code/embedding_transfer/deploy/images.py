"""Folders of images for retrieval: the files in them, their classes when the folder holds class
folders, and their embeddings by any runner (dataset.check_images checks that they are readable)."""
import os

import numpy as np
import torch
from tqdm import tqdm

from ..dataset import load_image
from ..errors import UserError

from .preprocess import SpecTransform

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def list_images(folder, flag="--gallery"):
    """Image files under `folder` (recursively, by extension), in sorted order; hidden files skipped.
    `flag` names the option that gave the folder, for the error messages."""
    wanted = f"a folder of images (files ending in {', '.join(EXTENSIONS)}, flat or in class sub-folders)"
    if not os.path.exists(folder):
        raise UserError(f"{flag} {folder} does not exist: give {wanted}, e.g. data/emoji/images.")
    if not os.path.isdir(folder):
        raise UserError(f"{flag} {folder} is a file, not a folder: give {wanted}.")
    paths = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths += [os.path.join(top, f) for f in sorted(files)
                  if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    if not paths:
        raise UserError(f"{flag} {folder} holds no image files: give {wanted}.")
    return paths


def gather(paths):
    """Files given one by one or as folders -> image files."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += list_images(p, "--query")
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise UserError(f"--query {p} does not exist: give image files or folders of images.")
    return out


def class_folder_labels(folder, paths):
    """The class of each image when `folder` holds class folders (every image one level down, as
    folder/<class>/<image>): its folder's name; else None (a flat or mixed gallery has no classes)."""
    rel = [os.path.relpath(p, folder).split(os.sep) for p in paths]
    return [r[0] for r in rel] if all(len(r) == 2 for r in rel) else None


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths, spec):
        self.paths, self.tf = paths, SpecTransform(spec)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return torch.from_numpy(self.tf(load_image(self.paths[i])))


def embed_files(runner, paths, batch_size=64, workers=0):
    """(N, d) float32 embeddings of image files, preprocessed by the runner's spec."""
    loader = torch.utils.data.DataLoader(_Files(paths, runner.spec), batch_size=batch_size, num_workers=workers)
    out = [runner.embed(x.numpy()) for x in tqdm(loader, desc="embed", leave=False, disable=None)]
    return np.concatenate(out).astype(np.float32, copy=False)
