"""Command-line options that both training entry points add to the authors' flags (the defaults
keep the authors' behaviour), and the check of names against a registry."""
from errors import UserError
from optim import AMP_DTYPES
from runlog import WANDB_MODES


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


def check_names(*choices):
    """choices: (value, valid names, flag) triples; an unknown value is a UserError listing the valid ones."""
    for name, valid, flag in choices:
        if name not in valid:
            raise UserError(f"unknown {flag} {name!r}; valid: {', '.join(valid)}")
