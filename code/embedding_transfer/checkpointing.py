"""Resumable training: `checkpoint.pth` in the run folder holds everything the next epoch depends
on, written atomically at the end of every epoch; `--resume PATH` continues from it.

Saved: model, optimizer, lr_scheduler, loss (the loss modules' own state: proxies, regressors,
CRD memory and constants), epoch, best (epoch and recalls so far), args, and every random state
(Python, NumPy, torch, CUDA, and the named generators: sampler, loader, CRD negatives).
Everything is plain data or tensors, so it loads with torch.load(weights_only=True).
"""
import os
import random

import numpy as np
import torch

from . import distributed
from .errors import UserError
from .models.pretrained import read_weight_file
from .storage import save_torch

# Flags that change what the state means: resuming with other values would not continue the run.
MUST_MATCH = ("dataset", "model", "embedding_size", "loss", "optimizer", "batch_size", "IPC", "view",
              "source_model", "source_embedding_size", "seed", "val_classes")


def _numpy_state():
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
            "has_gauss": has_gauss, "gauss": gauss}


def _set_numpy_state(s):
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"]))


def rng_state(generators):
    return {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generators": {k: g.get_state() for k, g in generators.items()}}


def set_rng_state(state, generators):
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


def check_resume_file(path):
    """--resume PATH names a file ('' resumes nothing)."""
    if path and not os.path.isfile(path):
        raise UserError(f"--resume {path} does not exist: pass the checkpoint.pth of the run "
                        "folder to continue.")


class Checkpointer:
    """Saves and restores the training state of one run.

    modules: {'model': ..., 'optimizer': ..., 'lr_scheduler': ..., 'loss': ..., 'scaler': ...}
    (anything with state_dict/load_state_dict; None entries are left out); generators:
    {name: torch.Generator} that drive the data order,
    worker seeds and sampling.
    """

    def __init__(self, run_dir, modules, generators):
        self.path = os.path.join(run_dir, "checkpoint.pth")
        self.modules = {k: m for k, m in modules.items() if m is not None}
        self.generators = {k: g for k, g in generators.items() if g is not None}

    def save(self, epoch, best, args):
        if not distributed.is_main():
            return
        state = {k: m.state_dict() for k, m in self.modules.items()}
        state.update(epoch=epoch, args=vars(args), rng=rng_state(self.generators),
                     best=None if best is None else {"epoch": best[0], "recalls": best[1]})
        save_torch(state, self.path)

    def load(self, path, args):
        """Restore the state saved in `path`; returns (next epoch, best so far)."""
        check_resume_file(path)
        state = read_weight_file(path)
        if not isinstance(state, dict) or not {"epoch", "args", "rng", *self.modules} <= set(state):
            raise UserError(f"--resume {path} is not a training checkpoint of this code (it lacks "
                            "model/optimizer/epoch state); to start from trained weights instead, "
                            "pass them as --source-ckpt or evaluate them with evaluate.py.")
        saved = state["args"]
        diff = [f"--{k.replace('_', '-')} {saved.get(k)!r} (now {getattr(args, k)!r})"
                for k in MUST_MATCH if k in saved and hasattr(args, k) and saved[k] != getattr(args, k)]
        if diff:
            raise UserError(f"--resume {path} was saved by a run with other settings: {', '.join(diff)}. "
                            "Resume with the run's own flags (see args.json in its folder).")
        for k, m in self.modules.items():
            try:
                m.load_state_dict(state[k])
            except (RuntimeError, ValueError, KeyError) as e:
                raise UserError(f"--resume {path}: its {k} state does not fit this run "
                                f"({str(e).splitlines()[0]}).") from None
        set_rng_state(state["rng"], self.generators)
        best = state["best"]
        return state["epoch"] + 1, None if best is None else (best["epoch"], best["recalls"])
