"""BN-Inception, the Caffe-converted network of the pretrainedmodels collection (Cadene).

Layer names are flat attributes of the trunk (`inception_3a_1x1`, `inception_3a_1x1_bn`, ...)
because the ImageNet file and the released Proxy-Anchor checkpoints use exactly those names;
the blocks are therefore described by a table and run by one method instead of being modules.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import EmbeddingNet
from .pretrained import load_imagenet_weights

URL = "http://data.lip6.fr/cadene/pretrainedmodels/bn_inception-52deb4733.pth"

# name, in, 1x1, 3x3_reduce, 3x3, double_3x3_reduce, double_3x3, pool, pool_proj
# pool: "avg" = avg 3x3 s1 p1 (count_include_pad); "max" = max 3x3 s1 p1; "max_s2" = max 3x3 s2,
# and then the block downsamples: no 1x1 branch, no pool_proj, stride-2 3x3 and double_3x3_2.
BLOCKS = [
    ("3a", 192, 64, 64, 64, 64, 96, "avg", 32),
    ("3b", 256, 64, 64, 96, 64, 96, "avg", 64),
    ("3c", 320, 0, 128, 160, 64, 96, "max_s2", 0),
    ("4a", 576, 224, 64, 96, 96, 128, "avg", 128),
    ("4b", 576, 192, 96, 128, 96, 128, "avg", 128),
    ("4c", 576, 160, 128, 160, 128, 160, "avg", 128),
    ("4d", 608, 96, 128, 192, 160, 192, "avg", 128),
    ("4e", 608, 0, 128, 192, 192, 256, "max_s2", 0),
    ("5a", 1056, 352, 192, 320, 160, 224, "avg", 128),
    ("5b", 1024, 352, 192, 320, 192, 224, "max", 128),
]
TAPS = ("3c", "4e", "5b")  # blocks whose outputs are returned as feature maps

POOLS = {
    "avg": lambda x: F.avg_pool2d(x, 3, stride=1, padding=1, ceil_mode=True, count_include_pad=True),
    "max": lambda x: F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True),
    "max_s2": lambda x: F.max_pool2d(x, 3, stride=2, ceil_mode=True),
}


class BNInceptionTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.unit("conv1_7x7_s2", 3, 64, 7, stride=2, padding=3)
        self.unit("conv2_3x3_reduce", 64, 64, 1)
        self.unit("conv2_3x3", 64, 192, 3, padding=1)
        for name, cin, c1, c3r, c3, cdr, cd, kind, cp in BLOCKS:
            p, s = f"inception_{name}_", 2 if kind == "max_s2" else 1
            if c1:
                self.unit(p + "1x1", cin, c1, 1)
            self.unit(p + "3x3_reduce", cin, c3r, 1)
            self.unit(p + "3x3", c3r, c3, 3, stride=s, padding=1)
            self.unit(p + "double_3x3_reduce", cin, cdr, 1)
            self.unit(p + "double_3x3_1", cdr, cd, 3, padding=1)
            self.unit(p + "double_3x3_2", cd, cd, 3, stride=s, padding=1)
            if cp:
                self.unit(p + "pool_proj", cin, cp, 1)
        # Only there so that the ImageNet file loads strictly; the forward pass never uses it
        # (the file's global_pool is a parameterless 7x7 average pool, left out).
        self.last_linear = nn.Linear(1024, 1000)

    def unit(self, name, cin, cout, k, stride=1, padding=0):
        # Caffe-style: conv with bias, then BN. Momentum 0.9 as in the reference (PyTorch's
        # convention: running statistics move 90% toward each batch).
        setattr(self, name, nn.Conv2d(cin, cout, k, stride=stride, padding=padding))
        setattr(self, name + "_bn", nn.BatchNorm2d(cout, eps=1e-5, momentum=0.9))

    def cbr(self, name, x):
        return F.relu(getattr(self, name + "_bn")(getattr(self, name)(x)))

    def block(self, spec, x):
        name, _, c1, _, _, _, _, kind, cp = spec
        p = f"inception_{name}_"
        branches = [self.cbr(p + "1x1", x)] if c1 else []
        branches.append(self.cbr(p + "3x3", self.cbr(p + "3x3_reduce", x)))
        d = self.cbr(p + "double_3x3_1", self.cbr(p + "double_3x3_reduce", x))
        branches.append(self.cbr(p + "double_3x3_2", d))
        pooled = POOLS[kind](x)
        branches.append(self.cbr(p + "pool_proj", pooled) if cp else pooled)
        return torch.cat(branches, 1)

    def features(self, x):
        x = F.max_pool2d(self.cbr("conv1_7x7_s2", x), 3, stride=2, ceil_mode=True)
        x = self.cbr("conv2_3x3", self.cbr("conv2_3x3_reduce", x))
        x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        maps = []
        for spec in BLOCKS:
            x = self.block(spec, x)
            if spec[0] in TAPS:
                maps.append(x)
        return maps


class BNInception(EmbeddingNet):
    arch = "bn_inception"
    feature_channels = [576, 1056, 1024]  # inception_3c, 4e, 5b
    feature_strides = [16, 32, 32]
    feat_dim = 1024
    unused = ("last_linear",)

    def __init__(self, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False):
        trunk = BNInceptionTrunk()
        if pretrained:
            # Loaded before the head exists: the file has no embedding.* keys.
            load_imagenet_weights(trunk, self.arch, URL, check_hash=False, squeeze=True)
        super().__init__(trunk, embedding_size, l2_norm, bn_freeze)

    def feature_maps(self, x):
        return self.model.features(x)
