"""The CPU demo (`make demo`): embedding transfer on the emoji data set in a few minutes, in the
converged regime of the mini reproduction (docs/mini_reproduction.md): ImageNet-pretrained
EfficientNet-Lite0 frozen below --freeze-below, whose outputs for --cache-views fixed views of
every image are computed once; every network trains the part above until it stops improving.

1. render the emoji images into DATA_DIR/emoji (once), and cache the frozen part's outputs;
2. train the source above the split with Proxy-Anchor;
3. transfer it to a 64-d target with the relaxed contrastive loss;
4. train the same target network with Proxy-Anchor alone, with the same schedule and patience;
5. print one Recall@K table with a raw-pixel baseline and the seconds of each stage, and write it
   to LOG_DIR/results.md.

Each stage has a cosine schedule of --epochs (at least the paper's ~5,900 steps) and stops after
--patience epochs without a better R@1 on the 20% of training classes held out (--val-classes
0.2), so the numbers do not depend on the machine's speed (though the float rounding of its CPU,
BLAS and thread count can move a patience stop by some epochs: docs/demo.md); --time-budget, in
seconds per stage, stops each stage earlier on a slow machine instead.

Every training step is an ordinary call of code/train_source.py or code/train_target.py; the
commands are printed so that each can be rerun alone.
"""
import argparse
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

import build_feature_cache  # noqa: E402  (scripts/ is on sys.path)
from embedding_transfer import train_source  # noqa: E402
from embedding_transfer import train_target  # noqa: E402
from embedding_transfer.dataset import build_dataset  # noqa: E402
from emoji_prep.baseline import imagenet_features, raw_pixel_embeddings  # noqa: E402  (scripts/ is on sys.path)
from emoji_prep.prepare import prepare_emoji  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.metrics import recall_at_k  # noqa: E402
from embedding_transfer.reporting.runs import find_runs  # noqa: E402

KS = [1, 2, 4, 8]
# Chosen on 2 CPU cores (docs/demo.md): what fits in about 10 minutes from a fresh clone.
MODEL, CROP, LR, SPLIT, CACHE_VIEWS, EPOCHS, PATIENCE = "efficientnet_lite0", 48, 5e-4, "head", 8, 110, 10


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--DATA_DIR", default=os.path.join(ROOT, "data"))
    p.add_argument("--LOG_DIR", default=os.path.join(ROOT, "logs", "demo"))
    p.add_argument("--model", default=MODEL, help="network of the source and the targets")
    p.add_argument("--epochs", type=int, default=EPOCHS,
                   help="length of every stage's cosine schedule (the source's first trains only its embedding "
                        "layer and proxies)")
    p.add_argument("--patience", type=int, default=PATIENCE,
                   help="each stage stops after this many epochs without a better held-out R@1")
    p.add_argument("--freeze-below", default=SPLIT, help="where the frozen ImageNet part ends")
    p.add_argument("--cache-views", type=int, default=CACHE_VIEWS, help="fixed augmented views cached per image")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds after which each stage stops even before its epochs (0: no limit)")
    p.add_argument("--views", type=int, default=2,
                   help="views of each image in the relaxed-contrastive target's batches (the paper's 2); the "
                        "baseline sees one")
    p.add_argument("--crop-size", type=int, default=CROP, help="image size")
    p.add_argument("--source-dim", type=int, default=512)
    p.add_argument("--target-dim", type=int, default=64)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--workers", type=int, default=0,
                   help="loader processes of the training stages (the cached activations need none; the cache pass uses at least 2)")
    p.add_argument("--seed", type=int, default=0)
    return p


def common(args):
    budget = ["--time-budget", str(args.time_budget)] if args.time_budget else []
    return ["--dataset", "emoji", "--DATA_DIR", args.DATA_DIR, "--LOG_DIR", args.LOG_DIR,
            "--model", args.model, "--crop-size", str(args.crop_size), "--bn-freeze", "0", "--lr", str(args.lr),
            "--batch-size", "90", "--workers", str(args.workers), "--seed", str(args.seed), "--wandb", "disabled",
            "--freeze-below", args.freeze_below, "--feature-cache", os.path.join(args.LOG_DIR, "feature_cache"),
            "--cache-views", str(args.cache_views), "--val-classes", "0.2", "--epochs", str(args.epochs),
            "--patience", str(args.patience), *budget]


def run(module, argv, title):
    """(test recalls at KS, seconds, epochs trained, steps trained) of one training run."""
    script = module.__name__.rsplit(".", 1)[-1]   # embedding_transfer.train_target -> code/train_target.py
    print(f"\n== {title}\n$ python code/{script}.py {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    args = module.get_args_parser().parse_args(argv)
    _, recalls = module.main(args)
    records = find_runs([module.run_dir(args)])[0].epochs
    return [recalls[f"R@{k}"] for k in KS], time.perf_counter() - t0, len(records), sum(e["steps"] for e in records)


def table(rows):
    lines = ["| method | network | dim | " + " | ".join(f"R@{k}" for k in KS) + " | epochs (steps) | seconds |",
             "|---|---|---|" + "---|" * len(KS) + "---|---|"]
    for name, net, dim, recalls, secs, trained in rows:
        lines.append(f"| {name} | {net} | {dim} | " + " | ".join(f"{100 * r:.1f}" for r in recalls)
                     + f" | {trained} | {secs:.0f} |")
    return "\n".join(lines)


def machine():
    """What the numbers depend on besides the seeds: the float rounding of the CPU's kernels (its
    instruction set, the BLAS, the thread count) decides which epoch a patience stop falls on, and the
    vendors installed decide the data."""
    import platform
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or platform.machine()) if os.path.exists("/proc/cpuinfo") else platform.machine()
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return (f"Measured on {cpu} ({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads, "
            f"torch {torch.__version__} ({blas.group(1) if blas else 'unknown'} BLAS); "
            "another CPU, BLAS or thread count can stop a stage at another epoch.")


def main(args):
    t_start = time.perf_counter()
    prepare_emoji(args.DATA_DIR)
    eval_set = build_dataset("emoji", args.DATA_DIR, "eval")
    raw = recall_at_k(raw_pixel_embeddings(eval_set, 32), eval_set.ys, KS)
    t0 = time.perf_counter()
    feats = imagenet_features(eval_set, args.model, args.crop_size, workers=args.workers)   # (N, 1280)
    imagenet = recall_at_k(feats, eval_set.ys, KS)
    t_imagenet = time.perf_counter() - t0
    ckpt_dir, net = os.path.join(args.LOG_DIR, "pretrained_source"), args.model
    ckpt = os.path.join(ckpt_dir, net, f"emoji_{net}_{args.source_dim}dim_Proxy_Anchor_ckpt.pth")
    t0 = time.perf_counter()
    build_feature_cache.main(train_source.get_args_parser().parse_args(common(args)))
    t_cache = time.perf_counter() - t0
    src, t_src, *src_trained = run(train_source, common(args) + [
        "--embedding-size", str(args.source_dim), "--warm", "1", "--l2-norm", "1", "--lr-schedule", "cosine",
        "--save", "1", "--save-dir", ckpt_dir], f"source: Proxy-Anchor, {args.source_dim}-d")
    # The targets keep their best model (RUN/emoji_{model}_best.pth): docs/deploy.md exports and searches with it.
    target = common(args) + ["--embedding-size", str(args.target_dim), "--warm", "0", "--save", "1"]
    rc, t_rc, *rc_trained = run(train_target, target + [
        "--loss", "Relaxed_Contra", "--source-ckpt", ckpt, "--source-model", net,
        "--source-embedding-size", str(args.source_dim),
        "--IPC", "3", "--view", str(args.views)], f"target: relaxed contrastive from the source, {args.target_dim}-d")
    pa, t_pa, *pa_trained = run(train_target, target + [
        "--loss", "Proxy_Anchor", "--IPC", "0", "--view", "1", "--target-norm", "1"],
        f"target: Proxy-Anchor alone, {args.target_dim}-d")
    n_vendors = len(eval_set.all_vendors)

    def trained(epochs_steps):
        return f"{epochs_steps[0]} ({epochs_steps[1]})"
    rows = [("raw pixels (32x32)", "-", 3 * 32 * 32, raw, 0, "-"),
            ("ImageNet features, no fine-tuning (GAP+GMP)", net, feats.shape[1], imagenet, t_imagenet, "-"),
            (f"source: Proxy-Anchor above {args.freeze_below} (+ {t_cache:.0f} s of feature cache)", net,
             args.source_dim, src, t_src, trained(src_trained)),
            ("target: Relaxed_Contra from the source", net, args.target_dim, rc, t_rc, trained(rc_trained)),
            ("target: Proxy-Anchor alone (ImageNet init.)", net, args.target_dim, pa, t_pa, trained(pa_trained))]
    text = (f"Emoji retrieval across {n_vendors} vendors ({', '.join(eval_set.all_vendors)}), "
            f"{eval_set.nb_classes()} unseen classes, {len(eval_set)} images; {args.crop_size}x{args.crop_size} px; "
            f"{args.model} frozen below {args.freeze_below} ({args.cache_views} cached views per training image); "
            f"each stage: cosine schedule of {args.epochs} epochs, stopped after {args.patience} epochs without a "
            f"better R@1 on held-out training classes, test scores of its best epoch.\n\n{table(rows)}\n\n"
            f"{machine()}\n")
    os.makedirs(args.LOG_DIR, exist_ok=True)
    with open(os.path.join(args.LOG_DIR, "results.md"), "w") as f:
        f.write(text)
    print("\n" + text + f"\nwritten to {os.path.join(args.LOG_DIR, 'results.md')}; "
          f"demo took {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
