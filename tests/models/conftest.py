"""Fixtures for the model tests: a private torch.hub cache with no network, and a booby-trapped file."""
import urllib.error

import pytest
import torch


class Offline:
    """Stands in for torch.hub.download_url_to_file: records the call, then fails like no network."""

    def __init__(self):
        self.calls = []

    def __call__(self, url, dst, hash_prefix=None, progress=True):
        self.calls.append((url, dst, hash_prefix))
        raise urllib.error.URLError("no network in the tests")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """TORCH_HOME in a temporary folder, downloads failing; yields (checkpoints folder, downloader)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere would win over TORCH_HOME
    fake = Offline()
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")
    return folder, fake


class CreatesFile:
    """Unpickling this would run open(path, 'w'), i.e. create a file: code in a weight file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def booby_trapped(tmp_path):
    """write(path) saves a weight-like file whose unpickling would create `marker`."""
    marker = tmp_path / "payload_ran"

    def write(path, wrap=lambda x: x):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(wrap({"conv1.weight": torch.zeros(1), "evil": CreatesFile(marker)}), path)
        return path

    write.marker = marker
    return write
