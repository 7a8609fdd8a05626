"""Files a run produces, written atomically: a crash while saving leaves the previous file intact."""
import json
import os
import secrets


def _atomic(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # A uniquely named temporary beside the target, created as open() creates files (mode 0666
    # less the umask), not like mkstemp (0600), so checkpoints and results can be shared as usual.
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_file(path, write):
    """write(binary file object) fills `path`, which appears only once complete."""
    _atomic(path, write)
    return path


def save_torch(obj, path):
    import torch   # here, so that the standard-library writers below serve processes without torch
    _atomic(path, lambda f: torch.save(obj, f))


def save_text(text, path):
    _atomic(path, lambda f: f.write(text.encode()))


def save_json(obj, path):
    save_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def save_npz(path, **arrays):
    """numpy arrays in one .npz (np.savez appends .npz to names without it: give the name with it)."""
    import numpy as np
    if not path.endswith(".npz"):
        path += ".npz"
    _atomic(path, lambda f: np.savez(f, **arrays))
    return path


def append_jsonl(obj, path):
    """One line per record; appends are small and line-buffered, so a crash loses at most one."""
    with open(path, "a") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")
