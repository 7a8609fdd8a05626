"""The embeddings file (`evaluate.py --save-embeddings`, `scripts/retrieve.py --save-gallery`): one .npz
with `embeddings` (N, d) float32, and where known `labels` (N,), `paths` (N,) of the images, for a
query/gallery split `is_query` (N,) bool, and `model` (a string naming the network that embedded
them). evaluate.py's query/gallery mode and retrieve.py read it."""
import os
import zipfile

import numpy as np

from .errors import UserError
from .storage import save_npz

PER_ITEM = ("labels", "paths", "is_query")
KEYS = ("embeddings", *PER_ITEM, "model")


def save_embeddings(path, embeddings, labels=None, paths=None, is_query=None, model=None):
    arrays = {"embeddings": np.asarray(embeddings, dtype=np.float32)}
    for key, value in (("labels", labels), ("paths", paths), ("is_query", is_query)):
        if value is not None:
            arrays[key] = np.array([str(p) for p in value]) if key == "paths" else np.asarray(value)
    if model is not None:
        arrays["model"] = np.array(str(model))
    return save_npz(path, **arrays)


def load_embeddings(path, flag, need_labels=False):
    """{key: array} of an embeddings file; `flag` (the option that named it) goes in the errors."""
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path} does not exist: pass a .npz written by evaluate.py --save-embeddings "
                        "or scripts/retrieve.py --save-gallery.")
    try:
        with np.load(path, allow_pickle=False) as z:   # no pickled objects: a file cannot run code
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{flag} {path} is not a readable .npz file ({e}): write it again with "
                        "evaluate.py --save-embeddings.") from None
    X = data.get("embeddings")
    if X is None or X.ndim != 2 or not np.issubdtype(X.dtype, np.floating):
        raise UserError(f"{flag} {path} holds no (N, d) float array 'embeddings' (it has {sorted(data)}): "
                        "pass a file written by evaluate.py --save-embeddings.")
    if need_labels and "labels" not in data:
        raise UserError(f"{flag} {path} has no 'labels': scoring needs the class of every item "
                        "(evaluate.py --save-embeddings writes them).")
    for key in PER_ITEM:
        if key in data and len(data[key]) != len(X):
            raise UserError(f"{flag} {path}: '{key}' has {len(data[key])} entries for {len(X)} embeddings; "
                            "the file is inconsistent: write it again.")
    return {k: v for k, v in data.items() if k in KEYS}
