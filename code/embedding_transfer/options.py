"""Command-line options that both training entry points add to the authors' flags (the defaults
keep the authors' behaviour), and the check of names against a registry."""
from .errors import UserError
from .models.head import check_splittable
from .optim import AMP_DTYPES
from .runlog import WANDB_MODES


def add_run_arguments(p):
    p.add_argument("--seed", default=0, type=int, help="seed of data order, augmentation and initialisation")
    p.add_argument("--random-init", action="store_true", help="start from random weights, not ImageNet")
    p.add_argument("--crop-size", default=224, type=int, help="image size (resize keeps the 256/224 ratio)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels (slower); CPU runs are deterministic without it")
    p.add_argument("--resume", default="", help="checkpoint.pth of an interrupted run: continue it")
    p.add_argument("--time-budget", default=0, type=float,
                   help="seconds of training after which the run evaluates and stops (0: no limit)")
    p.add_argument("--patience", default=0, type=int, metavar="N",
                   help="stop once N epochs in a row have not improved the selection recall (R@1 of the "
                        "--val-classes split, else of the test split); 0: train all --epochs")
    p.add_argument("--min-epochs", default=0, type=int, metavar="M",
                   help="--patience stops a run only once it has trained M epochs, so that an early dip "
                        "(transfer targets first lose held-out R@1) cannot end it; 0: from the first epoch")
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
    # The converged miniature (docs/mini_reproduction.md): a frozen bottom, its outputs cached.
    p.add_argument("--freeze-below", default="", metavar="STAGE",
                   help="freeze the network below this stage (EfficientNet-Lite: stage0..stage6, head) with its "
                        "ImageNet weights and statistics; only the stages above it, pooling and the embedding train")
    p.add_argument("--feature-cache", default="", metavar="DIR",
                   help="with --freeze-below: compute the frozen part's outputs for --cache-views fixed augmented "
                        "views of every training image (and the evaluation view of every image) once, keep them "
                        "in DIR, and train on them instead of images")
    p.add_argument("--cache-views", default=8, type=int, metavar="V",
                   help="fixed augmented views per training image in the feature cache (each batch draws --view of them)")
    p.add_argument("--cache-seed", default=0, type=int, help="seed of the cached views (the same for every run seed)")


def check_split_flags(args, network_classes):
    """--freeze-below / --feature-cache / --cache-views, checked before any network is built.
    network_classes: the classes of the networks the run splits."""
    if args.feature_cache and not args.freeze_below:
        raise UserError("--feature-cache caches the frozen part of the network: give --freeze-below STAGE too.")
    if not args.freeze_below:
        return
    if args.random_init:
        raise UserError("--freeze-below keeps the network's ImageNet weights below the split: drop --random-init.")
    if args.cache_views < 1:
        raise UserError(f"--cache-views must be a positive integer, got {args.cache_views}.")
    for cls in network_classes:
        check_splittable(cls)


def split_network(network, args):
    """--freeze-below (and --feature-cache: cached input) applied to a freshly built network."""
    if args.freeze_below:
        network.freeze_below(args.freeze_below, cached_input=bool(args.feature_cache))
    return network


def check_names(*choices):
    """choices: (value, valid names, flag) triples; an unknown value is a UserError listing the valid ones."""
    for name, valid, flag in choices:
        if name not in valid:
            raise UserError(f"unknown {flag} {name!r}; valid: {', '.join(valid)}")
