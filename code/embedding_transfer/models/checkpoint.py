"""Loading trained weights (e.g. the released Proxy-Anchor source checkpoints) into a model."""
import os

import torch

from ..errors import UserError
from .pretrained import load_into, read_weight_file
from .registry import MODELS


def state_dict_of(ckpt, path):
    """The state_dict in a {'model_state_dict': ...} checkpoint, or the bare state_dict itself."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model_state_dict"), dict):
        sd = ckpt["model_state_dict"]
    elif isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt
    else:
        what = f"a dict with keys {sorted(map(str, ckpt))[:5]}" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise UserError(f"{path} holds {what}, not model weights: expected {{'model_state_dict': ...}} "
                        "or a state_dict. Pass a checkpoint written by this project or a released "
                        "Proxy-Anchor checkpoint.")
    # Saved from nn.DataParallel: same weights under a 'module.' prefix.
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def guess_architecture(sd):
    """(name, embedding_size) of the registered network whose state_dict matches `sd`, or None."""
    w = sd.get("model.embedding.weight")
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        return None
    want = {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    for name, make in MODELS.items():
        with torch.device("meta"):  # keys and shapes only: no memory, no initialisation cost
            net = make(embedding_size=w.shape[0])
        have = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        if have == want:
            return name, w.shape[0]
    return None


def load_checkpoint_weights(model, path, flags=("--model", "--embedding-size")):
    """Load a checkpoint's weights into `model` strictly; returns the whole checkpoint object.

    flags: the command-line options that choose the network and its embedding size, named in the
    error message when the checkpoint was trained with another architecture or size.
    """
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist: check the path (expected a .pth file "
                        "holding {'model_state_dict': ...}, as written by training or released "
                        "with Proxy-Anchor).")
    ckpt = read_weight_file(path)
    sd = state_dict_of(ckpt, path)
    arch, size = getattr(model, "arch", type(model).__name__), getattr(model, "embedding_size", "?")
    built = f"{flags[0]} {arch} {flags[1]} {size}"
    problem = load_into(model, sd, f"checkpoint {path}", f"the network built as {built}")
    if problem:
        guess = guess_architecture(sd)
        if guess:
            hint = f"It was trained as {flags[0]} {guess[0]} {flags[1]} {guess[1]}: pass those."
        else:
            hint = f"Pass the {flags[0]} and {flags[1]} it was trained with, or another checkpoint."
        raise UserError(f"{problem}. {hint}")
    return ckpt


def weights_record(model):
    """What a saved model holds: the reference's {'model_state_dict': ...} plus how to rebuild the
    network (evaluate.py reads these; the reference's loaders ignore them)."""
    return {"model_state_dict": model.state_dict(), "arch": model.arch,
            "embedding_size": model.embedding_size, "l2_norm": bool(model.l2_norm)}
