"""Narrow ResNets for the CPU demo (32-48 px images, trained from scratch; no ImageNet weights).

torchvision's BasicBlock, a 3x3 stride-1 stem and no max-pool, so a 48x48 image still ends in a
6x6 map. One block per stage (the ResNet-10 layout); the fewest blocks train fastest on a CPU.
`resnet_narrow`: widths 32/64/128/256, 1.23M trunk parameters (1.36M with a 512-d embedding).
`resnet_tiny`: half of that width, 0.31M; the compression target of the mini reproduction, as
ResNet-18 is ResNet-50's in the paper.
"""
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, conv1x1

from ..errors import UserError
from .head import EmbeddingNet
from .resnet import resnet_maps

WIDTHS = (32, 64, 128, 256)
TINY_WIDTHS = (16, 32, 64, 128)
BLOCKS = (1, 1, 1, 1)


class NarrowResNetTrunk(nn.Module):
    # Attribute names as in torchvision's ResNet, so resnet_maps() runs it unchanged.
    def __init__(self, widths=WIDTHS, blocks=BLOCKS):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        cin = widths[0]
        for i, (cout, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n):
                s = stride if j == 0 else 1
                down = None
                if s != 1 or cin != cout:
                    down = nn.Sequential(conv1x1(cin, cout, s), nn.BatchNorm2d(cout))
                layers.append(BasicBlock(cin, cout, s, down))
                cin = cout
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class NarrowResNet(EmbeddingNet):
    arch = "resnet_narrow"
    feature_channels = list(WIDTHS)
    feature_strides = [1, 2, 4, 8]
    feat_dim = WIDTHS[-1]

    def __init__(self, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False):
        if pretrained:
            raise UserError(f"{self.arch} has no ImageNet weights: it is the small CPU-demo "
                            "network, trained from scratch. Build it without pretrained weights, "
                            "or choose one of the ImageNet backbones (bn_inception, resnet18/50/101).")
        super().__init__(NarrowResNetTrunk(self.feature_channels), embedding_size, l2_norm, bn_freeze)

    def feature_maps(self, x):
        return resnet_maps(self.model, x)


class TinyResNet(NarrowResNet):
    arch = "resnet_tiny"
    feature_channels = list(TINY_WIDTHS)
    feat_dim = TINY_WIDTHS[-1]
