"""Embedding transfer for deep metric learning (Kim et al., CVPR 2021), as a library.

    from embedding_transfer.losses import LOSSES, RelaxedContrastiveLoss
    from embedding_transfer.models import build_model

Subpackages: `losses` (the eight transfer losses and the source losses, one per file), `models`
(the backbones and the embedding head), `dataset` (the data sets, transforms and samplers),
`deploy` (export and search), `reporting` (tables, claims, plots). The training loops behind
code/train_target.py and code/train_source.py are `train_target` and `train_source`; the
evaluation behind evaluate.py is `evaluate_checkpoint`. docs/losses.md shows a loss in one's own
training loop. Nothing is imported here, so that `import embedding_transfer.losses` stays light.
"""
__version__ = "1.0.0"
