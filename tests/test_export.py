"""scripts/export.py: every network exports (ONNX, and TorchScript) at a small crop, embeds real
photographs as PyTorch does through its dynamic batch axis, carries its preprocessing in a JSON that
reproduces build_transform, and a tampered export fails the equality check and is not kept."""
import importlib.util
import json
import os
import shutil
import warnings

import numpy as np
import PIL.Image
import pytest
import torch

from embedding_transfer.errors import UserError
from embedding_transfer.models import MODELS, build_model, weights_record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("export_cli", os.path.join(ROOT, "scripts", "export.py"))
export_cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_cli)

PHOTO = os.path.join(ROOT, "tests", "data", "chelsea.jpg")
CROP = 64   # small, and a multiple of 32 for BN-Inception


def export(argv):
    return export_cli.main(export_cli.get_args_parser().parse_args(argv))


def calibrated(arch, dim, l2_norm, crop=CROP):
    """A randomly initialised network conditioned like a trained one, so that float32 rounding does
    not decide its normalised embedding (then PyTorch itself would be off from float64 by more than
    the check's tolerance): BatchNorm statistics from real images (at their initial mean 0 and
    variance 1 EfficientNet's activations shrink to ~1e-9), and residual branches scaled down as
    zero-init-residual training starts them (else ResNet-101's stream grows block after block)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    from embedding_transfer.deploy.check import check_batch
    from embedding_transfer.deploy.preprocess import preprocessing_spec
    torch.manual_seed(0)
    net = build_model(arch, dim, l2_norm=l2_norm)
    batch = torch.from_numpy(check_batch([PHOTO], preprocessing_spec(arch, crop), n=8))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                (m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight.mul_(0.1)
    for m in net.batchnorms():
        m.reset_running_stats()
        m.momentum = None          # cumulative average over the calibration passes
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(batch)
    return net.eval()


def save_checkpoint(tmp_path, arch, dim=16, l2_norm=False, name=None):
    net = calibrated(arch, dim, l2_norm)
    path = tmp_path / (name or f"{arch}.pth")
    torch.save(weights_record(net), path)
    return str(path), net


def photos(n, crop, arch):
    """n preprocessed real-photo crops (build_transform's), as numpy."""
    from embedding_transfer.dataset import build_transform
    im = PIL.Image.open(PHOTO).convert("RGB")
    tf = build_transform(arch, False, crop_size=crop)
    views = [im, im.transpose(PIL.Image.FLIP_LEFT_RIGHT), im.crop((20, 10, 240, 250)), im.rotate(15)]
    return torch.stack([tf(v) for v in views[:n]]).numpy()


@pytest.mark.e2e
@pytest.mark.parametrize("arch", list(MODELS))
def test_every_network_exports_to_onnx_and_embeds_as_pytorch(tmp_path, arch):
    from embedding_transfer.deploy.preprocess import SpecTransform
    from embedding_transfer.deploy.runners import open_model
    from embedding_transfer.dataset import build_transform
    l2 = arch.startswith("resnet")          # both settings of the run's normalisation
    ckpt, net = save_checkpoint(tmp_path, arch, l2_norm=l2)
    out, meta = export([ckpt, "--crop-size", str(CROP)])
    assert out == str(tmp_path / f"{arch}.onnx") and os.path.isfile(out + ".json")
    assert (meta["arch"], meta["embedding_size"], meta["l2_norm"]) == (arch, 16, l2)
    assert meta["input"]["shape"] == ["N", 3, CROP, CROP] and meta["check"]["max_abs_difference"] <= 1e-4
    # The JSON's preprocessing, applied without torchvision, is build_transform's, bit for bit.
    im = PIL.Image.open(PHOTO).convert("RGB").resize((200, 130))
    want = build_transform(arch, False, crop_size=CROP)(im).numpy()
    assert np.array_equal(SpecTransform(meta["preprocessing"])(im), want)
    # onnxruntime at a batch size the export never saw, against PyTorch.
    runner = open_model(out)
    x = photos(3, CROP, arch)
    got = runner.embed(x)
    with torch.no_grad():
        want = net(torch.from_numpy(x))[1].numpy()
    assert got.shape == (3, 16)
    unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
    assert np.abs(unit(got) - unit(want)).max() <= 1e-4
    if l2:
        assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)   # normalised as the run was
    else:
        assert np.allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


@pytest.mark.e2e
@pytest.mark.parametrize("arch", ["resnet_tiny", "efficientnet_lite0", "bn_inception"])
def test_torchscript_export(tmp_path, arch):
    from embedding_transfer.deploy.runners import open_model
    ckpt, net = save_checkpoint(tmp_path, arch, l2_norm=True)
    out, meta = export([ckpt, "--crop-size", str(CROP), "--format", "torchscript"])
    assert out.endswith(".torchscript.pt") and meta["format"] == "torchscript"
    x = photos(4, CROP, arch)
    with torch.no_grad():
        want = net(torch.from_numpy(x))[1].numpy()
    assert np.abs(open_model(out).embed(x) - want).max() <= 1e-4


def tamper_onnx(path):
    """Scale the largest weight tensor of an ONNX file by 1.05, in place."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.05), init.name))
    onnx.save(model, path)


def tamper_torchscript(path):
    """Shift the embedding's bias of a TorchScript file by 0.5, in place."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")                 # torch.jit's deprecation notices
        traced = torch.jit.load(path)
        traced.net.model.embedding.bias.add_(0.5)      # the file differs from the checkpoint
        torch.jit.save(traced, path)


def write_tampered(monkeypatch, fmt, tamper):
    """The exporter's writer for `fmt` writes the model, then `tamper`s the file it wrote."""
    from embedding_transfer.deploy import exporters
    real = exporters.WRITERS[fmt]

    def tampered(module, crop, path):
        real(module, crop, path)
        tamper(path)
        return path
    monkeypatch.setitem(exporters.WRITERS, fmt, tampered)


@pytest.mark.e2e
def test_a_tampered_onnx_model_fails_the_check_and_is_not_kept(tmp_path, monkeypatch):
    ckpt, _ = save_checkpoint(tmp_path, "resnet_tiny")
    write_tampered(monkeypatch, "onnx", tamper_onnx)
    with pytest.raises(UserError, match=r"differ from PyTorch's by up to .*at most 0.0001 allowed.*not kept"):
        export([ckpt, "--crop-size", "32"])
    assert sorted(os.listdir(tmp_path)) == ["resnet_tiny.pth"]     # no model, no JSON, no temporary file


@pytest.mark.e2e
def test_a_tampered_torchscript_model_fails_the_check(tmp_path, monkeypatch):
    ckpt, _ = save_checkpoint(tmp_path, "resnet_tiny")
    write_tampered(monkeypatch, "torchscript", tamper_torchscript)
    with pytest.raises(UserError, match="differ from PyTorch's"):
        export([ckpt, "--crop-size", "32", "--format", "torchscript"])
    assert not (tmp_path / "resnet_tiny.torchscript.pt").exists()


def test_the_check_compares_the_exported_model_with_pytorch(tmp_path):
    # The check itself, on a runner that is off by less and by more than the tolerance.
    from embedding_transfer.deploy.check import max_difference, require_equal
    from embedding_transfer.deploy.network import EmbeddingOnly
    net = EmbeddingOnly(calibrated("resnet_tiny", 8, False, crop=32))
    x = photos(4, 32, "resnet_tiny")

    class Off:
        def __init__(self, eps):
            self.eps = eps

        def embed(self, batch):
            with torch.no_grad():
                e = net(torch.from_numpy(batch)).numpy()
            return e / np.linalg.norm(e, axis=1, keepdims=True) + self.eps * (np.arange(e.shape[1]) == 0)
    assert max_difference(net, Off(0.0), x) < 1e-6
    assert require_equal(net, Off(1e-6), x, "x") <= 1e-4
    with pytest.raises(UserError, match="differ from PyTorch's"):
        require_equal(net, Off(1e-2), x, "x")


@pytest.mark.e2e
def test_crop_size_comes_from_the_runs_args_json(tmp_path):
    ckpt, _ = save_checkpoint(tmp_path, "resnet_tiny")
    (tmp_path / "args.json").write_text(json.dumps({"crop_size": 48, "model": "resnet_tiny"}))
    out, meta = export([ckpt, "--out", str(tmp_path / "m.onnx")])
    assert meta["input"]["shape"] == ["N", 3, 48, 48] and meta["crop_size_from"].endswith("args.json")
    assert os.path.isfile(tmp_path / "m.onnx.json")


def test_checkpoint_without_metadata_needs_the_flags_that_fit(tmp_path):
    net = build_model("resnet_tiny", 16)
    torch.save({"model_state_dict": net.state_dict()}, tmp_path / "released.pth")
    with pytest.raises(UserError, match="--model resnet_tiny --embedding-size 16"):
        export([str(tmp_path / "released.pth"), "--crop-size", "32"])   # the defaults: BN-Inception-512


def test_bad_inputs_are_refused(tmp_path):
    ckpt, _ = save_checkpoint(tmp_path, "bn_inception", dim=8)
    with pytest.raises(UserError, match="multiple of 32"):
        export([ckpt, "--crop-size", "48"])
    with pytest.raises(UserError, match="does not exist"):
        export([str(tmp_path / "none.pth")])
    with pytest.raises(SystemExit):
        export_cli.get_args_parser().parse_args([ckpt, "--format", "tflite"])


@pytest.mark.e2e
def test_a_json_that_belongs_to_another_export_is_refused(tmp_path):
    from embedding_transfer.deploy.runners import open_model
    a, _ = save_checkpoint(tmp_path, "resnet_tiny", dim=16, name="a.pth")
    b, _ = save_checkpoint(tmp_path, "resnet_tiny", dim=8, name="b.pth")
    out_a, _ = export([a, "--crop-size", "32"])
    out_b, _ = export([b, "--crop-size", "32"])
    shutil.copy(out_a + ".json", out_b + ".json")
    with pytest.raises(UserError, match="belongs to another export"):
        open_model(out_b)
    os.remove(out_b + ".json")
    with pytest.raises(UserError, match="has no b.onnx.json beside it"):
        open_model(out_b)
