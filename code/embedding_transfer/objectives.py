"""What a training step minimises, called alike by both trainers: objective(x, labels, index) runs
the networks on a batch (mixed precision inside) and returns the loss; objective.sync_grads()
then fixes the loss modules' own gradients under torchrun (see distributed.py).

TransferObjective (train_target): the chosen method's loss between the target and the frozen
source, plus Proxy-Anchor for the methods whose recipe adds it. SourceObjective (train_source):
a metric-learning loss on the network's embeddings."""
import torch
import torch.nn as nn

from . import distributed
from .dataset import convert_input
from .losses import call_loss, is_batchwise, sample_contrast_index
from .views import gather_views, repeat_for_views, views_to_batch


def full_precision(t):
    """Float16/bfloat16 (--amp) -> float32; float32 and float64 unchanged (the step-level DDP
    tests run in float64)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


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


class Objective(nn.Module):
    """What both objectives share: the batch on the device in the view-major layout, the networks
    under autocast, and the losses' gradients across processes."""

    def __init__(self, views, amp_dtype=None, channels_last=False):
        super().__init__()
        self.views, self.amp_dtype, self.channels_last = views, amp_dtype, channels_last

    def losses(self):
        raise NotImplementedError

    def to_rows(self, x, labels, device):
        """(B[, V], 3, H, W) images and (B,) labels -> (V*B, 3, H, W) and (V*B,) on `device`."""
        x = views_to_batch(x.to(device, non_blocking=True))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, repeat_for_views(labels.to(device), self.views)

    def autocast(self, device):
        return torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    def sync_grads(self):
        """After backward, under torchrun: the loss modules' own gradients, as one process has them."""
        for loss in self.losses():
            distributed.sync_loss_grads(loss, gathered=is_batchwise(loss))


class TransferObjective(Objective):
    """loss(x, labels, index) of train_target for one batch of V views per image.

    Holds the method's loss module and, where the recipe adds it, a Proxy-Anchor loss: both own
    parameters (regressors, embeddings, proxies) that the optimizer must see. `input_models`
    (target, source network names): each network gets its own input normalisation.
    """

    def __init__(self, method, target, source, views, slot_labels, map_pairs, proxy_anchor=None,
                 nce_k=4096, generator=None, amp_dtype=None, channels_last=False, input_models=None):
        super().__init__(views, amp_dtype, channels_last)
        self.method, self.proxy_anchor = method, proxy_anchor
        # A tuple, not submodules: the networks are saved and moved by their owners, and the
        # state_dict of this module is the losses' own state (proxies, regressors, CRD memory).
        self.nets = (target, source)
        self.map_pairs, self.nce_k, self.generator = map_pairs, nce_k, generator
        self.input_models = input_models
        self.register_buffer("slot_labels", slot_labels, persistent=False)

    def losses(self):
        return [m for m in (self.method, self.proxy_anchor) if m is not None]

    def forward(self, x, labels, index):
        device = self.slot_labels.device
        # From a feature cache whose source has its own frozen part, x is (target's, source's) input.
        x, x_source = x if isinstance(x, (tuple, list)) else (x, None)
        x, labels = self.to_rows(x, labels, device)                        # (V*B, 3, H, W), (V*B,)
        if x_source is not None:
            x_source = views_to_batch(x_source.to(device, non_blocking=True))
        # View v of image i has its own memory slot i + v*n_images (CRD).
        index = repeat_for_views(index.to(device), self.views, offset=len(self.slot_labels) // self.views)
        target, source = self.nets
        with self.autocast(device):
            t_feats, t_emb = target(x)
            if source is not None:
                with torch.no_grad():
                    if x_source is None:
                        x_source = convert_input(x, *self.input_models) if self.input_models else x
                    s_feats, s_emb = source(x_source)
        # Losses and distances in float32 at least, whatever the networks ran in.
        batch = dict(t_emb=full_precision(t_emb), labels=labels, index=index, t_pool=full_precision(t_feats[-1]),
                     t_maps=[full_precision(t_feats[i]) for i, _ in self.map_pairs])
        if source is not None:
            batch.update(s_emb=full_precision(s_emb), s_pool=full_precision(s_feats[-1]),
                         s_maps=[full_precision(s_feats[j]) for _, j in self.map_pairs])
        # Under torchrun, batch-wise losses see the global batch (feature maps stay local).
        batch = {k: v if isinstance(v, list) else gather_views(v, self.views) for k, v in batch.items()}
        if "contrast_index" in self.method.inputs:
            batch["contrast_index"] = sample_contrast_index(
                batch["index"].cpu(), self.slot_labels.cpu(), self.nce_k, self.generator).to(device)
        total = 0
        for loss in self.losses():
            value = call_loss(loss, batch)
            total = total + (distributed.scale_grad(value, distributed.world_size()) if is_batchwise(loss) else value)
        return total


class SourceObjective(Objective):
    """loss(x, labels, index) of train_source: the criterion on the network's embeddings of the
    whole (global) batch."""

    def __init__(self, criterion, network, amp_dtype=None, channels_last=False):
        super().__init__(1, amp_dtype, channels_last)
        self.criterion = criterion
        self.nets = (network,)   # not a submodule, as above

    def losses(self):
        return [self.criterion]

    def forward(self, x, labels, index):
        device = next(self.nets[0].parameters()).device
        x, labels = self.to_rows(x, labels, device)
        with self.autocast(device):
            _, emb = self.nets[0](x)
        # Under torchrun the loss sees the global batch, as in one process (see distributed.py).
        value = self.criterion(gather_views(full_precision(emb)), gather_views(labels))
        return distributed.scale_grad(value, distributed.world_size())
