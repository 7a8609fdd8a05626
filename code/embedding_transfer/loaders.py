"""The data loaders of a run: training (class-balanced with --IPC, multi-view), evaluation, and
the held-out validation classes (--val-classes); each process loads its share under torchrun."""
from collections import namedtuple

import torch

from . import distributed
from .dataset import BalancedBatchSampler, RankBatchSampler, build_dataset, build_transform, check_images
from .cached_data import cached_splits
from .errors import UserError
from .losses import LOSSES, needs_source
from .runtime import seed_worker

# generators: {name: torch.Generator} behind the data's randomness (batch order, augmentation
# seeds), saved in checkpoint.pth so that --resume continues the same sequence.
Loaders = namedtuple("Loaders", "train eval val generators")

VAL_SEED = 0   # the held-out classes do not change with --seed: runs of several seeds share them


def networks_of(args):
    """The networks a run feeds images to: its own, and its source's when its loss uses one."""
    uses_source = hasattr(args, "source_model") and args.loss in LOSSES and needs_source(args.loss)
    return (args.model, args.source_model) if uses_source else (args.model,)


def image_options(args):
    """Transform keyword arguments: the crop size, and for emoji no flip (left and right arrows are
    different classes) and milder crops (a small crop of a pictogram shows nothing recognisable)."""
    if args.crop_size % 32 and "bn_inception" in networks_of(args):
        raise UserError(f"--crop-size {args.crop_size}: BN-Inception's ceil-mode pooling needs a multiple of "
                        f"32 (e.g. {max(32, args.crop_size // 32 * 32)}).")
    if args.dataset == "emoji":
        return dict(crop_size=args.crop_size, flip=False, scale=(0.5, 1.0))
    return dict(crop_size=args.crop_size)


def hold_out_classes(train_set, fraction, transform):
    """(training part, validation part) of the training split: round(fraction * classes) classes
    drawn with a fixed seed go to validation, with `transform`; both parts are relabelled 0..C-1."""
    classes = sorted(set(train_set.ys))
    n_val = round(fraction * len(classes))
    if not 0 < fraction < 1 or n_val < 2 or len(classes) - n_val < 2:
        raise UserError(f"--val-classes {fraction:g} of {len(classes)} training classes holds out {n_val}: "
                        "give a fraction in (0, 1) that leaves at least 2 classes on each side (e.g. 0.1 or "
                        "0.2), or 0 to select the epoch on the test split.")
    order = torch.randperm(len(classes), generator=torch.Generator().manual_seed(VAL_SEED)).tolist()
    held = {classes[i] for i in order[:n_val]}
    return (train_set.subset_classes([c for c in classes if c not in held], train_set.transform),
            train_set.subset_classes(held, transform))


ImageSplits = namedtuple("ImageSplits", "train eval transform options views")


def image_splits(args, model_name, views):
    """The checked image splits of a run (ImageSplits). Broken or missing images and batch flags
    the training split cannot serve stop the run here, before any network (and its ImageNet
    weights) is built, so that those errors come first."""
    opts = image_options(args)
    eval_tf = build_transform(model_name, False, **opts)
    train_set = build_dataset(args.dataset, args.DATA_DIR, "train",
                              build_transform(model_name, True, views=views, **opts))
    eval_set = build_dataset(args.dataset, args.DATA_DIR, "eval", eval_tf)
    for split in (train_set, eval_set):
        check_images(split.im_paths, f"{args.dataset} {split.mode}", workers=max(args.workers, 4))
    batch_sampler(args, hold_out(args, train_set, eval_tf)[0], torch.Generator())
    return ImageSplits(train_set, eval_set, eval_tf, opts, views)


def hold_out(args, train_set, transform):
    """(training part, validation part or None) as --val-classes asks."""
    return hold_out_classes(train_set, args.val_classes, transform) if args.val_classes else (train_set, None)


def batch_sampler(args, train_set, order):
    if len(train_set) < args.batch_size:
        raise UserError(f"the training split has {len(train_set)} images, fewer than --batch-size "
                        f"{args.batch_size}. Lower --batch-size.")
    if args.IPC:
        return BalancedBatchSampler(train_set.ys, args.batch_size, args.IPC, generator=order)
    # the authors' plain shuffled batches (train_source without --IPC)
    shuffle = torch.utils.data.RandomSampler(train_set, generator=order)
    return torch.utils.data.BatchSampler(shuffle, args.batch_size, drop_last=True)


def build_loaders(args, splits, seed, networks=()):
    """Loaders(train, eval, val or None, generators) of a run from its image_splits (see the module
    docstring). With --feature-cache the splits yield the cached activations of `networks`
    ([(name, network)], the run's own first, split by --freeze-below) instead of images
    (cached_data.py)."""
    train_set, eval_set, eval_tf = splits.train, splits.eval, splits.transform
    if getattr(args, "feature_cache", ""):
        train_set, eval_set = cached_splits(args, [train_set, eval_set], networks, splits.views, splits.options)
        eval_tf = eval_set.transform
    train_set, val_set = hold_out(args, train_set, eval_tf)
    order = torch.Generator().manual_seed(seed)
    batches = batch_sampler(args, train_set, order)
    augment = torch.Generator().manual_seed(seed + 1)
    sampler = RankBatchSampler(batches, augment, distributed.rank(), distributed.world_size())
    train = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=args.workers,
                                        pin_memory=torch.cuda.is_available(), worker_init_fn=seed_worker)
    val = build_eval_loader(val_set, args.batch_size, args.workers) if val_set is not None else None
    return Loaders(train, build_eval_loader(eval_set, args.batch_size, args.workers), val,
                   {"sampler": order, "augment": augment})


def build_eval_loader(eval_set, batch_size, workers):
    """Loader of this process's share of an evaluation split: rank r embeds images r, r+W, ...;
    evaluation.evaluate gathers them back into dataset order."""
    shard = torch.utils.data.Subset(eval_set, range(distributed.rank(), len(eval_set), distributed.world_size()))
    return torch.utils.data.DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                                       pin_memory=torch.cuda.is_available())


def split_of(loader):
    """The whole split behind an evaluation loader (all processes' shares)."""
    return loader.dataset.dataset


def describe_splits(loaders):
    """'train N images (C classes), [validation ...,] eval M images' for the start-up line."""
    train = loaders.train.dataset
    val = "" if loaders.val is None else (
        f", validation {len(split_of(loaders.val))} images ({split_of(loaders.val).nb_classes()} held-out "
        "training classes; they select the epoch)")
    return f"train {len(train)} images ({train.nb_classes()} classes){val}, eval {len(split_of(loaders.eval))} images"
