"""Image transforms of the reference (Proxy-Anchor's `make_transform`), and each network's input
space (BN-Inception's Caffe BGR 0-255, EfficientNet-Lite's (x*255-127)/128, the others' ImageNet RGB)."""
import PIL.Image
import torch
from torchvision import transforms as T

from ..errors import UserError
from ..views import MultiView

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# The Caffe-converted BN-Inception expects BGR pixels in [0, 255] minus the Caffe mean.
INCEPTION_MEAN, INCEPTION_STD = [104, 117, 128], [1, 1, 1]
# EfficientNet-Lite: RGB (x * 255 - 127) / 128 (MEAN_RGB, STDDEV_RGB of TF's efficientnet_lite_builder).
LITE_MEAN, LITE_STD = [127, 127, 127], [128, 128, 128]
# (BGR, scale, mean, std) of the pixels each network expects; any other gets IMAGENET_SPACE.
IMAGENET_SPACE = (False, 1.0, IMAGENET_MEAN, IMAGENET_STD)
INPUT_SPACES = {
    "bn_inception": (True, 255.0, INCEPTION_MEAN, INCEPTION_STD),
    "efficientnet_lite0": (False, 255.0, LITE_MEAN, LITE_STD),
    "efficientnet_lite2": (False, 255.0, LITE_MEAN, LITE_STD),
}


class RGBToBGR:
    """Swap the channels of a PIL image (done on the image, before any tensor exists)."""

    def __call__(self, im):
        r, g, b = im.convert("RGB").split()
        return PIL.Image.merge("RGB", (b, g, r))


class ScaleTo255:
    """ToTensor gives [0, 1]; the Caffe weights were trained on [0, 255]."""

    def __call__(self, x):
        return x * 255


def build_transform(model_name, train, views=1, crop_size=224, flip=True, scale=(0.08, 1.0)):
    """PIL image -> (3, crop, crop) tensor, or (views, 3, crop, crop) when views > 1.

    train: RandomResizedCrop(crop, scale) (+ RandomHorizontalFlip when `flip`);
    eval:  Resize(crop * 256/224) + CenterCrop(crop), deterministic.
    Pixels as input_space(model_name) says: BN-Inception's Caffe BGR [0, 255], EfficientNet-Lite's
    (x * 255 - 127) / 128, every other backbone's ImageNet mean/std.
    """
    if not isinstance(views, int) or views < 1:
        raise UserError(f"--view must be a positive integer, got {views!r}.")
    if train:
        geometry = [T.RandomResizedCrop(crop_size, scale=scale)] + ([T.RandomHorizontalFlip()] if flip else [])
    else:
        geometry = [T.Resize(round(crop_size * 256 / 224)), T.CenterCrop(crop_size)]
    bgr, pixel_scale, mean, std = input_space(model_name)
    tf = T.Compose([*([RGBToBGR()] if bgr else []), *geometry, T.ToTensor(),
                    *([ScaleTo255()] if pixel_scale == 255 else []), T.Normalize(mean, std)])
    return MultiView(tf, views) if views > 1 else tf


def input_space(model_name):
    """(BGR, scale, mean, std) of the pixels a network expects (INPUT_SPACES), torchvision's ImageNet
    convention for all networks not listed there (build_transform applies the same)."""
    return INPUT_SPACES.get(model_name, IMAGENET_SPACE)


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
