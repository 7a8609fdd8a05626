"""Embedding networks: backbone + GAP/GMP + Linear embedding, as in the paper's reference.

build_model(name, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False) returns a
module whose forward(x) gives (feats, emb): the backbone's intermediate maps then the pooled
vector `feat`, and the embedding. Each model has `arch`, `embedding_size`, `feature_channels`,
`feature_strides` and `feat_dim`.
"""
from .checkpoint import load_checkpoint_weights, weights_record
from .registry import MODELS, build_model


__all__ = ["MODELS", "build_model", "load_checkpoint_weights", "weights_record"]
