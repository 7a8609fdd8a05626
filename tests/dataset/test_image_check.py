"""Broken images: found before training (once per set of files), and reported as one line when a
loader worker meets one."""
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from embedding_transfer.dataset import check_images, load_image
from embedding_transfer.dataset.image_check import problem
from embedding_transfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def truncate(path, cut=20):
    """Cut the end off (the header stays readable), as an interrupted download does."""
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-cut])


def photos(folder, n):
    """n noisy JPEGs and a PNG, large enough that their headers end well before their ends."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / (f"{i}.jpg" if i else "0.png")
        PIL.Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_problems_of_broken_files(tmp_path):
    png, *jpegs = photos(tmp_path / "images", 4)
    assert [problem(p) for p in [png, *jpegs]] == [None] * 4
    truncate(jpegs[0])
    truncate(png)
    (tmp_path / "page.jpg").write_text("<!DOCTYPE html><html>not an image</html>")
    assert problem(jpegs[0]) == "truncated (JPEG without its end marker)"
    assert problem(png) == "truncated (PNG without its end marker)"
    assert problem(str(tmp_path / "page.jpg")).startswith("not a readable image")
    assert problem(str(tmp_path / "absent.jpg")) == "missing"


def test_check_names_the_broken_files_and_remembers_good_sets(tmp_path, monkeypatch):
    paths = photos(tmp_path / "images", 12)
    calls = []
    monkeypatch.setattr("embedding_transfer.dataset.image_check.problem", lambda p: calls.append(p) or problem(p))
    check_images(paths, "cub train")
    assert len(calls) == len(paths)
    check_images(paths, "cub train")            # remembered: nothing opened again
    assert len(calls) == len(paths)
    truncate(paths[5])                           # a changed file is checked again
    with pytest.raises(UserError, match=rf"1 of the 12 images of cub train cannot be used: "
                                        rf"{paths[5]}: truncated"):
        check_images(paths, "cub train")
    assert len(calls) == 2 * len(paths)


class Broken(torch.utils.data.Dataset):
    def __init__(self, path):
        self.path = path

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(1) if i < 2 else load_image(self.path)


def test_a_worker_s_error_keeps_its_one_line_message(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    loader = torch.utils.data.DataLoader(Broken(str(bad)), batch_size=1, num_workers=2)
    with pytest.raises(UserError) as e:
        list(loader)
    assert str(e.value).startswith(f"cannot read image {bad}:") and "Traceback" not in str(e.value)


def test_a_broken_eval_image_stops_before_training_and_a_worker_error_is_one_line(tiny_flags, cub_dir, tmp_path):
    """End to end with loader workers: a truncated image of the evaluation split stops the run
    before the first step; one the check could not see (it was remembered good) arrives from the
    worker as the same one-line error."""
    data = cub_dir
    image = sorted((data / "CUB_200_2011" / "images").glob("150.*/Species_*.jpg"))[0]
    argv = [sys.executable, os.path.join(ROOT, "code", "train_target.py"), *tiny_flags, "--workers", "2",
            "--dataset", "cub", "--DATA_DIR", str(data), "--LOG_DIR", str(tmp_path / "logs"), "--loss",
            "Proxy_Anchor", "--embedding-size", "8", "--batch-size", "12", "--IPC", "2"]
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300).returncode == 0
    # Broken after the good check was remembered, with its size and time kept: only the worker sees it.
    stat = os.stat(image)
    size = len(open(image, "rb").read())
    open(image, "wb").write(b"<!DOCTYPE html>".ljust(size, b" "))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    lines = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("warning:")]
    assert out.returncode == 2 and "Traceback" not in out.stderr and "Caught" not in out.stderr, out.stderr
    assert [l for l in lines if l.startswith("error: ")] == [l for l in lines if l.startswith("error:")]
    assert any(l.startswith(f"error: cannot read image {image}") for l in lines), out.stderr
    # A fresh check (another cache) finds it before any training.
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache2")
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2 and f"images of cub eval cannot be used: {image}: not a readable" in out.stderr
    assert "epoch 0" not in out.stdout
