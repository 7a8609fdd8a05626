"""Train a target embedding network from a frozen source network (embedding transfer).

    python code/train_target.py --gpu-id 0 --loss Relaxed_Contra --model bn_inception \
        --embedding-size 512 --dataset cub \
        --source-ckpt pretrained_source/bn_inception/cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth

Flags, defaults and output files follow the authors' code (LabelRelaxation-CVPR21), except that
--IPC 3 --view 2, which every paper command passes, are the defaults here; docs/training.md lists them.
"""
import argparse
import os

import torch

from . import distributed
from .checkpointing import Checkpointer, check_resume_file
from .errors import Problems, UserError
from .evaluation import recall_ks, score_epoch
from .loaders import build_loaders, image_splits, describe_splits
from .losses import LOSSES, build_loss, needs_source
from .models import MODELS, build_model, load_checkpoint_weights
from .objectives import TransferObjective, pair_feature_maps
from .optim import AMP_DTYPES, OPTIMIZERS, Warmup, build_optimizer, grad_scaler, param_groups
from .options import add_run_arguments, check_names, check_split_flags, split_network
from .records import selection_key
from .runlog import RunLog
from .runtime import make_deterministic, run_cli, seed_everything
from .training import EpochLoop, train_one_epoch

# The reference's pairing (ResNet targets learn from ResNet-50-512, others from BN-Inception-512);
# the CPU demo network learns from its own kind.
DEFAULT_SOURCE = {"resnet18": "resnet50", "resnet50": "resnet50", "resnet101": "resnet50",
                  "resnet_narrow": "resnet_narrow", "resnet_tiny": "resnet_narrow",
                  "efficientnet_lite0": "efficientnet_lite0", "efficientnet_lite2": "efficientnet_lite2"}


def get_args_parser():
    p = argparse.ArgumentParser(description="Embedding transfer: train a target network from a source network.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    # The authors' flags, with the defaults of their train_target.py (LabelRelaxation-CVPR21), but for
    # --IPC and --view: the paper's commands' values (docs/training.md).
    p.add_argument("--LOG_DIR", default="./logs", help="folder of the run folders")
    p.add_argument("--save", default=0, type=int, help="1: save the best model and its results file")
    p.add_argument("--workers", default=8, type=int, help="data-loading processes")
    p.add_argument("--gpu-id", default=0, type=int, help="CUDA device; -1: all visible GPUs (DDP, one process "
                   "each, as torchrun); the CPU when CUDA is absent")
    p.add_argument("--DATA_DIR", default="./data", help="folder holding the datasets")
    p.add_argument("--dataset", default="cub", help="cub, cars, SOP, Inshop or emoji")
    p.add_argument("--embedding-size", default=512, type=int, help="target embedding size")
    p.add_argument("--batch-size", default=90, type=int, help="images per batch (each in --view views)")
    p.add_argument("--epochs", default=90, type=int, help="training epochs (the cosine schedule's length)")
    p.add_argument("--model", default="bn_inception", help=f"target network: {', '.join(MODELS)}")
    p.add_argument("--loss", default="Relaxed_Contra", help=f"transfer loss: {', '.join(LOSSES)}")
    p.add_argument("--optimizer", default="adamw", help=", ".join(OPTIMIZERS))
    p.add_argument("--lr", default=1e-4, type=float, help="learning rate of the target network")
    p.add_argument("--weight-decay", default=1e-4, type=float, help="the optimizer's weight decay")
    p.add_argument("--IPC", default=3, type=int, help="images per class in a batch")
    p.add_argument("--bn-freeze", default=0, type=int, help="1: BatchNorm statistics and affine frozen "
                   "(affine unfrozen again after --warm epochs, as the authors do)")
    p.add_argument("--warm", default=0, type=int, help="epochs training only the embedding layer (and proxies); "
                   "then every parameter trains")
    p.add_argument("--target-norm", default=0, type=int, help="1: L2-normalise the target embedding "
                   "(advisable with --loss Proxy_Anchor, which learns cosines, as train_source.py does)")
    p.add_argument("--source-norm", default=1, type=int, help="1: L2-normalise the source embedding")
    p.add_argument("--score-normalised", action="store_true",
                   help="also score the test split on L2-normalised target embeddings (norm/R@k in metrics.jsonl): "
                        "a diagnostic, since the relaxed losses leave the norm free and the paper scores raw distances")
    p.add_argument("--source-ckpt", default="", help="the trained source network ({'model_state_dict': ...})")
    p.add_argument("--view", default=2, type=int, help="augmented views of each image per batch")
    p.add_argument("--delta", default=1.0, type=float, help="margin of the relaxed losses")
    p.add_argument("--sigma", default=1.0, type=float, help="kernel bandwidth of the relaxed losses")
    p.add_argument("--alpha", default=32.0, type=float, help="Proxy-Anchor scale (FitNet/Attention/CRD/Proxy_Anchor)")
    p.add_argument("--mrg", default=0.1, type=float, help="Proxy-Anchor margin")
    p.add_argument("--remark", default="", help="suffix of the run folder name")
    # Additions; the defaults keep the reference's behaviour.
    p.add_argument("--source-model", default=None,
                   help="source network (default: resnet50 for ResNet targets, bn_inception otherwise)")
    p.add_argument("--source-embedding-size", default=None, type=int, help="default: 512")
    p.add_argument("--nce-k", default=4096, type=int, help="CRD negatives per sample")
    add_run_arguments(p)
    return p


def default_source(args):
    if args.source_model is None:
        args.source_model = DEFAULT_SOURCE.get(args.model, "bn_inception")
    if args.source_embedding_size is None:
        args.source_embedding_size = 512


def run_dir(args):
    """The reference's run folder name."""
    name = (f"{args.model}_{args.loss}_embedding{args.embedding_size}_{args.optimizer}_lr{args.lr}"
            f"_batch{args.batch_size}{args.remark}")
    return os.path.join(args.LOG_DIR, f"logs_{args.dataset}", name)


def check_args(args):
    check_names((args.loss, LOSSES, "--loss"), (args.model, MODELS, "--model"),
                (args.source_model, MODELS, "--source-model"), (args.optimizer, OPTIMIZERS, "--optimizer"))
    check_split_flags(args, [MODELS[args.model]] + ([MODELS[args.source_model]] if needs_source(args.loss) else []))


def build_source(args, device):
    if not args.source_ckpt:
        raise UserError(f"--loss {args.loss} learns from a source network: pass --source-ckpt "
                        "(download the released ones with scripts/download_pretrained_source_models.sh, "
                        "or train one with code/train_source.py).")
    source = build_model(args.source_model, args.source_embedding_size, pretrained=False,
                         l2_norm=bool(args.source_norm))
    load_checkpoint_weights(source, args.source_ckpt, flags=("--source-model", "--source-embedding-size"))
    if getattr(args, "freeze_below", ""):   # its maps and (with a cache) its input are those above the split too
        source.freeze_below(args.freeze_below, cached_input=bool(args.feature_cache))
    source = distributed.prepare(source, device, args.channels_last, args.sync_bn).eval()
    for p in source.parameters():
        p.requires_grad_(False)
    return source


# The training recipe: the methods the authors always train together with Proxy-Anchor on the
# target embedding (the others learn from the source alone).
WITH_PROXY_ANCHOR = ("FitNet", "Attention", "CRD")


def build_objective(args, target, source, train_set, device, runner=None):
    """The training loss; `runner` is what the objective calls to run the target (its DDP wrapper
    under torchrun; default: the target itself)."""
    pairs = pair_feature_maps(target, source, LOSSES[args.loss]) if source is not None else []
    # The run's quantities; each loss takes the ones its `options` name (losses.build_loss).
    run = dict(sigma=args.sigma, delta=args.delta, nb_classes=train_set.nb_classes(),
               sz_embed=args.embedding_size, mrg=args.mrg, alpha=args.alpha, t_dim=target.feat_dim,
               s_dim=source.feat_dim if source is not None else None, n_data=len(train_set) * args.view,
               nce_k=args.nce_k, channels=[(target.feature_channels[i], source.feature_channels[j]) for i, j in pairs])

    def loss(name):
        return build_loss(name, **{k: run[k] for k in LOSSES[name].options})

    proxy_anchor = loss("Proxy_Anchor") if args.loss in WITH_PROXY_ANCHOR else None
    slot_labels = torch.as_tensor(train_set.ys, dtype=torch.long).repeat(args.view)
    return TransferObjective(loss(args.loss), runner or target, source, args.view, slot_labels, pairs, proxy_anchor,
                             nce_k=args.nce_k, generator=torch.Generator().manual_seed(args.seed + 2),
                             amp_dtype=AMP_DTYPES[args.amp], channels_last=args.channels_last,
                             input_models=None if args.feature_cache else (args.model, args.source_model)).to(device)


def main(args):
    default_source(args)
    check_args(args)
    seed_everything(args.seed)
    if args.deterministic:
        make_deterministic()
    device = distributed.init(args.gpu_id)
    # Every input (data, ImageNet weights, source, checkpoint to resume) checked before training,
    # and all that is missing said at once.
    problems = Problems()
    with problems.check():
        splits = image_splits(args, args.model, args.view)
    with problems.check():
        target = build_model(args.model, args.embedding_size, pretrained=not args.random_init,
                             l2_norm=bool(args.target_norm), bn_freeze=bool(args.bn_freeze))
    with problems.check():
        source = build_source(args, device) if needs_source(args.loss) else None
    with problems.check():
        check_resume_file(args.resume)
    problems.raise_any()
    target = distributed.prepare(split_network(target, args), device, args.channels_last, args.sync_bn)
    loaders = build_loaders(args, splits, args.seed,
                            [(args.model, target)] + ([(args.source_model, source)] if source is not None else []))
    warmup = Warmup(target, args.warm)
    runner, target = distributed.wrap(target, device, find_unused=args.warm > 0)
    objective = build_objective(args, target, source, loaders.train.dataset, device, runner)
    optimizer = build_optimizer(args.optimizer, param_groups(target, objective.losses(), args.lr), args.lr,
                                args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    scaler = grad_scaler(args.amp, device)
    log = RunLog(run_dir(args), args, "EmbeddingTransfer_Target")
    checkpointer = Checkpointer(log.dir, dict(model=target, optimizer=optimizer, lr_scheduler=scheduler,
                                              loss=objective, scaler=scaler),
                                {**loaders.generators, "crd": objective.generator})
    print(f"{describe_splits(loaders)}; {args.loss}: {args.model}-{args.embedding_size}"
          + (f" from {args.source_model}-{args.source_embedding_size}" if source is not None else "")
          + f" on {device} x {distributed.world_size()}; logs in {log.dir}", flush=True)

    with EpochLoop(args, optimizer, checkpointer, log, selection_key(loaders.val is not None)) as loop:
        for epoch in loop:
            warmup.set(epoch)
            target.train()
            loss, stopped, steps = train_one_epoch(objective, loaders.train, optimizer, epoch, loop.deadline, scaler)
            scheduler.step()
            scores = score_epoch(target, loaders, loop.best, device, recall_ks(args.dataset), args.channels_last,
                                 normalised=args.score_normalised)
            if loop.record(epoch, loss, scores, stopped, steps) and args.save:
                log.save_best(target, os.path.join(log.dir, f"{args.dataset}_{args.model}_best.pth"), epoch, scores)
    return loop.best


if __name__ == "__main__":
    run_cli(main, get_args_parser())
