"""torchvision ResNets, with the ImageNet weights the paper used (IMAGENET1K_V1)."""
import torchvision.models as tvm

from .head import EmbeddingNet
from .pretrained import load_imagenet_weights


def resnet_maps(trunk, x):
    """layer1..layer4 outputs of a torchvision-style ResNet (the narrow ResNet uses it too)."""
    x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x))))
    maps = []
    for layer in (trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4):
        x = layer(x)
        maps.append(x)
    return maps


class ResNet(EmbeddingNet):
    feature_strides = [4, 8, 16, 32]
    unused = ("fc",)
    build = weights = None  # set by the subclasses below

    def __init__(self, embedding_size, pretrained=False, l2_norm=False, bn_freeze=False):
        trunk = self.build(weights=None)
        if pretrained:
            # Our own loader rather than build(weights=...): one clear error when offline, and
            # weights_only whatever torch's default. `fc` stays: the released checkpoints have
            # model.fc.* keys.
            load_imagenet_weights(trunk, self.arch, self.weights.url, check_hash=True)
        super().__init__(trunk, embedding_size, l2_norm, bn_freeze)

    def feature_maps(self, x):
        return resnet_maps(self.model, x)


class ResNet18(ResNet):
    arch, feat_dim, feature_channels = "resnet18", 512, [64, 128, 256, 512]
    build, weights = staticmethod(tvm.resnet18), tvm.ResNet18_Weights.IMAGENET1K_V1


class ResNet50(ResNet):
    arch, feat_dim, feature_channels = "resnet50", 2048, [256, 512, 1024, 2048]
    build, weights = staticmethod(tvm.resnet50), tvm.ResNet50_Weights.IMAGENET1K_V1


class ResNet101(ResNet):
    arch, feat_dim, feature_channels = "resnet101", 2048, [256, 512, 1024, 2048]
    build, weights = staticmethod(tvm.resnet101), tvm.ResNet101_Weights.IMAGENET1K_V1
