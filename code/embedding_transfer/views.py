"""The multi-view batch layout, in one place.

`--view V` gives each image V independently augmented views. The loader yields them as
(B, V, 3, H, W) (MultiView); the networks and losses see them view-major, (V*B, ...): all first
views, then all second views, so that row i and row i + B are two views of image i (Relaxed MS
relies on it). Per-image values (labels, dataset indices) are repeated to match, and under
torchrun the rows of every process are gathered into the order one process would have.
"""
import torch

from . import distributed


class MultiView:
    """Apply a random transform `views` times independently: PIL image -> (V, 3, H, W).

    A class rather than a closure so that DataLoader workers can pickle it.
    """

    def __init__(self, transform, views):
        self.transform, self.views = transform, views

    def __call__(self, im):
        return torch.stack([self.transform(im) for _ in range(self.views)])


def views_to_batch(x):
    """Collated multi-view images (B, V, 3, H, W) -> view-major batch (V*B, 3, H, W).

    Row v*B + i is view v of image i. A (B, 3, H, W) batch (views=1) is returned unchanged.
    """
    if x.dim() == 4:
        return x
    return x.transpose(0, 1).reshape(-1, *x.shape[2:])


def repeat_for_views(t, views, offset=0):
    """Per-image values (B,) -> per-row values (V*B,) matching `views_to_batch`'s order.

    Labels: `repeat_for_views(labels, V)` (== labels.repeat(V)). Dataset indices for CRD's memory
    banks: pass offset=len(dataset) so that view v of image i gets its own slot i + v*len(dataset)
    (the reference reused one slot for both views).
    """
    return torch.cat([t + v * offset for v in range(views)]) if offset else t.repeat(views)


def gather_views(x, views=1):
    """This process's rows (V*b, ...) -> the global batch (V*W*b, ...) of all W processes in the
    order one process would have: view v of every process's images, process by process. This
    process's rows keep their gradient. Without torchrun: x itself."""
    parts = distributed.all_gather_keep_grad(x)
    if len(parts) == 1:
        return x
    parts = [p.reshape(views, -1, *p.shape[1:]) for p in parts]        # each (V, b, ...)
    return torch.cat(parts, dim=1).reshape(-1, *x.shape[1:])           # (V*W*b, ...)


def images_in(batch_x):
    """Images (all views counted) in a collated batch (B, 3, H, W) or (B, V, 3, H, W), or in the
    first of a (target's, source's) pair of such batches."""
    if isinstance(batch_x, (tuple, list)):
        batch_x = batch_x[0]
    return batch_x.shape[0] * (batch_x.shape[1] if batch_x.dim() == 5 else 1)
