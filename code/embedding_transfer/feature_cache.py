"""The feature cache of --freeze-below runs: the frozen part's outputs, computed once.

For every image of a split, the frozen bottom of a network (ImageNet weights, eval mode) is run on
`views` fixed augmented views (training split) and on the evaluation view (every split). Training
then draws its views from these fixed ones (cached_data.py), so a step costs only the trainable
stages above the split.

A cache file is keyed by what its contents depend on: network, split stage, crop size, number of
views, the views' seed, the augmentation and the list of image paths. It is reused by every run and
seed that asks for the same key, and rebuilt when an image file changed since it was built (size or
modification time, as dataset/image_check.py tells). A file whose recorded settings differ from the
ones its name stands for is an error, never silently used.
"""
import hashlib
import os

import torch

from . import distributed
from .dataset import build_transform, load_image
from .dataset.image_check import files_signature
from .errors import UserError
from .storage import save_torch

FORMAT = 1


def cache_key(arch, stage, crop, views, seed, image_options, paths, dataset):
    """What a cache's contents depend on, apart from the image files' contents."""
    paths = [os.path.abspath(p) for p in paths]
    return {"format": FORMAT, "network": arch, "freeze_below": stage, "crop": crop, "views": views, "seed": seed,
            "augmentation": {k: list(v) if isinstance(v, tuple) else v for k, v in image_options.items()
                             if k != "crop_size"},
            "dataset": dataset, "images": len(paths),
            "image_list": hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]}


def cache_path(folder, key):
    digest = hashlib.sha256(repr(sorted(key.items())).encode()).hexdigest()[:10]
    return os.path.join(folder, f"{key['dataset']}_{key['network']}_below-{key['freeze_below']}_{key['crop']}px_"
                                f"{key['views']}views_seed{key['seed']}_{key['images']}images_{digest}.pt")


class ViewImages(torch.utils.data.Dataset):
    """Image i -> (views + 1, 3, H, W): its `views` augmented views, drawn from seeds[i], then the
    evaluation view (views = 0: the evaluation view alone)."""

    def __init__(self, split, train_tf, eval_tf, seeds):
        self.split, self.train_tf, self.eval_tf, self.seeds = split, train_tf, eval_tf, seeds

    def __len__(self):
        return len(self.split.im_paths)

    def __getitem__(self, i):
        im = load_image(self.split.im_paths[i])
        out = []
        for seed in self.seeds[i].tolist():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out.append(self.train_tf(im))
        return torch.stack(out + [self.eval_tf(im)])


@torch.no_grad()
def compute(network, split, key, image_options, workers, batch_size=64):
    """{"train": (N, V, C, h, w) or None, "eval": (N, C, h, w)}: the frozen bottom's outputs."""
    views = key["views"]
    seeds = torch.randint(2**62, (len(split.im_paths), views), generator=torch.Generator().manual_seed(key["seed"]))
    images = ViewImages(split, build_transform(key["network"], True, **image_options),
                        build_transform(key["network"], False, **image_options), seeds)
    loader = torch.utils.data.DataLoader(images, batch_size=batch_size, num_workers=workers)
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    parts = []
    for x in loader:                                                  # (b, V+1, 3, H, W)
        b = x.shape[0]
        h = network.bottom(x.flatten(0, 1).to(device)).float().cpu()  # (b*(V+1), C, h, w)
        parts.append(h.view(b, views + 1, *h.shape[1:]))
    network.train(was_training)
    out = torch.cat(parts)
    return {"train": out[:, :views].contiguous() if views else None, "eval": out[:, views].contiguous()}


def load_or_build(folder, network, split, key, image_options, workers):
    """The cache of `split` under `folder` for `key`: read when it is there and its images are
    unchanged, else computed (on the main process under torchrun) and written."""
    path = cache_path(folder, key)
    if distributed.is_main():
        signature = files_signature(split.im_paths)
        entry = read(path, key)
        if entry is None or entry["signature"] != signature:
            if entry is not None:
                print(f"feature cache {path}: images changed since it was built; rebuilding.", flush=True)
            what = f"{key['views']} views + the evaluation view" if key["views"] else "the evaluation view"
            print(f"feature cache: {key['network']} below {key['freeze_below']} on {len(split.im_paths)} "
                  f"{key['dataset']} images ({what}) -> {path}", flush=True)
            entry = {"key": key, "signature": signature,
                     **compute(network, split, key, image_options, workers)}
            save_torch(entry, path)
    distributed.barrier()
    if not distributed.is_main():
        entry = read(path, key)
    return entry


def read(path, key):
    """The cache entry at `path`, None when absent; a UserError when it was made with other settings."""
    if not os.path.isfile(path):
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        made_with = entry["key"]
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(f"feature cache {path} cannot be read ({e}): delete it and run again to rebuild it.") from None
    if made_with != key:
        differs = ", ".join(f"{k}={made_with.get(k)!r} (this run: {key.get(k)!r})"
                            for k in sorted(set(key) | set(made_with)) if made_with.get(k) != key.get(k))
        raise UserError(f"feature cache {path} was made with other settings: {differs}. Delete the file, or pass "
                        "another --feature-cache folder, and the run builds the cache it needs.")
    return entry
