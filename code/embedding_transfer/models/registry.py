"""The networks by name (the CLI's --model values) and how to build one."""
import numbers

from ..errors import UserError
from .bn_inception import BNInception
from .efficientnet_lite import EfficientNetLite0, EfficientNetLite2
from .narrow_resnet import NarrowResNet, TinyResNet
from .resnet import ResNet18, ResNet50, ResNet101

# name -> constructor(embedding_size, pretrained=False, l2_norm=False, bn_freeze=False)
MODELS = {
    "bn_inception": BNInception,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "resnet101": ResNet101,
    "resnet_narrow": NarrowResNet,  # CPU demo: 32-48 px images, no ImageNet weights
    "resnet_tiny": TinyResNet,      # half as wide: the CPU demo's compression target
    "efficientnet_lite0": EfficientNetLite0,  # ImageNet weights from pip, no download
    "efficientnet_lite2": EfficientNetLite2,
}


def build_model(name, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False):
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}.")
    if not isinstance(embedding_size, numbers.Integral) or isinstance(embedding_size, bool) or embedding_size < 1:
        raise UserError(f"embedding size must be a positive integer, got {embedding_size!r}.")
    return MODELS[name](int(embedding_size), pretrained=pretrained, l2_norm=l2_norm, bn_freeze=bn_freeze)
