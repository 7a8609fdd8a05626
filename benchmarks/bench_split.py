"""Milliseconds of one optimisation step above each --freeze-below split, against the whole network.

What chose the converged miniature's split (docs/mini_reproduction.md): EfficientNet-Lite's
trainable part (the blocks above the split, the head, GAP+GMP, the embedding) run forward and
backward on a batch of cached activations, then AdamW; the whole network does the same on images.
Rows: 90 images x 2 views, as a transfer batch of the paper's recipe.

    python benchmarks/bench_split.py                            # Lite0, 48 px, 1 and 2 threads
    python benchmarks/bench_split.py --model efficientnet_lite2 --crop 96 --threads 2
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "code"))
from embedding_transfer.models import build_model  # noqa: E402


def step_ms(net, x, iters):
    opt = torch.optim.AdamW([p for _, p in net.trainable_parameters()], 1e-4)

    def step():
        _, emb = net(x)
        loss = (emb @ emb.T).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return 1000 * (time.perf_counter() - t0) / iters


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--rows", type=int, default=180)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--splits", nargs="+", default=["stage4", "stage5", "stage6", "head"])
    p.add_argument("--iters", type=int, default=10)
    args = p.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        whole = build_model(args.model, 512, pretrained=True, l2_norm=True).train()
        ms = step_ms(whole, torch.randn(args.rows, 3, args.crop, args.crop), max(2, args.iters // 5))
        print(f"{args.model} {args.crop} px, {threads} thread(s), {args.rows} rows: whole network {ms:.0f} ms/step")
        for split in args.splits:
            net = build_model(args.model, 512, pretrained=True, l2_norm=True).freeze_below(split, cached_input=True)
            with torch.no_grad():
                shape = net.bottom(torch.zeros(1, 3, args.crop, args.crop)).shape[1:]
            t = step_ms(net.train(), torch.randn(args.rows, *shape), args.iters)
            print(f"  above {split:6s} (cached {tuple(shape)}): {t:.1f} ms/step, {ms / t:.0f}x cheaper", flush=True)


if __name__ == "__main__":
    main()
