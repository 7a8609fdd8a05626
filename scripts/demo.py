"""The CPU demo (`make demo`): embedding transfer on the emoji data set in about ten minutes, in
the regime of the regime ladder's level stage6_annealed (docs/mini_reproduction.md#the-regime-ladder),
of which it is seed 0 at 64-d: ImageNet-pretrained EfficientNet-Lite0 frozen below --freeze-below
(its last stage and head train), whose outputs for --cache-views fixed views of every image are
computed once; every network trains the part above on a cosine schedule run to its end.

1. render the emoji images into DATA_DIR/emoji (once), and cache the frozen part's outputs;
2. train the source above the split with Proxy-Anchor, and beside it the same 64-d target network
   on Proxy-Anchor alone (the baseline), one thread each (--lanes 2);
3. transfer the source to a 64-d target with the relaxed contrastive loss, on every thread;
4. print one Recall@K table with a raw-pixel baseline and the seconds of each stage, and write it
   to LOG_DIR/results.md.

Steps 1-3 are the spec scripts/specs/demo.toml, run by the experiment runner (docs/experiments.md)
with this script's flags written over its values: each run has its own folder under LOG_DIR, a
second call skips finished runs and resumes an interrupted one, and each command is printed so
that it can be rerun alone.

Each stage has a cosine schedule of --epochs and keeps the epoch with the best R@1 on the 20% of
training classes held out (--val-classes 0.2); --patience N stops a stage after N epochs without a
better one. The numbers do not depend on the machine's speed, though the float rounding of its CPU,
BLAS and thread count can move the best epoch (docs/demo.md); --time-budget, in seconds per stage,
stops each stage earlier on a slow machine instead.
"""
import argparse
import dataclasses
import os
import re
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

from embedding_transfer.dataset import build_dataset  # noqa: E402
from embedding_transfer.errors import UserError  # noqa: E402
from embedding_transfer.experiments import commands, spec as specs, state  # noqa: E402
from embedding_transfer.experiments.local import Local, lane_threads  # noqa: E402
from embedding_transfer.metrics import recall_at_k  # noqa: E402
from embedding_transfer.reporting.runs import find_runs  # noqa: E402
from emoji_prep.baseline import imagenet_features, raw_pixel_embeddings  # noqa: E402  (scripts/ is on sys.path)
from emoji_prep.prepare import prepare_emoji  # noqa: E402

SPEC = os.path.join(ROOT, "scripts", "specs", "demo.toml")
KS = [1, 2, 4, 8]
# The ladder's level stage6_annealed (scripts/specs/ladder/stage6_annealed.toml); docs/demo.md says
# why, and what it costs on 2 CPU cores.
MODEL, CROP, LR, SPLIT, CACHE_VIEWS, EPOCHS, PATIENCE = "efficientnet_lite0", 48, 5e-4, "stage6", 8, 50, 0


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
                   help="each stage stops after this many epochs without a better held-out R@1 (0: never)")
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
    p.add_argument("--lanes", type=int, default=min(2, os.cpu_count() or 1),
                   help="stages side by side while the source trains (2: the source and the baseline, one thread "
                        "each); the target that learns from the source then trains alone, on every thread")
    return p


def overrides(args):
    """This script's flags, as flags that follow (and so win over) the spec's commands."""
    budget = ["--time-budget", str(args.time_budget)] if args.time_budget else []
    return ["--DATA_DIR", args.DATA_DIR, "--model", args.model, "--crop-size", str(args.crop_size), "--lr", str(args.lr),
            "--workers", str(args.workers), "--freeze-below", args.freeze_below,
            "--feature-cache", os.path.join(args.LOG_DIR, "feature_cache"), "--cache-views", str(args.cache_views),
            "--epochs", str(args.epochs), "--patience", str(args.patience), *budget]


def demo_spec(args):
    """scripts/specs/demo.toml with this script's flags written over it."""
    data = specs.read(SPEC)
    flags = overrides(args)
    net, dim = args.model, args.source_dim
    data["out"], data["seeds"] = args.LOG_DIR, [args.seed]
    # The data are rendered by main() already; the cache step stays.
    data["prepare"] = [step + " " + shlex.join(flags + ["--seed", str(args.seed)])
                       for step in data["prepare"] if "prepare_emoji" not in step]
    data["target"]["flags"] = shlex.join(flags + ["--embedding-size", str(args.target_dim), "--source-model", net,
                                                  "--source-embedding-size", str(dim)])
    data["method"]["Relaxed_Contra"]["flags"] += f" --view {args.views}"
    source = data["source"]["lite0"]
    source.update(seed=args.seed, flags=shlex.join(flags + ["--embedding-size", str(dim)]),
                  ckpt=f"{{out}}/pretrained_source/{net}/emoji_{net}_{dim}dim_Proxy_Anchor_ckpt.pth")
    return specs.build(SPEC, data)


def result(spec, run):
    """(test recalls at KS of the selected epoch, seconds, epochs trained, steps trained) of a finished run."""
    found = find_runs([spec.run_dir(run)])[0]
    best = found.selected
    seconds = state.read(spec.run_dir(run)).get("total_seconds", 0)
    return [best[f"R@{k}"] for k in KS], seconds, len(found.epochs), sum(e["steps"] for e in found.epochs)


def table(rows):
    lines = ["| method | network | dim | " + " | ".join(f"R@{k}" for k in KS) + " | epochs (steps) | seconds |",
             "|---|---|---|" + "---|" * len(KS) + "---|---|"]
    for name, net, dim, recalls, secs, trained in rows:
        lines.append(f"| {name} | {net} | {dim} | " + " | ".join(f"{100 * r:.1f}" for r in recalls)
                     + f" | {trained} | {secs:.0f} |")
    return "\n".join(lines)


def machine(lanes):
    """What the numbers depend on besides the seeds: the float rounding of the CPU's kernels (its
    instruction set, the BLAS, the thread count) decides which epoch scores best on the held-out
    classes (and where a patience stop falls), and the vendors installed decide the data."""
    import platform
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or platform.machine()) if os.path.exists("/proc/cpuinfo") else platform.machine()
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    threads = torch.get_num_threads()
    how = (f"{threads} threads (the source and the baseline side by side on {lane_threads(lanes)} "
           f"each, then the transfer on {threads})" if lanes > 1 else f"{threads} threads")
    return (f"Measured on {cpu} ({torch.backends.cpu.get_cpu_capability()}), {how}, "
            f"torch {torch.__version__} ({blas.group(1) if blas else 'unknown'} BLAS); "
            "another CPU, BLAS or thread count can select another epoch of a stage.")


def main(args):
    t_start = time.perf_counter()
    prepare_emoji(args.DATA_DIR)
    eval_set = build_dataset("emoji", args.DATA_DIR, "eval")
    raw = recall_at_k(raw_pixel_embeddings(eval_set, 32), eval_set.ys, KS)
    t0 = time.perf_counter()
    feats = imagenet_features(eval_set, args.model, args.crop_size, workers=args.workers)   # (N, 1280)
    imagenet = recall_at_k(feats, eval_set.ys, KS)
    t_imagenet = time.perf_counter() - t0
    spec, net = demo_spec(args), args.model
    t0 = time.perf_counter()
    commands.prepare(spec)
    t_cache = time.perf_counter() - t0
    for run in spec.runs:
        print(f"$ {run.command}", flush=True)
    # What does not wait for the source trains beside it; the rest (the transfer) after it, alone.
    for runs, lanes in (([r for r in spec.runs if not r.needs], args.lanes), (spec.runs, 1)):
        if Local(dataclasses.replace(spec, runs=runs), lanes=lanes).run() != 0:
            raise UserError(f"a stage of the demo did not finish (above); run the same command again to go on: "
                            f"finished stages are skipped (their folders are in {args.LOG_DIR})")
    # The targets keep their best model (RUN/logs_emoji/<name>/emoji_{model}_best.pth): docs/deploy.md
    # exports and searches with it.
    by_kind = {(r.kind, r.method): r for r in spec.runs}
    source = by_kind[("source", "")]
    if not os.path.isfile(os.path.join(spec.run_dir(source), state.MARKER)):
        raise UserError(f"{source.ckpt} was there before this demo's runs (an earlier demo's?), so it was not "
                        f"trained again and has no scores: remove {args.LOG_DIR} to run the demo afresh")
    src, t_src, *src_trained = result(spec, source)
    rc, t_rc, *rc_trained = result(spec, by_kind[("target", "Relaxed_Contra")])
    pa, t_pa, *pa_trained = result(spec, by_kind[("target", "Proxy_Anchor")])
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
            f"each stage: cosine schedule of {args.epochs} epochs, "
            + (f"stopped after {args.patience} epochs without a better R@1 on held-out training classes"
               if args.patience else "trained to its end")
            + f", test scores of its epoch with the best R@1 on held-out training classes.\n\n{table(rows)}\n\n"
            f"{machine(args.lanes)}\n")
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
