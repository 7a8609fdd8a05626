"""The network of a checkpoint, built as evaluate.py builds it: explicit flags first, then what the
checkpoint recorded (arch, embedding_size, l2_norm: models.weights_record), then the authors'
defaults; and the crop size, which checkpoints do not record, from the run's args.json when the
checkpoint sits in its run folder."""
import hashlib
import json
import os

import torch
import torch.nn as nn

from ..errors import UserError, warn
from ..models import build_model, load_checkpoint_weights
from ..models.pretrained import read_weight_file

# The authors' defaults, for files that do not record their network (evaluate.py and export take them).
FALLBACK = {"arch": "bn_inception", "embedding_size": 512, "l2_norm": False}
DEFAULT_CROP = 224


class EmbeddingOnly(nn.Module):
    """images (N, 3, H, W) -> embeddings (N, d): the network's forward without its feature maps, L2
    normalisation included when the network has it (the run's)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, images):
        return self.net(images)[1]


def inference_parameters(net):
    """Parameters the embedding uses: all but the ImageNet classifier the trunk keeps for loading
    (EmbeddingNet.unused), which an export leaves out."""
    skip = tuple(f"model.{name}." for name in getattr(net, "unused", ()))
    return sum(p.numel() for n, p in net.named_parameters() if not n.startswith(skip))


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity(info, sha):
    """What embedded a set of vectors: the network and the checkpoint's content (an export of the
    checkpoint embeds as it does, so both share it)."""
    return f"{describe(info)}, checkpoint sha256 {sha[:16]}"


def describe(info):
    return f"{info['arch']}-{info['embedding_size']}{' (L2-normalised)' if info['l2_norm'] else ''}"


def network_of(saved, arch=None, embedding_size=None, l2_norm=None):
    """{'arch', 'embedding_size', 'l2_norm'} of a read checkpoint: each given value, else what the
    checkpoint recorded, else the authors' default."""
    given = {"arch": arch, "embedding_size": embedding_size, "l2_norm": l2_norm}
    info = {k: v if v is not None else saved.get(k, FALLBACK[k]) for k, v in given.items()}
    info["l2_norm"] = bool(info["l2_norm"])
    return info


def load_network(ckpt, arch=None, embedding_size=None, l2_norm=None):
    """(network in eval mode, {'arch', 'embedding_size', 'l2_norm'}) of checkpoint `ckpt`; a file that
    does not fit the network is a UserError saying which flags would fit."""
    if not os.path.isfile(ckpt):
        raise UserError(f"checkpoint {ckpt} does not exist: pass a .pth written by training "
                        "(e.g. logs/logs_cub/<run>/cub_bn_inception_best.pth) or a released source.")
    saved = read_weight_file(ckpt)
    saved = saved if isinstance(saved, dict) else {}
    info = network_of(saved, arch, embedding_size, l2_norm)
    net = build_model(info["arch"], info["embedding_size"], pretrained=False, l2_norm=info["l2_norm"])
    load_checkpoint_weights(net, ckpt, flags=("--model", "--embedding-size"))
    info["recorded"] = all(k in saved for k in FALLBACK)
    return net.eval(), info


def run_args_path(ckpt):
    """The args.json of the run that wrote `ckpt`: the file beside it (train_target.py saves its best
    model in its run folder)."""
    return os.path.join(os.path.dirname(os.path.abspath(ckpt)), "args.json")


def run_args(ckpt):
    """The arguments of the run that wrote `ckpt` (its args.json), or {} where there is none."""
    try:
        with open(run_args_path(ckpt)) as f:
            args = json.load(f)
    except (OSError, ValueError):
        return {}
    return args if isinstance(args, dict) else {}


# The authors' defaults of the run settings a checkpoint file does not hold.
RUN_FALLBACK = {"dataset": "cub", "crop_size": DEFAULT_CROP}


def run_setting(ckpt, key, flag):
    """(value, where it came from) of a run setting (`dataset`, `crop_size`) for a checkpoint: the
    flag (None: not given), else the run's args.json beside the file, else the authors' default.
    A flag that differs from the run is said in one warning line: scoring a network on another data
    set or at another size can be meant."""
    name = "--" + key.replace("_", "-")
    trained = run_args(ckpt).get(key)
    if key == "crop_size" and not (isinstance(trained, int) and trained > 0):
        trained = None
    if flag is not None:
        if trained is not None and flag != trained:
            warn(f"{name} {flag}, but the run trained with {trained} ({run_args_path(ckpt)}).")
        return flag, name
    if trained is not None:
        return trained, run_args_path(ckpt)
    return RUN_FALLBACK[key], f"the default (the checkpoint does not record it: pass {name} if it trained at another)"


def crop_size_of(ckpt, flag):
    """(crop size, where it came from), as run_setting (a flag of 0 is none)."""
    return run_setting(ckpt, "crop_size", int(flag) if flag else None)


def check_crop(arch, crop):
    """BN-Inception's ceil-mode pooling needs multiples of 32 (loaders.image_options says the same)."""
    if crop < 1:
        raise UserError(f"--crop-size {crop}: give a positive size.")
    if arch == "bn_inception" and crop % 32:
        raise UserError(f"--crop-size {crop}: BN-Inception's ceil-mode pooling needs a multiple of 32 "
                        f"(e.g. {max(32, crop // 32 * 32)}).")


@torch.no_grad()
def embed_torch(module, batch):
    """float32 (N, d) numpy embeddings of a float32 (N, 3, H, W) numpy batch."""
    return module(torch.from_numpy(batch)).float().numpy()
