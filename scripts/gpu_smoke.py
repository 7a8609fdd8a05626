"""Stage 1 of scripts/gpu_check.py: one training step of each paper network, in each precision and
memory layout, built as train_target builds it (the network teaching a copy of itself with
Relaxed_Contra, AdamW, a GradScaler under fp16). One table row per step; a step that raises
becomes a row with its error and the others still run (exit status 1 if any failed).

    python scripts/gpu_smoke.py [--device cuda] [--precisions fp32,bf16,fp16] [--batch-size 30] [--size 224]
"""
import argparse
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from embedding_transfer import distributed  # noqa: E402
from embedding_transfer import train_target  # noqa: E402
from bench_train_step import PRECISIONS, StandInTrainSet, parse_list, synthetic_batch  # noqa: E402
from embedding_transfer.models import build_model  # noqa: E402
from embedding_transfer.optim import build_optimizer, grad_scaler, param_groups  # noqa: E402
from embedding_transfer.training import train_step  # noqa: E402

NETWORKS = ("bn_inception", "resnet18", "resnet50")


def one_step(net, device, precision, channels_last, batch, size):
    """(loss, seconds, peak GiB or None, parameters finite) of the first training step."""
    targs = train_target.get_args_parser().parse_args(
        ["--model", net, "--source-model", net, "--loss", "Relaxed_Contra", "--batch-size", str(batch),
         "--amp", PRECISIONS[precision], "--crop-size", str(size)] + ["--channels-last"] * channels_last)
    torch.manual_seed(0)
    target = distributed.prepare(build_model(net, 512, pretrained=False), device, channels_last).train()
    source = distributed.prepare(build_model(net, 512, pretrained=False, l2_norm=True), device,
                                 channels_last).eval().requires_grad_(False)
    train_set = StandInTrainSet(classes=max(100, batch // targs.IPC))
    objective = train_target.build_objective(targs, target, source, train_set, device)
    optimizer = build_optimizer("adamw", param_groups(target, objective.losses(), targs.lr), targs.lr,
                                targs.weight_decay)
    scaler = grad_scaler(targs.amp, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    loss = train_step(objective, synthetic_batch(batch, targs.view, size, train_set, targs.IPC, pin=cuda),
                      optimizer, scaler).item()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    finite = all(bool(torch.isfinite(p).all()) for p in target.parameters())
    return loss, seconds, peak, finite


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--precisions", default="fp32,bf16,fp16")
    ap.add_argument("--batch-size", type=int, default=30, help="images per batch, 2 views each")
    ap.add_argument("--size", type=int, default=224, help="image side; a multiple of 32 (BN-Inception)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available")
    if args.size % 32:
        sys.exit(f"--size {args.size}: BN-Inception takes multiples of 32")
    networks = parse_list(args.networks, NETWORKS, "network")
    precisions = parse_list(args.precisions, PRECISIONS, "precision")
    device = torch.device(args.device)
    print(f"one step each, batch {args.batch_size} x 2 views at {args.size} px on {device}, torch {torch.__version__}")
    print("\n| network | precision | channels-last | loss | seconds | peak GiB | result |\n|---|---|---|---|---|---|---|",
          flush=True)
    failed = 0
    for net in networks:
        for precision in precisions:
            for cl in (False, True):
                row = f"| {net} | {precision} | {'on' if cl else 'off'} |"
                if device.type == "cpu" and precision == "fp16":
                    print(f"{row} - | - | - | skipped: CPU autocast is bf16 only |", flush=True)
                    continue
                try:
                    loss, secs, peak, finite = one_step(net, device, precision, cl, args.batch_size, args.size)
                except Exception as e:   # one broken combination must not hide the others
                    failed += 1
                    msg = (str(e).strip().splitlines() or [""])[0][:200]
                    print(f"{row} - | - | - | error: {type(e).__name__}: {msg} |", flush=True)
                    continue
                failed += not finite
                mem = f"{peak:.1f}" if peak is not None else "-"
                print(f"{row} {loss:.4f} | {secs:.2f} | {mem} | {'ok' if finite else 'non-finite weights'} |",
                      flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
