"""How an entry point runs: seeding, determinism, loader-worker seeds, and run_cli (parsing, the
one-line errors, signals, the process group's end)."""
import os
import random
import signal
import sys

import numpy as np
import torch

from . import distributed
from .errors import UserError


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
        distributed.shutdown()
