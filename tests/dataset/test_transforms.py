import numpy as np
import PIL.Image
import pytest
import torch

from embedding_transfer.dataset import build_transform
from embedding_transfer.views import repeat_for_views, views_to_batch
from embedding_transfer.errors import UserError

RGB = (10, 100, 200)


def solid(size=(400, 300)):
    return PIL.Image.new("RGB", size, RGB)


def ramp(width=256, height=64):
    """Horizontal ramp, dark left to bright right: a flip makes the left edge brighter."""
    row = np.arange(width, dtype=np.uint8)
    return PIL.Image.fromarray(np.repeat(np.tile(row, (height, 1))[..., None], 3, axis=2))


def test_eval_resnet_values():
    y = build_transform("resnet18", train=False)(solid())
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = (torch.tensor(RGB) / 255 - mean) / std
    assert y.shape == (3, 224, 224)
    assert torch.allclose(y, expected[:, None, None].expand_as(y), atol=1e-5)


def test_eval_bn_inception_is_bgr_0_255_caffe_mean():
    y = build_transform("bn_inception", train=False)(solid())
    b, g, r = RGB[2] - 104, RGB[1] - 117, RGB[0] - 128
    assert y.shape == (3, 224, 224)
    assert torch.allclose(y, torch.tensor([b, g, r], dtype=torch.float)[:, None, None].expand_as(y),
                          atol=1e-3)


def test_eval_is_deterministic_and_crop_size():
    tf = build_transform("resnet50", train=False, crop_size=112)
    im = ramp()
    assert torch.equal(tf(im), tf(im)) and tf(im).shape == (3, 112, 112)


@pytest.mark.parametrize("model", ["bn_inception", "resnet50"])
def test_train_shapes_and_views(model):
    im = ramp()
    assert build_transform(model, train=True)(im).shape == (3, 224, 224)
    y = build_transform(model, train=True, views=2)(im)
    assert y.shape == (2, 3, 224, 224)
    assert not torch.equal(y[0], y[1])  # independently augmented
    assert build_transform(model, train=False, views=3)(im).shape == (3, 3, 224, 224)


def flipped(y):
    return bool(y[:, :, 0].mean() > y[:, :, -1].mean())


def test_flip_option():
    torch.manual_seed(0)
    im = ramp()
    with_flip = [flipped(build_transform("resnet50", True)(im)) for _ in range(30)]
    no_flip = [flipped(build_transform("resnet50", True, flip=False)(im)) for _ in range(30)]
    assert any(with_flip) and not all(with_flip)
    assert not any(no_flip)


@pytest.mark.parametrize("views", [0, -1, 1.5])
def test_bad_views(views):
    with pytest.raises(UserError, match="--view"):
        build_transform("resnet50", train=True, views=views)


def test_views_to_batch_is_view_major():
    B, V = 4, 3
    x = torch.zeros(B, V, 3, 2, 2)  # as collated by the DataLoader from the V-view transform
    for b in range(B):
        for v in range(V):
            x[b, v] = 10 * v + b
    flat = views_to_batch(x)
    assert flat.shape == (V * B, 3, 2, 2)
    assert [int(r[0, 0, 0]) for r in flat] == [10 * v + b for v in range(V) for b in range(B)]
    labels = torch.tensor([7, 8, 9, 7])
    assert repeat_for_views(labels, V).tolist() == labels.repeat(V).tolist() == [7, 8, 9, 7] * 3
    index = torch.tensor([0, 5, 2, 3])
    assert repeat_for_views(index, 2, offset=10).tolist() == [0, 5, 2, 3, 10, 15, 12, 13]
    single = torch.zeros(B, 3, 2, 2)
    assert views_to_batch(single) is single
