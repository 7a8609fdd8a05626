"""The raw-pixel retrieval baseline of the demo (scripts/demo.py)."""
import copy

import numpy as np
import PIL.Image
import torch

from embedding_transfer.dataset.base import load_image


def raw_pixel_embeddings(dataset, size=32):
    """(N, 3*size*size) float tensor in [0, 1]: each image resized to size x size, flattened
    (channel-major). The raw-pixel retrieval baseline; ignores the dataset's transform."""
    out = np.empty((len(dataset.im_paths), 3 * size * size), dtype=np.float32)
    for i, path in enumerate(dataset.im_paths):
        im = load_image(path).resize((size, size), PIL.Image.Resampling.BILINEAR)
        out[i] = (np.asarray(im, dtype=np.float32) / 255.0).transpose(2, 0, 1).reshape(-1)
    return torch.from_numpy(out)


@torch.no_grad()
def imagenet_features(dataset, model, crop_size, batch_size=150, workers=0):
    """(N, 1280-ish) float tensor: the pooled features (GAP + GMP of the last map, the embedding
    layer's input) of `model` with its ImageNet weights, no fine-tuning; the dataset is read with
    the evaluation transform of that network at crop_size. The baseline that fine-tuning must beat."""
    from embedding_transfer.dataset.transforms import build_transform
    from embedding_transfer.models import build_model

    net = build_model(model, 8, pretrained=True).eval()   # the embedding layer is not used
    dataset = copy.copy(dataset)   # the caller's transform stays as it was
    dataset.transform = build_transform(model, train=False, crop_size=crop_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    return torch.cat([net(batch[0])[0][-1] for batch in loader])
