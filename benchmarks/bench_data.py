"""Decoded and augmented images per second of train_target's training pipeline, by worker count.

The training loader of loaders.build_loaders, with train_target's flags: dataset +
build_transform(model, train=True, views=2) + BalancedBatchSampler (batch 90, IPC 3) + DataLoader
(pinned memory when CUDA is present), with 0 (main process), 1, 2 and os.cpu_count() workers. Uses --DATA_DIR/--dataset when that dataset
is there, else a synthetic CUB-layout tree of JPEGs (200 classes x 10 images of 500x375) in a
temporary folder (the 100 training classes get images). One warm-up batch (worker start-up included) is not timed. Compare images/s
with bench_train_step.py's step img/s (which counts views: divide it by --views) to see whether
the loader or the GPU is the bottleneck.

    python benchmarks/bench_data.py [--DATA_DIR ./data --dataset cub] [--batches 10]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import PIL.Image
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "code"))
from embedding_transfer import train_target  # noqa: E402
from embedding_transfer.loaders import build_loaders, image_splits  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402


def make_synthetic_cub(root, classes, per_class, width, height, seed=0):
    """DATA_DIR layout of CUB (CUB_200_2011/images/<class>/*.jpg) of smooth random JPEGs, which
    decode about as fast as photographs (pure noise would not compress). Only the training half
    of the classes gets images; the evaluation half is empty folders."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = os.path.join(root, "CUB_200_2011", "images", f"{c + 1:03d}.class_{c + 1}")
        os.makedirs(folder)
        for i in range(per_class if c < classes // 2 else 0):
            small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
            im = PIL.Image.fromarray(small).resize((width, height), PIL.Image.BICUBIC)
            noise = rng.integers(-12, 13, (height, width, 3))
            im = PIL.Image.fromarray(np.clip(np.asarray(im, dtype=np.int16) + noise, 0, 255).astype(np.uint8))
            im.save(os.path.join(folder, f"img_{i:04d}.jpg"), quality=90)


class FixedBatches:
    """`n` batches of a batch sampler, over as many of its epochs as needed (one loader
    iteration, so that workers start once)."""

    def __init__(self, sampler, n):
        self.sampler, self.n = sampler, n

    def __len__(self):
        return self.n

    def __iter__(self):
        k = 0
        while True:
            for batch in self.sampler:
                if k == self.n:
                    return
                yield batch
                k += 1


def measure(train_loader, workers, batches):
    """(images/s, batches/s) of `batches` batches of train_loader's pipeline with `workers`
    workers, after one untimed batch."""
    loader = torch.utils.data.DataLoader(train_loader.dataset,
                                         batch_sampler=FixedBatches(train_loader.batch_sampler, batches + 1),
                                         num_workers=workers, pin_memory=train_loader.pin_memory,
                                         worker_init_fn=train_loader.worker_init_fn)
    it = iter(loader)
    next(it)   # warm-up: worker start-up, first decodes
    t0 = time.perf_counter()
    images = sum(x.shape[0] for x, _, _ in it)
    seconds = time.perf_counter() - t0
    del it
    return images / seconds, batches / seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    ap.add_argument("--DATA_DIR", default="./data")
    ap.add_argument("--dataset", default="cub", help="cub, cars, SOP or emoji (synthetic CUB when absent)")
    ap.add_argument("--synthetic", action="store_true", help="use the synthetic CUB tree even if the data exist")
    ap.add_argument("--model", default="bn_inception", help="decides the normalisation (BGR/Caffe or ImageNet)")
    ap.add_argument("--batch-size", type=int, default=90)
    ap.add_argument("--IPC", type=int, default=3)
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--crop-size", type=int, default=224)
    ap.add_argument("--batches", type=int, default=10, help="timed batches after the warm-up batch")
    ap.add_argument("--workers", default=None, help="comma list (default: 0,1,2,os.cpu_count())")
    ap.add_argument("--classes", type=int, default=200, help="synthetic tree: classes (half are training)")
    ap.add_argument("--per-class", type=int, default=10, help="synthetic tree: images per class")
    args = ap.parse_args()
    workers = (sorted({int(w) for w in args.workers.split(",")}) if args.workers
               else sorted({0, 1, 2, os.cpu_count() or 1}))

    def loader(data_dir, dataset):
        targs = train_target.get_args_parser().parse_args(
            ["--DATA_DIR", data_dir, "--dataset", dataset, "--model", args.model, "--batch-size",
             str(args.batch_size), "--IPC", str(args.IPC), "--view", str(args.views), "--crop-size",
             str(args.crop_size), "--workers", "0"])
        return build_loaders(targs, image_splits(targs, targs.model, targs.view), targs.seed)[0]

    tmp = train_loader = None
    if not args.synthetic:
        try:
            train_loader = loader(args.DATA_DIR, args.dataset)
        except UserError as e:
            print(f"note: {e.args[0].split('. ')[0]}: using a synthetic CUB tree", file=sys.stderr)
    if train_loader is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_data_")
        t0 = time.perf_counter()
        make_synthetic_cub(tmp.name, args.classes, args.per_class, 500, 375)
        print(f"synthetic CUB: {args.classes // 2} training classes x {args.per_class} JPEGs of 500x375 in "
              f"{tmp.name} ({time.perf_counter() - t0:.0f} s to write)", file=sys.stderr)
        args.dataset = "cub (synthetic)"
        train_loader = loader(tmp.name, "cub")
    train_set = train_loader.dataset

    print(f"{args.dataset} train split: {len(train_set)} images; batch {args.batch_size} (IPC {args.IPC}) x "
          f"{args.views} views at {args.crop_size} px, {args.model} transform; {args.batches} timed batches; "
          f"{os.cpu_count()} CPUs", flush=True)
    print("\n| workers | images/s | batches/s |\n|---|---|---|", flush=True)
    try:
        for w in workers:
            images, batches = measure(train_loader, w, args.batches)
            print(f"| {w} | {images:.1f} | {batches:.2f} |", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print("\nimages/s counts images (each decoded once and augmented into --views views).")


if __name__ == "__main__":
    main()
