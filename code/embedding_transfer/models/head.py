"""What every backbone shares: the GAP+GMP -> Linear embedding head, L2 norm and BN freezing."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError


def l2_normalize(x):
    # The reference's formula (eps inside the square root), not F.normalize's clamp.
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + 1e-12)


def check_splittable(cls):
    """A UserError unless --freeze-below can split networks of class `cls`."""
    if not cls.stage_names:
        raise UserError(f"--freeze-below is not available for {cls.arch}: only the EfficientNet-Lite networks "
                        "(efficientnet_lite0, efficientnet_lite2) can be split.")


class EmbeddingNet(nn.Module):
    """A trunk under `self.model` plus the embedding head of the reference.

    The head lives inside the trunk (`self.model.embedding`) because the reference's checkpoints
    name it `model.embedding.*`. Subclasses set `arch`, `feature_channels`, `feature_strides`,
    `feat_dim` and implement `feature_maps(x)`: the intermediate maps, the last one being pooled.
    forward(x) returns (feature maps + [feat], emb).
    """

    arch = None
    feature_channels = ()  # channels of each map returned by feature_maps
    feature_strides = ()   # input size / map size, for inputs whose size the network divides
    feat_dim = None        # size of the pooled vector fed to the embedding layer
    # Trunk layers the forward pass never runs (the ImageNet classifier): kept so that the ImageNet
    # and released files load strictly, but never trained, so that DDP expects no gradient of them.
    unused = ()
    # --freeze-below: everything below block `split` is frozen (ImageNet weights, BatchNorm in eval
    # mode); with cached_input the forward pass takes that part's output (the feature cache).
    # stage_names: the splits a network offers (none: it cannot be split).
    split, cached_input, stage_names = 0, False, ()

    def __init__(self, trunk, embedding_size, l2_norm=False, bn_freeze=False):
        super().__init__()
        self.model = trunk
        self.embedding_size = embedding_size
        self.l2_norm = l2_norm
        self.bn_freeze = bn_freeze
        # Per-instance lists, so that a caller editing them cannot change other models.
        self.feature_channels = list(self.feature_channels)
        self.feature_strides = list(self.feature_strides)
        self.model.embedding = nn.Linear(self.feat_dim, embedding_size)
        nn.init.orthogonal_(self.model.embedding.weight)
        nn.init.constant_(self.model.embedding.bias, 0)
        for name in self.unused:
            getattr(self.model, name).requires_grad_(False)
        if bn_freeze:
            for m in self.batchnorms():
                m.weight.requires_grad_(False)
                m.bias.requires_grad_(False)
        self.train()  # puts frozen BatchNorms in eval mode from the start

    def trainable_parameters(self):
        """(name, parameter) of everything training may update: all but the `unused` layers
        (BatchNorm's affine parameters included, whether --bn-freeze holds them now or not)."""
        skip = tuple(f"model.{name}." for name in self.unused)
        frozen = {id(p) for m in self.frozen_modules(self.split) for p in m.parameters()} if self.split else set()
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(skip) and id(p) not in frozen]

    def split_points(self):
        """{stage name: first block above the split}, the --freeze-below choices."""
        check_splittable(type(self))
        raise NotImplementedError

    def frozen_modules(self, first):
        """The modules below block `first`."""
        raise NotImplementedError

    def bottom(self, x):
        """Images -> the frozen part's output."""
        raise NotImplementedError

    def freeze_below(self, stage, cached_input=False):
        """Freeze everything below `stage` (a split_points() name): ImageNet weights and statistics
        kept, no gradient. Only the maps of the trainable stages are returned from then on (they
        are what FitNet and Attention can pair). cached_input: forward takes bottom()'s output."""
        points = self.split_points()
        if stage not in points:
            raise UserError(f"--freeze-below {stage!r} is not a stage of {self.arch}; valid: {', '.join(points)}.")
        self.split, self.cached_input = points[stage], cached_input
        for m in self.frozen_modules(self.split):
            m.requires_grad_(False)
        channels, strides = self.split_maps(self.split)
        self.feature_channels, self.feature_strides = list(channels), list(strides)
        return self.train(self.training)

    def batchnorms(self):
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode=True):
        # model.train() would otherwise switch frozen BatchNorms back to batch statistics.
        super().train(mode)
        if self.bn_freeze:
            for m in self.batchnorms():
                m.eval()
        if self.split:
            for m in self.frozen_modules(self.split):
                m.eval()
        return self

    def feature_maps(self, x):
        raise NotImplementedError

    def forward(self, x):
        maps = self.feature_maps(x)
        last = maps[-1]
        feat = F.adaptive_avg_pool2d(last, 1).flatten(1) + F.adaptive_max_pool2d(last, 1).flatten(1)
        emb = self.model.embedding(feat)
        if self.l2_norm:
            emb = l2_normalize(emb)
        return list(maps) + [feat], emb
