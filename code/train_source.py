"""Train a source embedding network with Proxy-Anchor (or a metric-learning baseline).

    python code/train_source.py --gpu-id 0 --model bn_inception --embedding-size 512 \
        --batch-size 180 --lr 1e-4 --dataset cub --warm 1 --bn-freeze 1 --lr-decay-step 10

Flags and defaults follow the Proxy-Anchor reference (SPEC.md section 4). The best model (by R@1)
is saved as pretrained_source/{model}/{dataset}_{model}_{dim}dim_{loss}_ckpt.pth, the name of the
released checkpoints, so code/train_target.py --source-ckpt takes either.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import distributed  # noqa: E402
from engine import (AMP_DTYPES, OPTIMIZERS, add_run_arguments, build_loaders, build_optimizer,  # noqa: E402
                    check_names, describe_splits, fit, grad_scaler, loader_generators, prepare_network)
from checkpointing import Checkpointer  # noqa: E402
from losses.source_losses import SOURCE_LOSSES, build_source_loss  # noqa: E402
from models import MODELS, build_model, weights_record  # noqa: E402
from runlog import RunLog  # noqa: E402
from runtime import make_deterministic, run_cli, seed_everything  # noqa: E402
from storage import save_torch  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description="Train a source embedding network (Proxy-Anchor recipe).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--LOG_DIR", default="./logs", help="folder of the run folders")
    p.add_argument("--dataset", default="cub", help="cub, cars, SOP or emoji")
    p.add_argument("--DATA_DIR", default="./data", help="folder holding the datasets")
    p.add_argument("--embedding-size", default=512, type=int)
    p.add_argument("--batch-size", default=150, type=int)
    p.add_argument("--epochs", default=60, type=int)
    p.add_argument("--gpu-id", default=0, type=int, help="CUDA device; the CPU when CUDA is absent")
    p.add_argument("--workers", default=4, type=int)
    p.add_argument("--model", default="bn_inception", help=", ".join(MODELS))
    p.add_argument("--loss", default="Proxy_Anchor", help=", ".join(SOURCE_LOSSES))
    p.add_argument("--optimizer", default="adamw", help=", ".join(OPTIMIZERS))
    p.add_argument("--lr", default=1e-4, type=float)
    p.add_argument("--weight-decay", default=1e-4, type=float)
    p.add_argument("--lr-decay-step", default=10, type=int, help="StepLR step (epochs)")
    p.add_argument("--lr-decay-gamma", default=0.5, type=float)
    p.add_argument("--alpha", default=32.0, type=float, help="Proxy-Anchor scale")
    p.add_argument("--mrg", default=0.1, type=float, help="Proxy-Anchor margin")
    p.add_argument("--IPC", default=0, type=int, help="images per class in a batch (0: plain shuffled batches)")
    p.add_argument("--warm", default=1, type=int, help="epochs training only the embedding layer and proxies")
    p.add_argument("--bn-freeze", default=1, type=int)
    p.add_argument("--l2-norm", default=1, type=int, help="1: L2-normalise the embedding")
    p.add_argument("--remark", default="")
    # Additions.
    p.add_argument("--save-dir", default="./pretrained_source", help="where the source checkpoint goes")
    add_run_arguments(p)
    return p


def run_dir(args):
    """The Proxy-Anchor reference's run folder name."""
    name = (f"{args.model}_{args.loss}_embedding{args.embedding_size}_alpha{args.alpha}_mrg{args.mrg}"
            f"_{args.optimizer}_lr{args.lr}_batch{args.batch_size}{args.remark}")
    return os.path.join(args.LOG_DIR, f"logs_{args.dataset}", name)


def checkpoint_path(args):
    return os.path.join(args.save_dir, args.model,
                        f"{args.dataset}_{args.model}_{args.embedding_size}dim_{args.loss}_ckpt.pth")


def main(args):
    check_names((args.model, MODELS, "--model"), (args.loss, SOURCE_LOSSES, "--loss"),
                (args.optimizer, OPTIMIZERS, "--optimizer"))
    seed_everything(args.seed)
    if args.deterministic:
        make_deterministic()
    device = distributed.init(args.gpu_id)
    train_loader, eval_loader, val_loader = build_loaders(args, args.model, 1, args.seed)
    train_set = train_loader.dataset
    model = prepare_network(build_model(args.model, args.embedding_size, pretrained=not args.random_init,
                                        l2_norm=bool(args.l2_norm), bn_freeze=bool(args.bn_freeze)), args, device)
    runner, model = distributed.wrap(model, device, find_unused=args.warm > 0)
    criterion = build_source_loss(args.loss, train_set.nb_classes(), args.embedding_size,
                                  mrg=args.mrg, alpha=args.alpha).to(device)
    embedding = list(model.model.embedding.parameters())
    trunk = [p for p in model.parameters() if all(p is not e for e in embedding)]
    groups = [{"params": trunk}, {"params": embedding, "lr": args.lr}]
    if list(criterion.parameters()):   # proxies: 100x for Proxy-Anchor, 1x for Proxy-NCA (reference)
        groups.append({"params": list(criterion.parameters()),
                       "lr": args.lr * (100 if args.loss == "Proxy_Anchor" else 1)})
    optimizer = build_optimizer(args.optimizer, groups, args.lr, args.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_decay_step, gamma=args.lr_decay_gamma)
    log = RunLog(run_dir(args), args, "EmbeddingTransfer_Source")
    ckpt = checkpoint_path(args)
    print(f"{describe_splits(train_set, eval_loader, val_loader)}; {args.loss}: {args.model}-{args.embedding_size} "
          f"on {device} x "
          f"{distributed.world_size()}; "
          f"logs in {log.dir}, best model -> {ckpt}", flush=True)

    amp = AMP_DTYPES[args.amp]

    def compute_loss(batch):
        x, y, _ = batch
        x = x.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            _, emb = runner(x.contiguous(memory_format=torch.channels_last) if args.channels_last else x)
        # Under torchrun the loss sees the global batch, as in one process (see distributed.py).
        emb, y = distributed.gather_rows(emb.float()), distributed.gather_rows(y.to(device))
        return distributed.scale_grad(criterion(emb, y), distributed.world_size())

    def on_best(epoch, recalls):
        if distributed.is_main():
            save_torch(weights_record(model), ckpt)
        log.save_best(model, f"{args.dataset}_{args.model}", epoch, recalls)

    scaler = grad_scaler(args, device)
    state = {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler, "loss": criterion}
    checkpointer = Checkpointer(log.dir, {**state, **({"scaler": scaler} if scaler else {})},
                                loader_generators(train_loader))
    best = fit(model, compute_loss, train_loader, eval_loader, optimizer, scheduler, device, args, log, on_best,
               checkpointer, clip_value=10, scaler=scaler,
               after_backward=lambda: distributed.sync_loss_grads(criterion, gathered=True), val_loader=val_loader)
    print(f"source network saved as {ckpt}")
    return best


if __name__ == "__main__":
    run_cli(main, get_args_parser())
