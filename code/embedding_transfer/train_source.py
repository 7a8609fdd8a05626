"""Train a source embedding network with Proxy-Anchor (or a metric-learning baseline).

    python code/train_source.py --gpu-id 0 --model bn_inception --embedding-size 512 --l2-norm 1 \
        --batch-size 180 --lr 1e-4 --dataset cub --warm 1 --bn-freeze 1 --lr-decay-step 10 --save 1

Flags and defaults are the authors' (their train_source.py); scripts/source_*.sh pass
each released network's recipe. With --save 1 the best model (by R@1) is saved as
pretrained_source/{model}/{dataset}_{model}_{dim}dim_{loss}_ckpt.pth, the name of the released
checkpoints, so code/train_target.py --source-ckpt takes either.
"""
import argparse
import os

import torch

from . import distributed
from .checkpointing import Checkpointer, check_resume_file
from .errors import Problems, warn
from .evaluation import recall_ks, score_epoch
from .loaders import build_loaders, image_splits, describe_splits
from .losses.source_losses import SOURCE_LOSSES, build_source_loss
from .models import MODELS, build_model, weights_record
from .objectives import SourceObjective
from .optim import AMP_DTYPES, OPTIMIZERS, Warmup, build_optimizer, grad_scaler, param_groups
from .options import add_run_arguments, check_names, check_split_flags, split_network
from .records import selection_key
from .runlog import RunLog
from .runtime import make_deterministic, run_cli, seed_everything
from .storage import save_torch
from .training import EpochLoop, train_one_epoch


def get_args_parser():
    # The authors' flags and defaults (their train_source.py); the scripts in
    # scripts/source_*.sh pass the recipe of each released network explicitly.
    p = argparse.ArgumentParser(description="Train a source embedding network (Proxy-Anchor recipe).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    p.add_argument("--LOG_DIR", default="./pretrained_source",
                   help="run folders go in LOG_DIR/logs_{dataset}/, the best model in LOG_DIR/{model}/")
    p.add_argument("--save", default=0, type=int,
                   help="1: save the best model as LOG_DIR/{model}/{dataset}_{model}_{dim}dim_{loss}_ckpt.pth "
                        "and its _results.txt (the released checkpoints' names)")
    p.add_argument("--dataset", default="cub", help="cub, cars, SOP, Inshop or emoji")
    p.add_argument("--DATA_DIR", default="./data", help="folder holding the datasets")
    p.add_argument("--embedding-size", default=512, type=int, help="embedding size")
    p.add_argument("--batch-size", default=90, type=int, help="images per batch")
    p.add_argument("--epochs", default=60, type=int, help="training epochs")
    p.add_argument("--gpu-id", default=0, type=int, help="CUDA device; -1: all visible GPUs (DDP, one process "
                   "each, as torchrun); the CPU when CUDA is absent")
    p.add_argument("--workers", default=8, type=int, help="data-loading processes")
    p.add_argument("--model", default="bn_inception", help=", ".join(MODELS))
    p.add_argument("--loss", default="Proxy_Anchor", help=", ".join(SOURCE_LOSSES))
    p.add_argument("--optimizer", default="adamw", help=", ".join(OPTIMIZERS))
    p.add_argument("--lr", default=1e-4, type=float, help="learning rate of the network (Proxy-Anchor's proxies: 100x)")
    p.add_argument("--weight-decay", default=1e-4, type=float, help="the optimizer's weight decay")
    p.add_argument("--lr-decay-step", default=10, type=int, help="StepLR step (epochs)")
    p.add_argument("--lr-decay-gamma", default=0.5, type=float, help="StepLR factor")
    p.add_argument("--lr-schedule", default="step", choices=("step", "cosine"),
                   help="step: StepLR(--lr-decay-step, --lr-decay-gamma), the authors'; cosine: annealed to 0 over "
                        "--epochs, as train_target.py does")
    p.add_argument("--alpha", default=32.0, type=float, help="Proxy-Anchor scale")
    p.add_argument("--mrg", default=0.1, type=float, help="Proxy-Anchor margin")
    p.add_argument("--IPC", default=0, type=int, help="images per class in a batch (0: plain shuffled batches)")
    p.add_argument("--warm", default=0, type=int, help="epochs training only the embedding layer and proxies; "
                   "then every parameter trains (BatchNorm's affine too, as the authors do)")
    p.add_argument("--bn-freeze", default=0, type=int, help="1: BatchNorm statistics and affine frozen")
    p.add_argument("--l2-norm", default=0, type=int, help="1: L2-normalise the embedding")
    p.add_argument("--remark", default="", help="suffix of the run folder name")
    # Additions.
    p.add_argument("--save-dir", default=None, help="where --save puts the best model (default: --LOG_DIR)")
    p.add_argument("--save-epochs", default=(), type=epoch_list, metavar="N[,N...]",
                   help="also keep the model after N epochs of training, beside the best one as "
                        "..._epochN_ckpt.pth (a weaker source than the best, for --source-ckpt)")
    add_run_arguments(p)
    p.set_defaults(seed=1)   # the authors seed train_source with 1 (train_target with 0)
    return p


def run_dir(args):
    """The Proxy-Anchor reference's run folder name."""
    name = (f"{args.model}_{args.loss}_embedding{args.embedding_size}_alpha{args.alpha}_mrg{args.mrg}"
            f"_{args.optimizer}_lr{args.lr}_batch{args.batch_size}{args.remark}")
    return os.path.join(args.LOG_DIR, f"logs_{args.dataset}", name)


def epoch_list(text):
    """'20,40' -> (20, 40): epoch counts, each >= 1."""
    try:
        epochs = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give epoch counts separated by commas, e.g. 20,40") from None
    if any(e < 1 for e in epochs):
        raise argparse.ArgumentTypeError(f"{text!r}: an epoch count is at least 1")
    return epochs


def checkpoint_path(args, epochs=None):
    """The best model's file (the released checkpoints' name), or the one kept after `epochs` epochs."""
    at = f"_epoch{epochs}" if epochs is not None else ""
    return os.path.join(args.save_dir or args.LOG_DIR, args.model,
                        f"{args.dataset}_{args.model}_{args.embedding_size}dim_{args.loss}{at}_ckpt.pth")


def main(args):
    check_names((args.model, MODELS, "--model"), (args.loss, SOURCE_LOSSES, "--loss"),
                (args.optimizer, OPTIMIZERS, "--optimizer"))
    check_split_flags(args, [MODELS[args.model]])
    seed_everything(args.seed)
    if args.deterministic:
        make_deterministic()
    device = distributed.init(args.gpu_id)
    problems = Problems()   # every missing input said at once, as in train_target
    with problems.check():
        splits = image_splits(args, args.model, 1)
    with problems.check():
        model = build_model(args.model, args.embedding_size, pretrained=not args.random_init,
                            l2_norm=bool(args.l2_norm), bn_freeze=bool(args.bn_freeze))
    with problems.check():
        check_resume_file(args.resume)
    problems.raise_any()
    model = distributed.prepare(split_network(model, args), device, args.channels_last, args.sync_bn)
    loaders = build_loaders(args, splits, args.seed, [(args.model, model)])
    warmup = Warmup(model, args.warm)
    runner, model = distributed.wrap(model, device, find_unused=args.warm > 0)
    criterion = build_source_loss(args.loss, nb_classes=loaders.train.dataset.nb_classes(),
                                  sz_embed=args.embedding_size, mrg=args.mrg, alpha=args.alpha)
    objective = SourceObjective(criterion, runner, AMP_DTYPES[args.amp], args.channels_last).to(device)
    optimizer = build_optimizer(args.optimizer, param_groups(model, objective.losses(), args.lr), args.lr,
                                args.weight_decay, adam_eps=1e-8)
    if args.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_decay_step, gamma=args.lr_decay_gamma)
    scaler = grad_scaler(args.amp, device)
    log = RunLog(run_dir(args), args, "EmbeddingTransfer_Source")
    checkpointer = Checkpointer(log.dir, dict(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                              loss=objective, scaler=scaler), loaders.generators)
    ckpt = checkpoint_path(args)
    print(f"{describe_splits(loaders)}; {args.loss}: {args.model}-{args.embedding_size} on {device} x "
          f"{distributed.world_size()}; logs in {log.dir}"
          + (f", best model -> {ckpt}" if args.save else " (--save 0: best model not kept)"), flush=True)

    with EpochLoop(args, optimizer, checkpointer, log, selection_key(loaders.val is not None)) as loop:
        trained = loop.start
        for epoch in loop:
            warmup.set(epoch)
            model.train()
            loss, stopped, steps = train_one_epoch(objective, loaders.train, optimizer, epoch, loop.deadline, scaler,
                                            clip_value=10)   # the Proxy-Anchor recipe
            scheduler.step()
            scores = score_epoch(model, loaders, loop.best, device, recall_ks(args.dataset), args.channels_last)
            if loop.record(epoch, loss, scores, stopped, steps) and args.save:
                log.save_best(model, ckpt, epoch, scores, results_path=ckpt.replace("_ckpt.pth", "_results.txt"))
            trained = epoch + 1 - stopped   # a budget-cut epoch is not a whole one
            if trained in args.save_epochs and distributed.is_main():
                save_torch(weights_record(model), checkpoint_path(args, trained))
    missed = [e for e in args.save_epochs if e > trained]
    if missed and distributed.is_main():
        warn(f"--save-epochs {','.join(map(str, missed))}: the run ended after {trained} epochs; "
             "no model kept for those.")
    return loop.best


if __name__ == "__main__":
    run_cli(main, get_args_parser())
