"""Losses that make the target (student) network learn from the source (teacher), plus
Proxy-Anchor. SPEC.md section 1 defines each one.

`LOSSES` maps the CLI name to the nn.Module class; `build_loss(name, **kwargs)` builds one.

Calling convention, so that a training loop treats every loss alike:
  * `cls.inputs` is the tuple of batch quantities that `forward` takes, in order, named from
    `INPUT_NAMES`:
        t_emb, s_emb      target / source embeddings (N, d); s_emb L2-normalised by the caller
                          (the relaxed losses normalise it again, as the reference does)
        labels            class labels (N,)
        t_maps, s_maps    lists of intermediate feature maps (N, C, H, W), paired in order
        t_pool, s_pool    pooled feature vectors before the embedding layer (N, C)
        index             memory slot of each sample (N,)             (CRD)
        contrast_index    (N, nce_k + 1) slots, column 0 = index      (CRD; see
                          `losses.crd.sample_contrast_index`)
    `call_loss(loss, batch)` calls `loss` with those entries of the dict `batch`.
  * `cls.with_proxy_anchor` is True for the losses that the reference always trains together
    with Proxy_Anchor on the target embedding (FitNet, Attention, CRD).
Loss modules may own parameters (FitNet regressors, CRD embeddings, proxies) and buffers (CRD
memory): give them to the optimizer and save them in checkpoints.
"""
from errors import UserError

from .attention import AttentionLoss
from .crd import CRDLoss, sample_contrast_index
from .darkrank import DarkRankLoss
from .distance import pdist
from .fitnet import FitNetLoss
from .pkt import PKTLoss
from .proxy_anchor import ProxyAnchorLoss
from .relaxed import RelaxedContrastiveLoss, RelaxedMSLoss
from .rkd import RKDLoss

INPUT_NAMES = ("t_emb", "s_emb", "labels", "t_maps", "s_maps", "t_pool", "s_pool",
               "index", "contrast_index")

LOSSES = {
    "Relaxed_Contra": RelaxedContrastiveLoss,
    "Relaxed_MS": RelaxedMSLoss,
    "RKD": RKDLoss,
    "PKT": PKTLoss,
    "DarkRank": DarkRankLoss,
    "Attention": AttentionLoss,
    "FitNet": FitNetLoss,
    "CRD": CRDLoss,
    "Proxy_Anchor": ProxyAnchorLoss,
}


def build_loss(name, **kwargs):
    """The loss registered as `name`, constructed with `kwargs`."""
    if name not in LOSSES:
        raise UserError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    return LOSSES[name](**kwargs)


def call_loss(loss, batch):
    """loss(*[batch[name] for name in loss.inputs]); a missing quantity is named in the error."""
    missing = [k for k in loss.inputs if k not in batch]
    if missing:
        raise KeyError(f"{type(loss).__name__} needs {missing} in the batch (it takes {loss.inputs})")
    return loss(*(batch[k] for k in loss.inputs))


__all__ = ["LOSSES", "INPUT_NAMES", "build_loss", "call_loss", "pdist", "sample_contrast_index",
           *(cls.__name__ for cls in LOSSES.values())]
