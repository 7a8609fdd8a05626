"""The CPU demo (`make demo`): embedding transfer on the emoji data set in a few minutes, in the
paper's regime (ImageNet-pretrained networks, fine-tuned).

1. render the emoji images into DATA_DIR/emoji (once);
2. fine-tune an ImageNet-pretrained EfficientNet-Lite0 as the source, with Proxy-Anchor;
3. transfer it to a 64-d target with the relaxed contrastive loss;
4. train the same target network with Proxy-Anchor alone, for the same epochs and images;
5. print one Recall@K table with a raw-pixel baseline and the seconds of each stage, and write it
   to LOG_DIR/results.md.

Every stage trains a fixed number of epochs, so the numbers do not depend on the machine's speed
(--time-budget, in seconds per stage, stops each stage earlier on a slow machine instead).

Every training step is an ordinary call of code/train_source.py or code/train_target.py; the
commands are printed so that each can be rerun alone.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

import train_source  # noqa: E402
import train_target  # noqa: E402
from dataset import build_dataset  # noqa: E402
from emoji_prep.baseline import imagenet_features, raw_pixel_embeddings  # noqa: E402  (scripts/ is on sys.path)
from emoji_prep.prepare import prepare_emoji  # noqa: E402
from errors import UserError  # noqa: E402
from metrics import recall_at_k  # noqa: E402

KS = [1, 2, 4, 8]
# Chosen on 2 CPU cores (docs/demo.md): what fits in about 10 minutes from a fresh clone.
MODEL, CROP, LR, SOURCE_EPOCHS, TARGET_EPOCHS = "efficientnet_lite0", 48, 5e-4, 2, 1


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--DATA_DIR", default=os.path.join(ROOT, "data"))
    p.add_argument("--LOG_DIR", default=os.path.join(ROOT, "logs", "demo"))
    p.add_argument("--model", default=MODEL, help="network of the source and the targets")
    p.add_argument("--source-epochs", type=int, default=SOURCE_EPOCHS,
                   help="epochs of the source, the first of which trains only its embedding layer and proxies")
    p.add_argument("--target-epochs", type=int, default=TARGET_EPOCHS, help="epochs of each target")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds after which each stage stops even before its epochs (0: no limit)")
    p.add_argument("--views", type=int, default=1,
                   help="views of each image in the relaxed-contrastive target's batches (the paper's recipe: 2, "
                        "which doubles that stage's time); the baseline always sees one")
    p.add_argument("--crop-size", type=int, default=CROP, help="image size")
    p.add_argument("--source-dim", type=int, default=512)
    p.add_argument("--target-dim", type=int, default=64)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p


def common(args):
    budget = ["--time-budget", str(args.time_budget)] if args.time_budget else []
    return ["--dataset", "emoji", "--DATA_DIR", args.DATA_DIR, "--LOG_DIR", args.LOG_DIR,
            "--model", args.model, "--crop-size", str(args.crop_size), "--bn-freeze", "0", "--lr", str(args.lr),
            "--batch-size", "90", "--workers", str(args.workers), "--seed", str(args.seed), "--wandb", "disabled",
            *budget]


def run(module, argv, title):
    print(f"\n== {title}\n$ python code/{module.__name__}.py {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    _, recalls = module.main(module.get_args_parser().parse_args(argv))
    return [recalls[f"R@{k}"] for k in KS], time.perf_counter() - t0


def table(rows):
    lines = ["| method | network | dim | " + " | ".join(f"R@{k}" for k in KS) + " | seconds |",
             "|---|---|---|" + "---|" * len(KS) + "---|"]
    for name, net, dim, recalls, secs in rows:
        lines.append(f"| {name} | {net} | {dim} | " + " | ".join(f"{100 * r:.1f}" for r in recalls)
                     + f" | {secs:.0f} |")
    return "\n".join(lines)


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
    src, t_src = run(train_source, common(args) + [
        "--embedding-size", str(args.source_dim), "--epochs", str(args.source_epochs), "--warm", "1",
        "--l2-norm", "1", "--save", "1", "--save-dir", ckpt_dir], f"source: Proxy-Anchor, {args.source_dim}-d")
    # The targets keep their best model (RUN/emoji_{model}_best.pth): docs/deploy.md exports and searches with it.
    target = common(args) + ["--embedding-size", str(args.target_dim), "--epochs", str(args.target_epochs),
                             "--warm", "0", "--save", "1"]
    rc, t_rc = run(train_target, target + [
        "--loss", "Relaxed_Contra", "--source-ckpt", ckpt, "--source-model", net,
        "--source-embedding-size", str(args.source_dim),
        "--IPC", "3", "--view", str(args.views)], f"target: relaxed contrastive from the source, {args.target_dim}-d")
    pa, t_pa = run(train_target, target + [
        "--loss", "Proxy_Anchor", "--IPC", "0", "--view", "1", "--target-norm", "1"],
        f"target: Proxy-Anchor alone, {args.target_dim}-d")
    n_vendors = len(eval_set.all_vendors)
    rows = [("raw pixels (32x32)", "-", 3 * 32 * 32, raw, 0),
            ("ImageNet features, no fine-tuning (GAP+GMP)", net, feats.shape[1], imagenet, t_imagenet),
            ("source: Proxy-Anchor (ImageNet init.)", net, args.source_dim, src, t_src),
            ("target: Relaxed_Contra from the source", net, args.target_dim, rc, t_rc),
            ("target: Proxy-Anchor alone (ImageNet init.)", net, args.target_dim, pa, t_pa)]
    text = (f"Emoji retrieval across {n_vendors} vendors ({', '.join(eval_set.all_vendors)}), "
            f"{eval_set.nb_classes()} unseen classes, {len(eval_set)} images; best epoch by R@1 "
            f"(the paper's protocol), {args.crop_size}x{args.crop_size} px; epochs: source "
            f"{args.source_epochs} (1 warm-up), targets {args.target_epochs} each.\n\n{table(rows)}\n")
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
