"""Images per second of one training step of train_target against the bare passes of its two networks.

Full step: training.train_step, as train_target runs it (source forward without grad, target
forward and backward, the transfer loss (float32), the finite-loss check, AdamW step), loss.item(); the batch comes
from the CPU (pinned on CUDA) like the loader's output (B, V, 3, H, W), labels in groups of
--IPC (3) images per class, dataset indices. Bare passes: source forward (no grad) + target
forward and backward on the same batch already on the device, without loss or optimizer.
ratio = step time / bare time; goal <= 1.10 (loss, data handling and bookkeeping add <= 10%).

Built as train_target builds it (its flags' defaults, build_objective, optim.param_groups, AdamW):
precision fp32 / bf16 / fp16 is its --amp none / bf16 / fp16 (autocast networks, float32 losses;
fp16 with a GradScaler; CPU autocast is bf16 only), --channels-last passes through. A stand-in
training split of CUB's size replaces the dataset; random weights (speed does not depend on them).

    python benchmarks/bench_train_step.py                      # CUDA if present, else CPU
    python benchmarks/bench_train_step.py --devices cpu --batch-size 16 --size 112 --iters 2
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "code"))
from embedding_transfer import train_target  # noqa: E402
from embedding_transfer import distributed  # noqa: E402
from embedding_transfer.losses import LOSSES  # noqa: E402
from embedding_transfer.models import build_model  # noqa: E402
from embedding_transfer.optim import build_optimizer, grad_scaler, param_groups  # noqa: E402
from embedding_transfer.training import train_step  # noqa: E402

# name -> (target, target dim, source, source dim)
SETTINGS = {
    "bninception-self": ("bn_inception", 512, "bn_inception", 512),
    "resnet50-to-resnet18": ("resnet18", 128, "resnet50", 512),
}
PRECISIONS = {"fp32": "none", "bf16": "bf16", "fp16": "fp16"}   # -> train_target --amp


class StandInTrainSet:
    """What the objective reads of the training split: CUB's size (5,864 images, 100 classes)."""

    def __init__(self, n=5864, classes=100):
        self.ys = [i % classes for i in range(n)]

    def __len__(self):
        return len(self.ys)

    def nb_classes(self):
        return len(set(self.ys))


def synthetic_batch(batch, views, size, train_set, ipc, pin=False):
    """(x (B, V, 3, H, W), labels (B,), index (B,)) like the balanced loader's output."""
    n, c = len(train_set), train_set.nb_classes()
    labels = torch.randperm(c)[torch.arange(batch) // ipc % c]
    index = labels + c * torch.randint(n // c, (batch,))   # an image of that class (ys[i] = i % c)
    x = torch.randn(batch, views, 3, size, size)
    return (x.pin_memory() if pin else x), labels, index


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fns, device, warmup, iters, budget):
    """{name: median seconds} of the callables `fns`, called in turn (so that a machine's changing
    load affects all alike): `warmup` untimed rounds, then `iters` timed ones, fewer once `budget`
    seconds have passed (at least one)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times, start = {name: [] for name in fns}, time.perf_counter()
    for i in range(iters):
        if i and time.perf_counter() - start > budget:
            break
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def bench(setting, device, precision, args):
    t_name, t_dim, s_name, s_dim = SETTINGS[setting]
    targs = train_target.get_args_parser().parse_args(
        ["--model", t_name, "--embedding-size", str(t_dim), "--source-model", s_name,
         "--source-embedding-size", str(s_dim), "--loss", args.loss, "--batch-size", str(args.batch_size),
         "--view", str(args.views), "--amp", PRECISIONS[precision], "--crop-size", str(args.size)]
        + ["--channels-last"] * args.channels_last)
    torch.manual_seed(0)
    target = distributed.prepare(build_model(t_name, t_dim, pretrained=False, l2_norm=bool(targs.target_norm),
                                             bn_freeze=bool(targs.bn_freeze)), device, args.channels_last).train()
    source = distributed.prepare(build_model(s_name, s_dim, pretrained=False, l2_norm=bool(targs.source_norm)),
                                 device, args.channels_last).eval().requires_grad_(False)
    train_set = StandInTrainSet(classes=max(100, -(-args.batch_size // targs.IPC)))
    objective = train_target.build_objective(targs, target, source, train_set, device)
    optimizer = build_optimizer("adamw", param_groups(target, objective.losses(), targs.lr), targs.lr,
                                targs.weight_decay)
    scaler = grad_scaler(targs.amp, device)
    x, labels, index = synthetic_batch(args.batch_size, args.views, args.size, train_set, targs.IPC,
                                       pin=device.type == "cuda")
    x_dev = x.to(device).transpose(0, 1).reshape(-1, *x.shape[2:])   # view-major, as the objective makes it
    if args.channels_last:
        x_dev = x_dev.contiguous(memory_format=torch.channels_last)
    amp = objective.amp_dtype

    def step():   # the trainers' own step
        train_step(objective, (x, labels, index), optimizer, scaler).item()

    def bare():   # in the objective's order: target forward, source forward, backward
        target.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            _, emb = target(x_dev)
            with torch.no_grad():
                source(x_dev)
        emb.backward(torch.ones_like(emb))

    cuda = device.type == "cuda"
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    iters = args.iters if args.iters is not None else (10 if cuda else 2)
    budget = args.budget if args.budget is not None else (30.0 if cuda else 60.0)
    t = median_seconds({"step": step, "bare": bare}, device, warmup, iters, budget)
    rows = args.batch_size * args.views
    return rows / t["step"], rows / t["bare"], t["step"] / t["bare"]


def parse_list(text, valid, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in valid]
    if bad:
        sys.exit(f"unknown {what} {', '.join(bad)}; valid: {', '.join(valid)}")
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    ap.add_argument("--batch-size", type=int, default=90, help="images per batch (each in --views views)")
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--size", type=int, default=224, help="image side in pixels")
    ap.add_argument("--loss", default="Relaxed_Contra", choices=[n for n in LOSSES if n != "Proxy_Anchor"])
    ap.add_argument("--channels-last", action="store_true", help="train_target --channels-last")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of: {', '.join(SETTINGS)}")
    ap.add_argument("--devices", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="comma list of cpu, cuda (default: cuda when available, else cpu)")
    ap.add_argument("--precisions", default=None,
                    help="comma list of fp32, bf16, fp16 (default: fp32,bf16 on cpu; fp32,bf16,fp16 on cuda)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations (default: 10 on cuda, 2 on cpu)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed iterations (default: 3 on cuda, 1 on cpu)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds after which a measurement stops iterating (default: 30 on cuda, 60 on cpu)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = parse_list(args.settings, SETTINGS, "setting")
    devices = parse_list(args.devices, ("cpu", "cuda"), "device")
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("--devices cuda: CUDA is not available")
    if args.size % 32 and any("bn_inception" in SETTINGS[s] for s in settings):
        size = -(-args.size // 32) * 32   # BN-Inception's ceil-mode pools need a multiple of 32
        print(f"note: --size {args.size} -> {size} (BN-Inception takes multiples of 32)", file=sys.stderr)
        args.size = size

    print(f"batch {args.batch_size} x {args.views} views at {args.size} px, loss {args.loss}"
          f"{', channels-last' if args.channels_last else ''}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    print("\n| setting | device | precision | step img/s | bare img/s | ratio |\n|---|---|---|---|---|---|", flush=True)
    for dev in devices:
        device = torch.device(dev)
        default = "fp32,bf16" if dev == "cpu" else "fp32,bf16,fp16"
        precisions = parse_list(args.precisions or default, PRECISIONS, "precision")
        for precision in precisions:
            if dev == "cpu" and precision == "fp16":
                print("note: skipping fp16 on cpu (CPU autocast uses bf16)", file=sys.stderr)
                continue
            for setting in settings:
                step, bare, ratio = bench(setting, device, precision, args)
                print(f"| {setting} | {dev} | {precision} | {step:.1f} | {bare:.1f} | {ratio:.3f} |", flush=True)
                if dev == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
