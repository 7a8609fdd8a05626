"""Image transforms of the reference (Proxy-Anchor's `make_transform`) and multi-view batching."""
import PIL.Image
import torch
from torchvision import transforms as T

from errors import UserError

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# The Caffe-converted BN-Inception expects BGR pixels in [0, 255] minus the Caffe mean.
INCEPTION_MEAN, INCEPTION_STD = [104, 117, 128], [1, 1, 1]


class RGBToBGR:
    """Swap the channels of a PIL image (done on the image, before any tensor exists)."""

    def __call__(self, im):
        r, g, b = im.convert("RGB").split()
        return PIL.Image.merge("RGB", (b, g, r))


class ScaleTo255:
    """ToTensor gives [0, 1]; the Caffe weights were trained on [0, 255]."""

    def __call__(self, x):
        return x * 255


class MultiView:
    """Apply a random transform `views` times independently: PIL image -> (V, 3, H, W).

    A class rather than a closure so that DataLoader workers can pickle it.
    """

    def __init__(self, transform, views):
        self.transform, self.views = transform, views

    def __call__(self, im):
        return torch.stack([self.transform(im) for _ in range(self.views)])


def build_transform(model_name, train, views=1, crop_size=224, flip=True, scale=(0.08, 1.0)):
    """PIL image -> (3, crop, crop) tensor, or (views, 3, crop, crop) when views > 1.

    train: RandomResizedCrop(crop, scale) (+ RandomHorizontalFlip when `flip`);
    eval:  Resize(crop * 256/224) + CenterCrop(crop), deterministic.
    `bn_inception` gets BGR [0, 255] Caffe normalisation; every other backbone ImageNet mean/std.
    """
    if not isinstance(views, int) or views < 1:
        raise UserError(f"--view must be a positive integer, got {views!r}.")
    if train:
        geometry = [T.RandomResizedCrop(crop_size, scale=scale)] + ([T.RandomHorizontalFlip()] if flip else [])
    else:
        geometry = [T.Resize(round(crop_size * 256 / 224)), T.CenterCrop(crop_size)]
    if model_name == "bn_inception":
        tf = T.Compose([RGBToBGR(), *geometry, T.ToTensor(), ScaleTo255(),
                        T.Normalize(INCEPTION_MEAN, INCEPTION_STD)])
    else:
        tf = T.Compose([*geometry, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return MultiView(tf, views) if views > 1 else tf


def input_space(model_name):
    """(BGR, scale, mean, std) of the pixels a network expects: BN-Inception Caffe's, all others
    torchvision's ImageNet convention (build_transform applies the same)."""
    if model_name == "bn_inception":
        return True, 255.0, INCEPTION_MEAN, INCEPTION_STD
    return False, 1.0, IMAGENET_MEAN, IMAGENET_STD


def convert_input(x, from_model, to_model):
    """A batch (N, 3, H, W) transformed for `from_model` -> the same pixels as `to_model` expects
    them (e.g. a ResNet target's input for a BN-Inception source). Both share the geometry."""
    src, dst = input_space(from_model), input_space(to_model)
    if src == dst:
        return x
    def stats(values):
        return torch.tensor(values, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    bgr, scale, mean, std = src
    pixels = (x * stats(std) + stats(mean)) / scale                    # [0, 1], in src's channel order
    bgr_to, scale_to, mean_to, std_to = dst
    if bgr != bgr_to:
        pixels = pixels.flip(1)
    return (pixels * scale_to - stats(mean_to)) / stats(std_to)


def views_to_batch(x):
    """Collated multi-view images (B, V, 3, H, W) -> view-major batch (V*B, 3, H, W).

    Row v*B + i is view v of image i: all first views, then all second views, so that the losses
    find the two views of image i at rows i and i + B. A (B, 3, H, W) batch (views=1) is
    returned unchanged.
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
