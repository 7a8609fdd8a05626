"""ImageNet weights through torch.hub's cache, in a temporary TORCH_HOME; the network is never used
(the downloader is replaced by one that fails, or by one that writes a local file)."""
import os

import pytest
import torch
import torchvision

from embedding_transfer.errors import UserError
from embedding_transfer.models import build_model
from embedding_transfer.models.bn_inception import URL as BN_URL, BNInceptionTrunk

BN_FILE = "bn_inception-52deb4733.pth"
R18 = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url  # .../resnet18-f37072fd.pth


def distinct(state_dict):
    """Values unlike any initialisation, so a test can tell that the file was loaded."""
    gen = torch.Generator().manual_seed(1)
    return {k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
            for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def fake_bn_inception():
    """Like Cadene's file: trunk keys incl. last_linear, no num_batches_tracked, no embedding,
    BatchNorm vectors stored as (1, C), old (non-zip) serialization."""
    sd = distinct(BNInceptionTrunk().state_dict())
    stored = {k: v.unsqueeze(0) if "_bn." in k else v for k, v in sd.items()}
    assert any(v.shape[0] == 1 for v in stored.values())
    return sd, stored


def check_loaded(model, sd):
    got = model.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())


def test_bn_inception_from_cache(offline_hub):
    folder, downloader = offline_hub
    sd, stored = fake_bn_inception()
    folder.mkdir(parents=True)
    torch.save(stored, folder / BN_FILE, _use_new_zipfile_serialization=False)
    m = build_model("bn_inception", 64, pretrained=True)
    check_loaded(m, sd)
    assert m.model.embedding.weight.shape == (64, 1024)
    assert downloader.calls == []  # cached: no download attempted


def test_resnet18_from_cache(offline_hub):
    folder, downloader = offline_hub
    sd = distinct(torchvision.models.resnet18().state_dict())  # torchvision's key names
    folder.mkdir(parents=True)
    torch.save(sd, folder / os.path.basename(R18))
    m = build_model("resnet18", 32, pretrained=True)
    check_loaded(m, sd)
    assert downloader.calls == []


@pytest.mark.parametrize("name,url,hash_prefix", [("resnet18", R18, "f37072fd"), ("bn_inception", BN_URL, None)])
def test_download_goes_to_the_cache(offline_hub, monkeypatch, name, url, hash_prefix):
    folder, _ = offline_hub
    sd = distinct(torchvision.models.resnet18().state_dict()) if name == "resnet18" else fake_bn_inception()[0]
    calls = []

    def download(u, dst, hash_prefix=None, progress=True):
        calls.append((u, dst, hash_prefix))
        torch.save(sd, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    m = build_model(name, 16, pretrained=True)
    check_loaded(m, sd)
    # Only torchvision's file names carry a SHA-256 prefix to verify.
    assert calls == [(url, str(folder / os.path.basename(url)), hash_prefix)]


@pytest.mark.parametrize("name,url", [("bn_inception", BN_URL), ("resnet50", torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url)])
def test_missing_and_offline(offline_hub, name, url):
    folder, downloader = offline_hub
    with pytest.raises(UserError) as e:
        build_model(name, 64, pretrained=True)
    msg = str(e.value)
    assert os.path.basename(url) in msg and url in msg and str(folder) in msg and "TORCH_HOME" in msg
    assert downloader.calls and downloader.calls[0][0] == url


def test_pickled_code_is_refused(offline_hub, booby_trapped):
    folder, _ = offline_hub
    booby_trapped(folder / os.path.basename(R18))
    with pytest.raises(UserError, match="refusing to load") as e:
        build_model("resnet18", 64, pretrained=True)
    assert str(folder / os.path.basename(R18)) in str(e.value)
    assert "weights_only=False" not in str(e.value) and "safe_globals" not in str(e.value)
    assert not booby_trapped.marker.exists()


def test_corrupt_file(offline_hub):
    folder, _ = offline_hub
    folder.mkdir(parents=True)
    (folder / BN_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match="could not be read.*delete it"):
        build_model("bn_inception", 64, pretrained=True)


def test_wrong_file_in_cache(offline_hub):
    folder, _ = offline_hub
    folder.mkdir(parents=True)
    torch.save(distinct(torchvision.models.resnet18().state_dict()), folder / BN_FILE)
    with pytest.raises(UserError, match="does not fit.*not the ImageNet file for bn_inception"):
        build_model("bn_inception", 64, pretrained=True)
