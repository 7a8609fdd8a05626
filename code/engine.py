"""Pieces shared by the training entry points: data loaders, optimizer, one epoch, evaluation."""
import os
import sys
import time

import torch
from tqdm import tqdm

import distributed
from dataset import BalancedBatchSampler, RankBatchSampler, build_dataset, build_transform, check_images
from errors import UserError
from metrics import map_at_r, recall_at_k
from runlog import WANDB_MODES
from runs import VAL
from runtime import seed_worker

OPTIMIZERS = ("adamw", "sgd", "adam", "rmsprop")


def add_run_arguments(p):
    """Options both training entry points add to the reference's flags (defaults keep its behaviour)."""
    p.add_argument("--seed", default=0, type=int, help="seed of data order, augmentation and initialisation")
    p.add_argument("--random-init", action="store_true", help="start from random weights, not ImageNet")
    p.add_argument("--crop-size", default=224, type=int, help="image size (resize keeps the 256/224 ratio)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels (slower); CPU runs are deterministic without it")
    p.add_argument("--resume", default="", help="checkpoint.pth of an interrupted run: continue it")
    p.add_argument("--time-budget", default=0, type=float,
                   help="seconds of training after which the run evaluates and stops (0: no limit)")
    p.add_argument("--wandb", default="auto", choices=WANDB_MODES,
                   help="auto: online with credentials, otherwise offline")
    p.add_argument("--amp", default="none", choices=tuple(AMP_DTYPES),
                   help="mixed precision for the networks (losses stay float32); fp16 uses a GradScaler")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory layout (faster on GPUs)")
    p.add_argument("--sync-bn", action="store_true", help="under torchrun: BatchNorm statistics over all processes")
    p.add_argument("--val-classes", default=0.0, type=float, metavar="F",
                   help="hold out this fraction of the training classes and pick the best epoch by their R@1 "
                        "(the test split is then scored only at the epochs that improve it); 0: pick the "
                        "best epoch by test R@1, the paper's protocol")


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def prepare_network(model, args, device):
    """Move to the device, with --channels-last and --sync-bn applied."""
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.sync_bn and distributed.world_size() > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def grad_scaler(args, device):
    """A GradScaler for --amp fp16 (float16 gradients underflow without it), else None."""
    return torch.amp.GradScaler(device.type) if args.amp == "fp16" else None


def check_names(*choices):
    """choices: (value, valid names, flag) triples; an unknown value is a UserError listing the valid ones."""
    for name, valid, flag in choices:
        if name not in valid:
            raise UserError(f"unknown {flag} {name!r}; valid: {', '.join(valid)}")


def recall_ks(dataset_name):
    """The K list the paper reports: 1,10,100,1000 on SOP, 1,2,4,8 elsewhere."""
    return [1, 10, 100, 1000] if dataset_name == "SOP" else [1, 2, 4, 8]


def image_options(args):
    """Transform keyword arguments: the crop size, and for emoji no flip (left and right arrows are
    different classes) and milder crops (a small crop of a pictogram shows nothing recognisable)."""
    if args.crop_size % 32 and "bn_inception" in (args.model, getattr(args, "source_model", None)):
        raise UserError(f"--crop-size {args.crop_size}: BN-Inception's ceil-mode pooling needs a multiple of "
                        f"32 (e.g. {max(32, args.crop_size // 32 * 32)}).")
    if args.dataset == "emoji":
        return dict(crop_size=args.crop_size, flip=False, scale=(0.5, 1.0))
    return dict(crop_size=args.crop_size)


VAL_SEED = 0   # the held-out classes do not change with --seed: runs of several seeds share them


def hold_out_classes(train_set, fraction, transform):
    """(training part, validation part) of the training split: round(fraction * classes) classes
    drawn with a fixed seed go to validation, with `transform`; both parts are relabelled 0..C-1."""
    classes = sorted(set(train_set.ys))
    n_val = round(fraction * len(classes))
    if not 0 < fraction < 1 or n_val < 2 or len(classes) - n_val < 2:
        raise UserError(f"--val-classes {fraction:g} of {len(classes)} training classes holds out {n_val}: "
                        "give a fraction in (0, 1) that leaves at least 2 classes on each side (e.g. 0.1 or "
                        "0.2), or 0 to select the epoch on the test split.")
    order = torch.randperm(len(classes), generator=torch.Generator().manual_seed(VAL_SEED)).tolist()
    held = {classes[i] for i in order[:n_val]}
    return (train_set.subset_classes([c for c in classes if c not in held], train_set.transform),
            train_set.subset_classes(held, transform))


def build_loaders(args, model_name, views, seed):
    """(training loader, evaluation loader, validation loader or None).

    Training: class-balanced with --IPC, else shuffled; multi-view. Evaluation: the eval split.
    Validation (--val-classes F): the held-out fraction F of the training classes, with the
    evaluation transform. Under torchrun each process loads its share of every global batch and
    of the evaluation and validation splits."""
    opts = image_options(args)
    eval_tf = build_transform(model_name, False, **opts)
    train_set = build_dataset(args.dataset, args.DATA_DIR, "train",
                              build_transform(model_name, True, views=views, **opts))
    eval_set = build_dataset(args.dataset, args.DATA_DIR, "eval", eval_tf)
    for split in (train_set, eval_set):   # a broken image fails now, not after an epoch of training
        check_images(split.im_paths, f"{args.dataset} {split.mode}", workers=max(args.workers, 4))
    val_set = None
    if args.val_classes:
        train_set, val_set = hold_out_classes(train_set, args.val_classes, eval_tf)
    if len(train_set) < args.batch_size:
        raise UserError(f"the training split has {len(train_set)} images, fewer than --batch-size "
                        f"{args.batch_size}. Lower --batch-size.")
    if args.IPC:
        batches = BalancedBatchSampler(train_set.ys, args.batch_size, args.IPC,
                                       generator=torch.Generator().manual_seed(seed))
    else:   # the reference's plain shuffled batches (train_source without --IPC)
        shuffle = torch.utils.data.RandomSampler(train_set, generator=torch.Generator().manual_seed(seed))
        batches = torch.utils.data.BatchSampler(shuffle, args.batch_size, drop_last=True)
    sampler = RankBatchSampler(batches, torch.Generator().manual_seed(seed + 1), distributed.rank(),
                               distributed.world_size())
    common = dict(num_workers=args.workers, pin_memory=torch.cuda.is_available(), worker_init_fn=seed_worker)
    train_loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, **common)
    val_loader = build_eval_loader(val_set, args.batch_size, args.workers) if val_set is not None else None
    return train_loader, build_eval_loader(eval_set, args.batch_size, args.workers), val_loader


def describe_splits(train_set, eval_loader, val_loader):
    """'train N images (C classes), [validation ...,] eval M images' for the start-up line."""
    val = "" if val_loader is None else (
        f", validation {val_loader.full_size} images ({val_loader.dataset.dataset.nb_classes()} held-out "
        "training classes; they select the epoch)")
    return (f"train {len(train_set)} images ({train_set.nb_classes()} classes){val}, "
            f"eval {eval_loader.full_size} images")


def loader_generators(train_loader, crd=None):
    """The generators behind a run's randomness besides the global ones: batch order (sampler),
    augmentation seeds, CRD's negatives."""
    outer = train_loader.batch_sampler
    inner = outer.batch_sampler
    order = getattr(inner, "generator", None) or getattr(getattr(inner, "sampler", None), "generator", None)
    return {"sampler": order, "augment": outer.generator, "crd": crd}


def build_optimizer(name, param_groups, lr, weight_decay, adam_eps=1.0):
    """The authors' optimizers. adam_eps: train_target's `adam` has eps=1 (sic), train_source's
    Adam's default 1e-8."""
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, eps=adam_eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, alpha=0.9, weight_decay=weight_decay, momentum=0.9)
    raise UserError(f"unknown --optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


class Warmup:
    """The authors' warm-up (--warm W > 0): before epoch W only the network's embedding layer
    learns (the losses' own parameters, e.g. proxies, always do); from epoch W every parameter
    learns, BatchNorm's affine parameters included even under --bn-freeze 1 (their recipe, which
    trained the released sources; the statistics stay frozen, those layers staying in eval mode).
    Build it before DDP wraps the model: DDP only synchronises parameters that require gradients
    when it is built."""

    def __init__(self, model, epochs):
        self.epochs = epochs
        self.trunk = [p for n, p in model.trainable_parameters() if not n.startswith("model.embedding.")]
        self.set(epochs)

    def set(self, epoch):
        if self.epochs > 0:
            for p in self.trunk:
                p.requires_grad_(epoch >= self.epochs)


def train_one_epoch(compute_loss, loader, optimizer, epoch, clip_value=None, deadline=None, after_backward=None,
                    scaler=None, desc="train"):
    """One pass over `loader`; compute_loss(batch) -> scalar loss. Returns (mean loss, stopped):
    stopped is True when the time.perf_counter() `deadline` ended the epoch early.

    after_backward(): e.g. synchronising loss-module gradients across processes; scaler: a
    GradScaler for fp16. A non-finite loss stops the run (UserError naming epoch and step):
    stepping on it would destroy the weights.
    """
    total, steps, seen, t0 = 0.0, 0, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"{desc} epoch {epoch}", leave=False, dynamic_ncols=True, mininterval=1.0,
               disable=None if distributed.is_main() else True)
    stopped = False
    for step, batch in enumerate(bar):
        if deadline is not None and distributed.any_rank(time.perf_counter() > deadline):
            stopped = True
            break
        loss = compute_loss(batch)
        if not torch.isfinite(loss):
            raise UserError(f"the loss became {loss.item()} at epoch {epoch}, step {step}: training "
                            "diverged. Lower --lr, or check the inputs (source checkpoint, data).")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if after_backward is not None:
            after_backward()
        if clip_value is not None:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_value_(params, clip_value)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        total += loss.item()
        steps += 1
        seen += batch[0].shape[0] * (batch[0].shape[1] if batch[0].dim() == 5 else 1) * distributed.world_size()
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                        img_s=f"{seen / (time.perf_counter() - t0):.0f}")
    bar.close()
    return distributed.mean_across_ranks(total / max(steps, 1)), stopped


def build_eval_loader(eval_set, batch_size, workers):
    """Loader of this process's share of an evaluation split: rank r embeds images r, r+W, ...;
    evaluate() gathers them back into dataset order."""
    shard = torch.utils.data.Subset(eval_set, range(distributed.rank(), len(eval_set), distributed.world_size()))
    loader = torch.utils.data.DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         pin_memory=torch.cuda.is_available())
    loader.full_size = len(eval_set)
    return loader


@torch.no_grad()
def predict_batchwise(model, loader, device, channels_last=False):
    """Embeddings (N, d), labels (N,) and dataset indices (N,) of a loader, model in eval mode."""
    was_training = model.training
    model.eval()
    embs, labels, indices = [], [], []
    for x, y, i in tqdm(loader, desc="embed", leave=False, dynamic_ncols=True, mininterval=1.0,
                        disable=None if distributed.is_main() else True):
        x = x.to(device, non_blocking=True)
        _, emb = model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
        embs.append(emb.float().cpu())
        labels.append(torch.as_tensor(y))
        indices.append(torch.as_tensor(i))
    model.train(was_training)
    return torch.cat(embs), torch.cat(labels), torch.cat(indices)


def evaluate(model, loader, device, ks, channels_last=False, return_embeddings=False):
    """{'R@k': recall for each k, 'MAP@R': ..., 'RP': R-Precision} on the loader's split (all
    processes' shares together). R@1 stays the key that selects the best epoch (the paper's).
    return_embeddings: also return the (N, d) embeddings and (N,) labels, in dataset order."""
    X, T, index = predict_batchwise(model, loader, device, channels_last)
    X, T = distributed.gather_embeddings(X, T, index, loader.full_size)
    scores = {f"R@{k}": r for k, r in zip(ks, recall_at_k(X, T, ks))}
    scores["MAP@R"], scores["RP"] = map_at_r(X, T)
    return (scores, X, T) if return_embeddings else scores


def format_recalls(recalls):
    """'R@1 71.23, R@2 ...' (percentages)."""
    return ", ".join(f"{k} {100 * v:.2f}" for k, v in recalls.items())



def score_epoch(model, eval_loader, val_loader, best, device, ks, channels_last=False):
    """The epoch's scores: test R@k, MAP@R, RP; with a validation loader, the same on it under
    'val/' keys, and the test scores only when validation R@1 improves on `best`."""
    if val_loader is None:
        return evaluate(model, eval_loader, device, ks, channels_last)
    record = {VAL + k: v for k, v in evaluate(model, val_loader, device, ks, channels_last).items()}
    if best is None or record[VAL + "R@1"] > best[1][VAL + "R@1"]:
        record.update(evaluate(model, eval_loader, device, ks, channels_last))
    return record


def fit(model, compute_loss, train_loader, eval_loader, optimizer, scheduler, device, args, log, on_best,
        checkpointer, warmup, clip_value=None, after_backward=None, scaler=None, val_loader=None):
    """The epoch loop of both entry points: train, step the schedule, evaluate, call
    on_best(epoch, scores) whenever the selection score improves, and save the resumable state
    (checkpointer) after every epoch. The selection score is test R@1 (the paper's protocol), or
    with a val_loader (--val-classes) R@1 on the held-out training classes. Starts from --resume
    when given; stops after --epochs, or once --time-budget seconds of training have passed.
    Returns (best epoch, its scores). `model` is the network itself (not its DDP wrapper):
    warm-up, evaluation and saving use it.
    """
    ks = recall_ks(args.dataset)
    key = VAL + "R@1" if val_loader is not None else "R@1"
    start, best = 0, None
    if args.resume:
        start, best = checkpointer.load(args.resume, args)
        log.resume_at(start)
        print(f"resumed from {args.resume}: continuing at epoch {start}", flush=True)
    deadline = time.perf_counter() + args.time_budget if args.time_budget > 0 else None
    epoch = start
    try:
        for epoch in range(start, args.epochs):
            if deadline is not None and distributed.any_rank(time.perf_counter() > deadline):
                break
            t0 = time.perf_counter()
            warmup.set(epoch)
            model.train()
            lr = optimizer.param_groups[0]["lr"]
            loss, stopped = train_one_epoch(compute_loss, train_loader, optimizer, epoch, clip_value=clip_value,
                                            deadline=deadline, after_backward=after_backward, scaler=scaler)
            scheduler.step()
            scores = score_epoch(model, eval_loader, val_loader, best, device, ks, args.channels_last)
            log.epoch({"epoch": epoch, "loss": loss, "lr": lr, **scores, "time": time.perf_counter() - t0})
            if best is None or scores[key] > best[1][key]:
                best = (epoch, scores)
                on_best(epoch, scores)
            checkpointer.save(epoch, best, args)
            if stopped:
                print(f"--time-budget {args.time_budget:g} s reached during epoch {epoch}.", flush=True)
                break
    except (KeyboardInterrupt, UserError):
        done = os.path.isfile(checkpointer.path) and epoch > 0
        print(f"\nstopped during epoch {epoch}. " + (
            f"The state after epoch {epoch - 1} is in {checkpointer.path}: to continue, run the same "
            f"command with --resume {checkpointer.path}" if done else "No epoch was completed."),
            file=sys.stderr, flush=True)
        raise
    finally:
        log.finish()
    if best is not None:
        print(f"best epoch {best[0]}: {format_recalls(best[1])}", flush=True)
    return best
