"""Datasets that yield cached activations instead of images (--feature-cache, with --freeze-below).

A CachedSplit stands in for an image split: same images, labels and per-image lists (so that
--val-classes holds out classes from it as from images), but item i is read from the feature
cache (feature_cache.py) of every network the run feeds:

- training (CachedViews(k)): k of the V cached views of image i, drawn without replacement from
  the augmentation seed the batch sampler gives the image (so the draw is the same in one process
  and under torchrun): (k, C, h, w), or (C, h, w) for k = 1;
- evaluation (CachedEvalView()): the evaluation view (C, h, w).

When the source network's frozen part differs from the target's (e.g. Lite2 -> Lite0), an item's x
is the pair (target's activations, source's activations) of the same views.
"""
import hashlib

import torch

from .dataset import BaseDataset
from .errors import UserError
from .feature_cache import cache_key, load_or_build


class CachedViews:
    def __init__(self, views):
        self.views = views

    def __call__(self, stores, row, seed):
        available = stores[0]["train"].shape[1]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        pick = torch.randperm(available, generator=generator)[:self.views]
        xs = [s["train"][row, pick] for s in stores]                     # each (k, C, h, w)
        if self.views == 1:
            xs = [x[0] for x in xs]
        return xs[0] if len(xs) == 1 else tuple(xs)


class CachedEvalView:
    def __call__(self, stores, row, seed):
        return stores[0]["eval"][row]


class CachedSplit(BaseDataset):
    """An image split read from caches: `stores` (one entry per network fed, the run's own first)."""

    def __init__(self, split, stores, transform):
        self.__dict__.update(vars(split))            # paths, labels and every per-image list
        self.rows, self.stores, self.transform = list(range(len(split.ys))), stores, transform

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        return self.transform(self.stores, self.rows[index], seed), self.ys[index], index


def bottom_digest(network):
    """A short hash of the frozen part's weights and statistics: a cache is only valid for them."""
    h = hashlib.sha256()
    for module in network.frozen_modules(network.split):
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_splits(args, splits, networks, views, image_options):
    """[CachedSplit of each split in `splits`]: the training split (first) in `views` of the
    cached views, the others in their evaluation view. networks: [(name, network)], the run's
    own network first, then its source's, each already split with --freeze-below."""
    if views > args.cache_views:
        raise UserError(f"--view {views} needs at least {views} cached views of each image; "
                        f"--cache-views is {args.cache_views}.")
    out = []
    for n, split in enumerate(splits):
        stores, keys = [], []
        for name, network in (networks if n == 0 else networks[:1]):
            key = cache_key(name, args.freeze_below, args.crop_size, args.cache_views if n == 0 else 0,
                            args.cache_seed, image_options, split.im_paths, args.dataset)
            key["weights"] = bottom_digest(network)
            if key in keys:          # the source's frozen part is the target's: one cache feeds both
                continue
            keys.append(key)
            # Decoding and augmenting the images is most of the work: at least two loader processes.
            stores.append(load_or_build(args.feature_cache, network, split, key, image_options, max(args.workers, 2)))
        out.append(CachedSplit(split, stores, CachedViews(views) if n == 0 else CachedEvalView()))
    return out
