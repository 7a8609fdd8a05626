"""Losses that make the target (student) network learn from the source (teacher), plus
Proxy-Anchor. Each loss is defined (formula and inputs) in its own module's and class's
docstring; docs/losses.md tables the inputs and options of all nine.

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
  * `cls.options` names the run quantities its constructor must be given (e.g. sigma, delta);
    `build_loss` refuses a call that leaves one out or passes a keyword the constructor does not
    take, so a renamed parameter fails loudly instead of silently keeping its default.
  * What a loss needs follows from its inputs, here and nowhere else: `needs_source(name)` (it
    reads the source network's outputs) and `is_batchwise(loss)` (it relates the samples of a
    batch, so under torchrun it must see every process's rows; feature maps stay local).
Loss modules may own parameters (FitNet regressors, CRD embeddings, proxies) and buffers (CRD
memory): give them to the optimizer and save them in checkpoints.
"""
import inspect

from ..errors import UserError

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


SOURCE_INPUTS = {"s_emb", "s_maps", "s_pool"}
LOCAL_INPUTS = {"t_maps", "s_maps"}   # per-sample feature-map terms: never gathered across processes


def needs_source(name):
    """Whether loss `name` learns from a source network."""
    return bool(SOURCE_INPUTS & set(LOSSES[name].inputs))


def is_batchwise(loss):
    """Whether a loss (class or module) relates the samples of a batch to each other."""
    return not set(loss.inputs) <= LOCAL_INPUTS


def constructor_parameters(cls):
    """The keyword parameters of cls.__init__ (nn.Module's own *args/**kwargs are none)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {k: v for k, v in inspect.signature(cls.__init__).parameters.items() if k != "self" and v.kind in kinds}


def build_from(registry, name, kwargs, what="loss"):
    """registry[name](**kwargs), checked against the class's `options` (see the module docstring)."""
    if name not in registry:
        raise UserError(f"unknown {what} {name!r}; valid names: {', '.join(registry)}")
    cls = registry[name]
    params = constructor_parameters(cls)
    wrong = [k for k in cls.options if k not in params]
    if wrong:
        raise TypeError(f"{cls.__name__}.options names {wrong}, which its constructor does not take")
    missing = [k for k in cls.options if k not in kwargs]
    unused = [k for k in kwargs if k not in params]
    if missing or unused:
        raise TypeError(f"building {name}: " + "; ".join(
            f"{label} {keys}" for label, keys in (("missing", missing), ("not taken", unused)) if keys))
    return cls(**kwargs)


def build_loss(name, **kwargs):
    """The loss registered as `name`, constructed with `kwargs` (which must hold its `options`)."""
    return build_from(LOSSES, name, kwargs)


def call_loss(loss, batch):
    """loss(*[batch[name] for name in loss.inputs]); a missing quantity is named in the error."""
    missing = [k for k in loss.inputs if k not in batch]
    if missing:
        raise KeyError(f"{type(loss).__name__} needs {missing} in the batch (it takes {loss.inputs})")
    return loss(*(batch[k] for k in loss.inputs))


__all__ = ["LOSSES", "INPUT_NAMES", "build_loss", "build_from", "call_loss", "needs_source", "is_batchwise",
           "pdist", "sample_contrast_index",
           *(cls.__name__ for cls in LOSSES.values())]
