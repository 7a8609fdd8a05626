"""The target's training objective: the chosen method's loss (+ Proxy-Anchor where the reference
pairs them), built from the registry and fed the same way for every method."""
import inspect

import torch
import torch.nn as nn

import distributed
from dataset import convert_input, repeat_for_views, views_to_batch
from losses import build_loss, call_loss, sample_contrast_index


def pair_feature_maps(t_model, s_model, loss_cls=None):
    """(target map index, source map index) pairs for Attention and FitNet.

    Same layout (same output strides, e.g. BN-Inception -> BN-Inception, ResNet -> ResNet): pair
    in order, as the reference did. Otherwise pair each target map with the last source map of
    the same stride (maps must agree in size), dropping target maps no source map matches.
    A loss may keep only the first N target maps of some networks (`loss_cls.target_maps`,
    {arch: N}), as Attention does for ResNet-50/101 targets.
    """
    ts, ss = list(t_model.feature_strides), list(s_model.feature_strides)
    if ts == ss:
        pairs = [(i, i) for i in range(len(ts))]
    else:
        pairs = []
        for i, stride in enumerate(ts):
            same = [j for j, s in enumerate(ss) if s == stride]
            if same:
                pairs.append((i, same[-1]))
    limit = getattr(loss_cls, "target_maps", {}).get(t_model.arch)
    return pairs if limit is None else [(i, j) for i, j in pairs if i < limit]


def construct(name, **available):
    """Build loss `name`, passing the entries of `available` its constructor takes."""
    from losses import LOSSES
    params = inspect.signature(LOSSES[name].__init__).parameters
    return build_loss(name, **{k: v for k, v in available.items() if k in params})


class TransferObjective(nn.Module):
    """loss(x, labels, index) for one training batch of V views per image.

    Holds the method's loss module and, for FitNet/Attention/CRD, a Proxy-Anchor loss: both own
    parameters (regressors, embeddings, proxies) that the optimizer must see.
    """

    def __init__(self, method, target, source, views, slot_labels, map_pairs, proxy_anchor=None,
                 nce_k=4096, generator=None, amp_dtype=None, channels_last=False, input_models=None):
        super().__init__()
        self.method, self.proxy_anchor, self.views = method, proxy_anchor, views
        # A tuple, not submodules: the networks are saved and moved by their owners, and the
        # state_dict of this module is the losses' own state (proxies, regressors, CRD memory).
        self.nets = (target, source)
        self.map_pairs, self.nce_k, self.generator = map_pairs, nce_k, generator
        self.amp_dtype, self.channels_last = amp_dtype, channels_last
        self.register_buffer("slot_labels", slot_labels, persistent=False)
        self.needs_source = any(k.startswith("s_") for k in method.inputs)
        # (target network, source network) names: each network gets its own input normalisation.
        self.input_models = input_models

    def losses(self):
        return [m for m in (self.method, self.proxy_anchor) if m is not None]

    def forward(self, x, labels, index):
        device = self.slot_labels.device
        x = views_to_batch(x.to(device, non_blocking=True))                # (V*B, 3, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        labels = repeat_for_views(labels.to(device), self.views)           # (V*B,)
        # View v of image i has its own memory slot i + v*n_images (CRD).
        index = repeat_for_views(index.to(device), self.views, offset=len(self.slot_labels) // self.views)
        target, source = self.nets
        with torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            t_feats, t_emb = target(x)
            if self.needs_source:
                with torch.no_grad():
                    s_feats, s_emb = source(self.source_input(x))
        # Losses and distances in float32, whatever the networks ran in.
        batch = dict(t_emb=t_emb.float(), labels=labels, index=index, t_pool=t_feats[-1].float(),
                     t_maps=[t_feats[i].float() for i, _ in self.map_pairs])
        if self.needs_source:
            batch.update(s_emb=s_emb.float(), s_pool=s_feats[-1].float(),
                         s_maps=[s_feats[j].float() for _, j in self.map_pairs])
        # Under torchrun, batch-wise losses see the global batch (feature maps stay local).
        batch = {k: v if k.endswith("_maps") else distributed.gather_rows(v, self.views) for k, v in batch.items()}
        if "contrast_index" in self.method.inputs:
            batch["contrast_index"] = sample_contrast_index(
                batch["index"].cpu(), self.slot_labels.cpu(), self.nce_k, self.generator).to(device)
        total = 0
        for loss in self.losses():
            value = call_loss(loss, batch)
            total = total + (distributed.scale_grad(value, distributed.world_size()) if batchwise(loss) else value)
        return total

    def source_input(self, x):
        if self.input_models is None:
            return x
        return convert_input(x, *self.input_models)

    def sync_grads(self):
        """After backward, under torchrun: the loss modules' own gradients, as one process has them."""
        for loss in self.losses():
            distributed.sync_loss_grads(loss, gathered=batchwise(loss))


def batchwise(loss):
    """Losses that relate the samples of a batch to each other (all but the per-sample feature-map
    losses FitNet and Attention): under torchrun they must see the whole batch."""
    return not set(loss.inputs) <= {"t_maps", "s_maps"}
