"""Reading weight files safely, and fetching ImageNet weights through torch.hub's cache."""
import os
import pickle
import re

import torch

from ..errors import UserError


def read_weight_file(path):
    """torch.load with weights_only=True: a file that carries pickled code is refused, never run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # Keep only what torch objects to: the rest of its message advises ways around the
        # check (weights_only=False, allow-listing), which is what must not be done here.
        m = re.search(r"WeightsUnpickler error: (.*?)(?:\. Please|\.?$)", str(e), re.M)
        detail = m.group(1) if m else "not a pickle of tensors"
        raise UserError(
            f"refusing to load {path}: it is not a plain tensor file ({detail}). Loading it "
            "fully could run code hidden in it. Use a file that holds only tensors (as written "
            "by torch.save(model.state_dict())), e.g. download it again from its official source."
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as e:
        raise UserError(
            f"{path} could not be read as a PyTorch weight file ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); it is probably truncated or corrupt: "
            "delete it and download or copy it again."
        ) from None


def checkpoint_dir():
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def fetch_imagenet_weights(arch, url, check_hash):
    """The state_dict at `url`, from torch.hub's cache, downloading it there on first use.

    check_hash: verify the download against the hash prefix in its file name (torchvision's
    convention; the Cadene files' suffixes are not SHA-256 prefixes).
    """
    folder = checkpoint_dir()
    file_name = os.path.basename(url)
    path = os.path.join(folder, file_name)
    if not os.path.isfile(path):
        match = torch.hub.HASH_REGEX.search(file_name) if check_hash else None
        try:
            os.makedirs(folder, exist_ok=True)
            # Looked up on the module at call time so that tests can replace it.
            torch.hub.download_url_to_file(url, path, match.group(1) if match else None, progress=True)
        except Exception as e:  # no network, HTTP error, hash mismatch, read-only cache...
            raise UserError(
                f"ImageNet weights for {arch} are not available: {file_name} is not in {folder} "
                f"and downloading it from {url} failed ({type(e).__name__}: {e}). Download that "
                f"file on a machine with internet access and put it in {folder} (torch.hub's "
                "cache: $TORCH_HOME/hub/checkpoints; set TORCH_HOME to use another folder)."
            ) from None
    return read_weight_file(path)


def load_into(module, state_dict, source, target):
    """Strict load. Returns None, or (loading nothing) a message listing the differences."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    # BatchNorm fills in a missing num_batches_tracked itself (files from before PyTorch 0.4.1).
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items()
              if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        return describe_mismatch(source, target, missing, unexpected, shapes)
    # A plain dict has no version metadata, which is what lets BatchNorm fill num_batches_tracked.
    module.load_state_dict(dict(state_dict), strict=True)
    return None


def describe_mismatch(source, target, missing, unexpected, shapes, n=3):
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing from it (e.g. {', '.join(missing[:n])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:n])})")
    if shapes:
        parts.append(f"{len(shapes)} shapes differ ({'; '.join(shapes[:n])})")
    return f"{source} does not fit {target}: " + ", ".join(parts)


def squeeze_to(state_dict, reference):
    """Drop leading size-1 dimensions that the model's tensors do not have (Cadene's BN-Inception
    file stores e.g. BatchNorm weights as (1, C))."""
    out = {}
    for k, v in state_dict.items():
        target = reference.get(k)
        if isinstance(v, torch.Tensor) and target is not None and v.dim() > target.dim() and v.shape[0] == 1:
            v = v.squeeze(0)
        out[k] = v
    return out


def load_imagenet_weights(trunk, arch, url, check_hash=False, squeeze=False):
    """Load the ImageNet file at `url` (cached by torch.hub) into `trunk`, strictly."""
    state_dict = fetch_imagenet_weights(arch, url, check_hash)
    if not isinstance(state_dict, dict):
        raise UserError(f"{os.path.join(checkpoint_dir(), os.path.basename(url))} holds a "
                        f"{type(state_dict).__name__}, not a state_dict: delete it and download it again.")
    if squeeze:
        state_dict = squeeze_to(state_dict, trunk.state_dict())
    problem = load_into(trunk, state_dict, os.path.join(checkpoint_dir(), os.path.basename(url)),
                        f"the {arch} network")
    if problem:
        raise UserError(problem + f". It is not the ImageNet file for {arch} from {url}: "
                        "delete it and download it again.")
