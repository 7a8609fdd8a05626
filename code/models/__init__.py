"""Embedding networks: backbone + GAP/GMP + Linear embedding, as in the paper's reference.

build_model(name, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False) returns a
module whose forward(x) gives (feats, emb): the backbone's intermediate maps then the pooled
vector `feat`, and the embedding. Each model has `arch`, `embedding_size`, `feature_channels`,
`feature_strides` and `feat_dim`.
"""
import numbers

from errors import UserError
from .bn_inception import BNInception
from .checkpoint import load_checkpoint_weights, weights_record
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
}


def build_model(name, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False):
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}.")
    if not isinstance(embedding_size, numbers.Integral) or isinstance(embedding_size, bool) or embedding_size < 1:
        raise UserError(f"embedding size must be a positive integer, got {embedding_size!r}.")
    return MODELS[name](int(embedding_size), pretrained=pretrained, l2_norm=l2_norm, bn_freeze=bn_freeze)


__all__ = ["MODELS", "build_model", "load_checkpoint_weights", "weights_record"]
