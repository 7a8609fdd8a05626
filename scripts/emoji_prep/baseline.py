"""The raw-pixel retrieval baseline of the demo (scripts/demo.py)."""
import numpy as np
import PIL.Image
import torch

from dataset.base import load_image


def raw_pixel_embeddings(dataset, size=32):
    """(N, 3*size*size) float tensor in [0, 1]: each image resized to size x size, flattened
    (channel-major). The raw-pixel retrieval baseline; ignores the dataset's transform."""
    out = np.empty((len(dataset.im_paths), 3 * size * size), dtype=np.float32)
    for i, path in enumerate(dataset.im_paths):
        im = load_image(path).resize((size, size), PIL.Image.Resampling.BILINEAR)
        out[i] = (np.asarray(im, dtype=np.float32) / 255.0).transpose(2, 0, 1).reshape(-1)
    return torch.from_numpy(out)
