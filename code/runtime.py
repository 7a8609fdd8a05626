"""Where the run executes: device choice, seeding. Kept in one place so entry points stay short."""
import os
import random
import signal
import sys

import numpy as np
import torch

from errors import UserError


def warn(msg):
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def select_device(gpu_id):
    """The reference's `--gpu-id N` -> cuda:N (-1: all GPUs, here the only one); the CPU (after one
    warning) where CUDA is absent."""
    if not torch.cuda.is_available():
        what = "all GPUs" if gpu_id == -1 else f"GPU {gpu_id}"
        warn(f"--gpu-id {gpu_id} asks for {what}, but CUDA is not available (no GPU or a CPU-only torch): "
             "running on the CPU, in one process.")
        return torch.device("cpu")
    if gpu_id == -1:   # all GPUs, and there is one (several relaunch under torchrun: distributed.init)
        gpu_id = 0
    if not 0 <= gpu_id < torch.cuda.device_count():
        raise UserError(f"--gpu-id {gpu_id}: this machine has {torch.cuda.device_count()} CUDA "
                        f"device(s), numbered 0..{torch.cuda.device_count() - 1}.")
    torch.cuda.set_device(gpu_id)
    return torch.device("cuda", gpu_id)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def make_deterministic():
    """Deterministic CUDA kernels (slower): cuDNN without autotuning or nondeterministic
    algorithms, deterministic cuBLAS workspaces; ops without a deterministic CUDA version warn."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def seed_worker(worker_id):
    """DataLoader worker init: numpy/random seeded from the worker's torch seed (which the loader's
    generator fixes), so augmentations are reproducible run to run."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_cli(main, parser, argv=None):
    """Parse, run, and turn expected failures into one message and a non-zero exit.
    SIGTERM (e.g. a cluster's preemption) stops the run like Ctrl-C: cleanly, files intact."""
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        import distributed   # here: distributed imports this module
        distributed.shutdown()
