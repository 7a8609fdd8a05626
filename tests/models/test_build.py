"""Every backbone: output shapes, the attributes describing them, the head, l2_norm, bn_freeze."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from embedding_transfer.errors import UserError
from embedding_transfer.models import MODELS, build_model

# name -> input size that the network divides evenly (small, to keep the suite fast)
SIZES = {"bn_inception": 64, "resnet18": 64, "resnet50": 64, "resnet101": 64, "resnet_narrow": 48, "resnet_tiny": 32,
         "efficientnet_lite0": 64, "efficientnet_lite2": 64}


def test_registry_names():
    assert set(MODELS) == {"bn_inception", "resnet18", "resnet50", "resnet101", "resnet_narrow", "resnet_tiny",
                           "efficientnet_lite0", "efficientnet_lite2"}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_shapes_match_declared_attributes(name):
    torch.manual_seed(0)
    m = build_model(name, embedding_size=24).eval()
    s = SIZES[name]
    with torch.no_grad():
        feats, emb = m(torch.randn(2, 3, s, s))
    maps, feat = feats[:-1], feats[-1]
    assert m.arch == name and m.embedding_size == 24
    assert emb.shape == (2, 24)
    assert feat.shape == (2, m.feat_dim)
    assert [f.shape[1] for f in maps] == m.feature_channels
    assert [s // f.shape[-1] for f in maps] == m.feature_strides
    assert all(f.shape[-1] * st == s and f.shape[-2] * st == s for f, st in zip(maps, m.feature_strides))
    # The head: GAP + GMP of the last map -> Linear.
    last = maps[-1]
    assert torch.allclose(feat, last.mean((2, 3)) + last.amax((2, 3)), atol=1e-5)
    assert torch.allclose(emb, m.model.embedding(feat), atol=1e-5)


def test_declared_attributes():
    expect = {  # name: (feature_channels, feature_strides, feat_dim)
        "bn_inception": ([576, 1056, 1024], [16, 32, 32], 1024),
        "resnet18": ([64, 128, 256, 512], [4, 8, 16, 32], 512),
        "resnet50": ([256, 512, 1024, 2048], [4, 8, 16, 32], 2048),
        "resnet101": ([256, 512, 1024, 2048], [4, 8, 16, 32], 2048),
        "resnet_narrow": ([32, 64, 128, 256], [1, 2, 4, 8], 256),
        "resnet_tiny": ([16, 32, 64, 128], [1, 2, 4, 8], 128),
    }
    for name, (ch, st, fd) in expect.items():
        with torch.device("meta"):
            m = build_model(name, 8)
        assert (m.feature_channels, m.feature_strides, m.feat_dim) == (ch, st, fd), name


def test_narrow_resnet_size():
    m = build_model("resnet_narrow", 512)
    total = sum(p.numel() for p in m.parameters())   # ResNet-10 layout at half width, 512-d head
    assert 1.3e6 < total < 1.45e6
    assert not any(isinstance(x, nn.MaxPool2d) for x in m.modules())
    assert m.model.conv1.kernel_size == (3, 3) and m.model.conv1.stride == (1, 1)


def test_tiny_resnet_is_the_half_width_narrow_resnet():
    tiny, narrow = build_model("resnet_tiny", 128), build_model("resnet_narrow", 128)
    trunk = [sum(p.numel() for n, p in m.named_parameters() if "embedding" not in n) for m in (tiny, narrow)]
    assert 3.5 < trunk[1] / trunk[0] < 4.5      # conv parameters scale with width squared
    assert tiny.feature_strides == narrow.feature_strides and tiny.feat_dim == 128
    _, emb = tiny.eval()(torch.randn(2, 3, 32, 32))
    assert emb.shape == (2, 128)


def test_embedding_init():
    torch.manual_seed(0)
    m = build_model("resnet_narrow", 64)
    w = m.model.embedding.weight  # (64, 256): orthonormal rows
    assert torch.allclose(w @ w.t(), torch.eye(64), atol=1e-5)
    assert torch.count_nonzero(m.model.embedding.bias) == 0


def test_l2_norm():
    torch.manual_seed(0)
    plain = build_model("resnet_narrow", 16).eval()
    normed = build_model("resnet_narrow", 16, l2_norm=True).eval()
    normed.load_state_dict(plain.state_dict())
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        _, e0 = plain(x)
        _, e1 = normed(x)
    assert torch.allclose(e1.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(e1, F.normalize(e0, dim=1), atol=1e-6)


@pytest.mark.parametrize("name", ["resnet_narrow", "bn_inception"])
def test_bn_freeze(name):
    m = build_model(name, 8, bn_freeze=True)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert bns
    for mode in (True, False, True):  # train() must not switch them back on
        m.train(mode)
        assert m.training is mode
        assert not any(b.training for b in bns)
        assert all(x.training is mode for x in m.modules() if not isinstance(x, nn.BatchNorm2d))
    assert not any(p.requires_grad for b in bns for p in (b.weight, b.bias))
    bn_ids = {id(p) for b in bns for p in b.parameters()}
    others = [p for _, p in m.trainable_parameters() if id(p) not in bn_ids]
    assert others and all(p.requires_grad for p in others)
    # A training step leaves the running statistics alone, and gradients still reach the trunk.
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    s = SIZES[name]
    _, emb = m(torch.randn(2, 3, s, s))
    emb.sum().backward()
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    first_conv = next(x for x in m.modules() if isinstance(x, nn.Conv2d))
    assert first_conv.weight.grad is not None


def test_no_bn_freeze_trains_batchnorm():
    m = build_model("resnet_narrow", 8).train()
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert all(b.training for b in bns)
    assert all(b.weight.requires_grad and b.bias.requires_grad for b in bns)


def test_bn_inception_batchnorm_settings():
    with torch.device("meta"):
        m = build_model("bn_inception", 8)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert all(b.eps == 1e-5 and b.momentum == 0.9 for b in bns)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert len(convs) == len(bns) and all(c.bias is not None for c in convs)


def test_unknown_name():
    with pytest.raises(UserError) as e:
        build_model("resnet34", 64)
    msg = str(e.value)
    assert "resnet34" in msg and all(n in msg for n in MODELS)


@pytest.mark.parametrize("size", [0, -3, 2.5, "64"])
def test_bad_embedding_size(size):
    with pytest.raises(UserError, match="embedding size"):
        build_model("resnet_narrow", size)


def test_narrow_has_no_pretrained_weights():
    with pytest.raises(UserError, match="resnet_narrow has no ImageNet weights"):
        build_model("resnet_narrow", 64, pretrained=True)
