"""Atomic writes: a crash while saving leaves the previous file intact and no temporary behind."""
import os

import pytest
import torch

from embedding_transfer import storage


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "best.pth"
    storage.save_torch({"w": torch.ones(2)}, str(path))

    def crash(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="No space"):
        storage.save_torch({"w": torch.zeros(2)}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["best.pth"]


def test_text_and_json(tmp_path):
    storage.save_text("a\n", str(tmp_path / "sub" / "x.txt"))
    storage.save_json({"b": 1}, str(tmp_path / "y.json"))
    storage.append_jsonl({"c": 2}, str(tmp_path / "z.jsonl"))
    storage.append_jsonl({"c": 3}, str(tmp_path / "z.jsonl"))
    assert (tmp_path / "sub" / "x.txt").read_text() == "a\n"
    assert (tmp_path / "y.json").read_text() == '{\n  "b": 1\n}\n'
    assert (tmp_path / "z.jsonl").read_text() == '{"c": 2}\n{"c": 3}\n'


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_files_get_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        storage.save_text("a\n", str(tmp_path / "atomic.txt"))
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("a\n")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "atomic.txt").st_mode & 0o777 == os.stat(tmp_path / "plain.txt").st_mode & 0o777
