"""load_checkpoint_weights: strict loading of trained weights, and its errors."""
import pytest
import torch

from embedding_transfer.errors import UserError
from embedding_transfer.models import build_model, load_checkpoint_weights


def trained(name="resnet_narrow", size=32):
    torch.manual_seed(0)
    m = build_model(name, size)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p))
    return m


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", [
    lambda sd: {"model_state_dict": sd, "epoch": 3},       # the released checkpoints' layout
    lambda sd: sd,                                          # a bare state_dict
    lambda sd: {"model_state_dict": {"module." + k: v for k, v in sd.items()}},  # nn.DataParallel
], ids=["model_state_dict", "bare", "dataparallel"])
def test_roundtrip(tmp_path, wrap):
    src = trained()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(src.state_dict()), path)
    dst = build_model("resnet_narrow", 32)
    ckpt = load_checkpoint_weights(dst, str(path))
    assert same_weights(src, dst)
    assert isinstance(ckpt, dict)


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "source.pth"
    with pytest.raises(UserError, match="does not exist") as e:
        load_checkpoint_weights(build_model("resnet_narrow", 8), str(path))
    assert str(path) in str(e.value)


def test_pickled_code_is_refused(tmp_path, booby_trapped):
    path = booby_trapped(tmp_path / "ckpt.pth", wrap=lambda sd: {"model_state_dict": sd})
    with pytest.raises(UserError, match="refusing to load") as e:
        load_checkpoint_weights(build_model("resnet_narrow", 8), str(path))
    assert str(path) in str(e.value)
    assert not booby_trapped.marker.exists()


def test_not_weights(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "args": {"lr": 1e-4}}, path)
    with pytest.raises(UserError, match="not model weights"):
        load_checkpoint_weights(build_model("resnet_narrow", 8), str(path))


def test_embedding_size_mismatch(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model_state_dict": trained(size=128).state_dict()}, path)
    dst = build_model("resnet_narrow", 64)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(UserError) as e:
        load_checkpoint_weights(dst, str(path))
    msg = str(e.value)
    assert str(path) in msg
    assert "model.embedding.weight: file (128, 256) vs model (64, 256)" in msg
    assert "built as --model resnet_narrow --embedding-size 64:" in msg
    assert "--model resnet_narrow --embedding-size 128: pass those" in msg  # what fits
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in before.items())  # nothing half-loaded


def test_architecture_mismatch(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model_state_dict": trained("resnet18", size=16).state_dict()}, path)
    with pytest.raises(UserError) as e:
        load_checkpoint_weights(build_model("resnet_narrow", 16), str(path),
                                flags=("--source-model", "--source-embedding-size"))
    msg = str(e.value)
    assert "unexpected keys" in msg and "shapes differ" in msg
    assert "model.layer1.1.conv1.weight" in msg  # resnet18 has two blocks in layer1; the narrow one, one
    assert "--source-model resnet18 --source-embedding-size 16: pass those" in msg


def test_unrecognised_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model_state_dict": {"model.foo.weight": torch.zeros(3)}}, path)
    with pytest.raises(UserError, match="Pass the --model and --embedding-size it was trained with"):
        load_checkpoint_weights(build_model("resnet_narrow", 8), str(path))
