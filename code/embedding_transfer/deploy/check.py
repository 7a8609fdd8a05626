"""Does an exported model embed as PyTorch does? The embeddings of real photographs, at batch 1 and
at a larger batch (the dynamic axis), compared after L2 normalisation (so that the tolerance means
the same for any network scale): every entry within TOLERANCE."""
import os

import numpy as np
import PIL.Image
import PIL.ImageOps

from ..errors import UserError

from .network import embed_torch
from .preprocess import SpecTransform

TOLERANCE = 1e-4
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_images():
    """Real photographs that every checkout has: the test photo, and matplotlib's sample portrait."""
    paths = [os.path.join(ROOT, "tests", "data", "chelsea.jpg")]
    try:
        import matplotlib.cbook
        paths.append(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    except (ImportError, OSError, ValueError):
        pass
    return [p for p in paths if os.path.isfile(p)]


def check_batch(paths, spec, n=6):
    """(N, 3, crop, crop) float32 batch of the images, completed to n with mirrored and cropped views
    of them (different inputs: the batch axis must not mix images)."""
    if not paths:
        raise UserError("no images to check the export with: pass --check-images FILE_OR_FOLDER.")
    ims = []
    for p in paths:
        try:
            with PIL.Image.open(p) as im:
                ims.append(im.convert("RGB"))
        except OSError as e:
            raise UserError(f"--check-images: cannot read {p} ({e}).") from None
    views = list(ims)
    i = 0
    while len(views) < n:
        im = ims[i % len(ims)]
        w, h = im.size
        views.append(PIL.ImageOps.mirror(im) if i % 2 == 0 else im.crop((w // 8, h // 8, w - w // 8, h - h // 8)))
        i += 1
    tf = SpecTransform(spec)
    return np.stack([tf(im) for im in views[:max(n, len(ims))]])


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def max_difference(reference, runner, batch):
    """Largest |difference| between the L2-normalised embeddings of PyTorch (`reference`, an
    EmbeddingOnly module) and of `runner`, over the batch as a whole and image by image (batch 1)."""
    want = unit(embed_torch(reference, batch))
    whole = unit(runner.embed(batch))
    single = unit(np.concatenate([runner.embed(batch[i:i + 1]) for i in range(len(batch))]))
    if whole.shape != want.shape or single.shape != want.shape:
        raise UserError(f"the exported model gives embeddings of shape {whole.shape[1:]}, PyTorch {want.shape[1:]}.")
    return float(max(np.abs(whole - want).max(), np.abs(single - want).max()))


def require_equal(reference, runner, batch, what, tolerance=TOLERANCE):
    """The largest difference, or a UserError when it exceeds the tolerance."""
    diff = max_difference(reference, runner, batch)
    if not diff <= tolerance:   # also catches NaN
        raise UserError(f"{what}: its embeddings of {len(batch)} real images differ from PyTorch's by up to "
                        f"{diff:.3g} (unit-norm embeddings; at most {tolerance:g} allowed). The export is wrong "
                        "and was not kept: report the network and PyTorch/onnxruntime versions, or try "
                        "--format torchscript.")
    return diff
