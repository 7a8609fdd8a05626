"""scripts/download_data.py Inshop: no automatic download exists (Google Drive, a browser step), so it
fails loudly with what to fetch and where to put it, and unpacks an img.zip put there by hand."""
import os
import shutil
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import download_data  # noqa: E402


@pytest.fixture
def no_verify(monkeypatch):
    calls = []
    monkeypatch.setattr(download_data, "verify", lambda data_dir, names: calls.append(list(names)) or 0)
    return calls


def test_missing_inshop_says_what_to_download_and_where(tmp_path, no_verify, capsys):
    assert download_data.main(["--DATA_DIR", str(tmp_path), "--quiet", "Inshop"]) == 1
    err = capsys.readouterr().err
    assert "DeepFashion/InShopRetrieval.html" in err and "Google Drive" in err
    assert "Img/img.zip" in err and "Eval/list_eval_partition.txt" in err
    assert os.path.join(str(tmp_path), "Inshop_Clothes", "Img") in err
    assert no_verify == []


def test_img_zip_put_by_hand_is_unpacked_into_the_loaders_layout(tmp_path, inshop_dir, no_verify):
    from embedding_transfer.dataset import build_dataset
    data = tmp_path / "data"
    root = data / "Inshop_Clothes"
    (root / "Eval").mkdir(parents=True)
    shutil.copy(inshop_dir / "Inshop_Clothes" / "Eval" / "list_eval_partition.txt", root / "Eval")
    images = inshop_dir / "Inshop_Clothes" / "Img"
    with zipfile.ZipFile(root / "Img.zip", "w") as z:          # img.zip holds the img/ folder
        for folder, _, files in os.walk(images):
            for f in files:
                z.write(os.path.join(folder, f), os.path.relpath(os.path.join(folder, f), images))
    (root / "Img").mkdir()
    os.rename(root / "Img.zip", root / "Img" / "img.zip")
    assert download_data.main(["--DATA_DIR", str(data), "--quiet", "Inshop"]) == 0
    assert no_verify == [["Inshop"]]
    assert len(build_dataset("Inshop", str(data), "eval")) == len(build_dataset("Inshop", str(inshop_dir), "eval"))


def test_a_damaged_img_zip_is_named(tmp_path, no_verify, capsys):
    img = tmp_path / "Inshop_Clothes" / "Img"
    img.mkdir(parents=True)
    (img / "img.zip").write_bytes(b"PK\x03\x04 truncated")
    assert download_data.main(["--DATA_DIR", str(tmp_path), "--quiet", "Inshop"]) == 1
    assert "img.zip" in capsys.readouterr().err


def test_inshop_is_not_among_the_default_data_sets(monkeypatch, tmp_path, no_verify):
    called = []
    monkeypatch.setattr(download_data, "GETTERS", {k: (lambda d, q, k=k: called.append(k))
                                                   for k in download_data.GETTERS})
    assert download_data.main(["--DATA_DIR", str(tmp_path)]) == 0
    assert called == ["cub", "cars", "SOP"] and "Inshop" in download_data.GETTERS
