"""The CPU demo (`make demo`): embedding transfer on the emoji data set in a few minutes.

1. render the emoji images into DATA_DIR/emoji (once);
2. train a source network with Proxy-Anchor;
3. transfer it to a lower-dimensional target with the relaxed contrastive loss;
4. train the same target network with Proxy-Anchor alone, for the same time;
5. print one Recall@K table with a raw-pixel baseline, and write it to LOG_DIR/results.md.

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
from emoji_prep.baseline import raw_pixel_embeddings  # noqa: E402  (scripts/ is on sys.path)
from emoji_prep.prepare import prepare_emoji  # noqa: E402
from errors import UserError  # noqa: E402
from metrics import recall_at_k  # noqa: E402

KS = [1, 2, 4, 8]


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--DATA_DIR", default=os.path.join(ROOT, "data"))
    p.add_argument("--LOG_DIR", default=os.path.join(ROOT, "logs", "demo"))
    p.add_argument("--source-seconds", type=float, default=150, help="training time of the source")
    p.add_argument("--target-seconds", type=float, default=75, help="training time of each target")
    p.add_argument("--crop-size", type=int, default=32, help="image size")
    p.add_argument("--source-dim", type=int, default=512)
    p.add_argument("--target-dim", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p


def common(args):
    return ["--dataset", "emoji", "--DATA_DIR", args.DATA_DIR, "--LOG_DIR", args.LOG_DIR,
            "--model", "resnet_narrow", "--random-init", "--crop-size", str(args.crop_size),
            "--bn-freeze", "0", "--warm", "0", "--lr", str(args.lr), "--batch-size", "90",
            "--workers", str(args.workers), "--seed", str(args.seed), "--wandb", "disabled", "--epochs", "1000"]


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
    ckpt_dir = os.path.join(args.LOG_DIR, "pretrained_source")
    ckpt = os.path.join(ckpt_dir, "resnet_narrow", f"emoji_resnet_narrow_{args.source_dim}dim_Proxy_Anchor_ckpt.pth")
    src, t_src = run(train_source, common(args) + [
        "--embedding-size", str(args.source_dim), "--time-budget", str(args.source_seconds),
        "--l2-norm", "1", "--save", "1", "--save-dir", ckpt_dir], f"source: Proxy-Anchor, {args.source_dim}-d")
    rc, t_rc = run(train_target, common(args) + [
        "--embedding-size", str(args.target_dim), "--loss", "Relaxed_Contra", "--source-ckpt", ckpt,
        "--source-embedding-size", str(args.source_dim), "--IPC", "3", "--time-budget", str(args.target_seconds)],
        f"target: relaxed contrastive from the source, {args.target_dim}-d")
    pa, t_pa = run(train_target, common(args) + [
        "--embedding-size", str(args.target_dim), "--loss", "Proxy_Anchor", "--IPC", "0", "--view", "1",
        "--target-norm", "1", "--time-budget", str(args.target_seconds)], f"target: Proxy-Anchor alone, {args.target_dim}-d")
    n_vendors = len(eval_set.all_vendors)
    rows = [("raw pixels (32x32)", "-", 3 * 32 * 32, raw, 0),
            ("source: Proxy-Anchor", "resnet_narrow", args.source_dim, src, t_src),
            ("target: Relaxed_Contra from the source", "resnet_narrow", args.target_dim, rc, t_rc),
            ("target: Proxy-Anchor alone", "resnet_narrow", args.target_dim, pa, t_pa)]
    text = (f"Emoji retrieval across {n_vendors} vendors ({', '.join(eval_set.all_vendors)}), "
            f"{eval_set.nb_classes()} unseen classes, {len(eval_set)} images; best epoch by R@1 "
            f"(the paper's protocol), {args.crop_size}x{args.crop_size} px.\n\n{table(rows)}\n")
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
