"""The downloaders (scripts/download_data.py, scripts/download_sources.py, scripts/downloads.py)
against a local HTTP server with Range support, serving miniature archives laid out like the
real ones. Google Drive is replaced at gdown.download. Nothing here touches the internet."""
import hashlib
import http.server
import io
import os
import re
import sys
import tarfile
import threading
import types
import zipfile

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import download_data  # noqa: E402
import download_sources  # noqa: E402
import downloads  # noqa: E402


# ---- a local HTTP server that answers Range requests -------------------------------------------

class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves server.files {path: bytes}; honours 'Range: bytes=N-' unless server.ranges is False;
    server.cut[path] = n sends only n bytes of the body (with the full Content-Length) then hangs
    up, as a dropped connection does."""

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and srv.ranges:
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        data = body[start:]
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        cut = srv.cut.get(self.path)
        self.wfile.write(data if cut is None else data[:cut])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.files, srv.log, srv.cut, srv.ranges = {}, [], {}, True
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def md5(data):
    return hashlib.md5(data).hexdigest()


def tgz_of(folder, arcname, extra=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(str(folder), arcname=arcname)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_of(folder, prefix):
    """A zip of everything under `folder`, each path under the archive folder `prefix`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for dirpath, _, files in os.walk(folder):
            for f in sorted(files):
                full = os.path.join(dirpath, f)
                z.write(full, os.path.join(prefix, os.path.relpath(full, folder)))
    return buf.getvalue()


@pytest.fixture
def no_verify(monkeypatch):
    """Replaces the final image count (the miniature sets do not have the paper's counts)."""
    calls = []
    monkeypatch.setattr(download_data, "verify", lambda data_dir, names: calls.append(list(names)) or 0)
    return calls


def serve_archive(server, monkeypatch, name, data, md5sum="auto", path=None):
    path = path or f"/{name}"
    server.files[path] = data
    monkeypatch.setitem(download_data.ARCHIVES, name, {
        "urls": [server.url(path)], "md5": md5(data) if md5sum == "auto" else md5sum})
    return path


@pytest.fixture
def cub_tgz(cub_dir):
    """CUB_200_2011.tgz as the real one: CUB_200_2011/images/NNN.Name/*.jpg (+ attributes.txt)."""
    return tgz_of(cub_dir / "CUB_200_2011", "CUB_200_2011", {"attributes.txt": b"1 has_bill_shape\n"})


def n_cub_train(layout):
    return sum(layout.cub_images_per_class(i) for i in range(1, 101))


def run_data(data_dir, *names):
    return download_data.main(["--DATA_DIR", str(data_dir), "--quiet", *names])


# ---- data sets ---------------------------------------------------------------------------------

def test_cub_download_unpacks_in_the_loaders_layout(server, monkeypatch, tmp_path, cub_tgz, layout, no_verify):
    from embedding_transfer.dataset import build_dataset
    serve_archive(server, monkeypatch, "CUB_200_2011.tgz", cub_tgz)
    data = tmp_path / "data"
    assert run_data(data, "cub") == 0
    assert len(build_dataset("cub", str(data), "train")) == n_cub_train(layout)
    assert (data / "attributes.txt").is_file()
    assert md5((data / "CUB_200_2011.tgz").read_bytes()) == md5(cub_tgz)
    assert not list(data.glob(".unpacking-*")) and not list(data.glob("*.part"))
    assert no_verify == [["cub"]]


def test_md5_mismatch_names_the_archive_removes_it_and_does_not_unpack(server, monkeypatch, tmp_path, cub_tgz,
                                                                       no_verify, capsys):
    serve_archive(server, monkeypatch, "CUB_200_2011.tgz", cub_tgz, md5sum="0" * 32)
    data = tmp_path / "data"
    assert run_data(data, "cub") == 1
    err = capsys.readouterr().err
    assert re.search(r"error: cub: .*CUB_200_2011\.tgz.* is corrupt: MD5 " + md5(cub_tgz), err)
    assert sorted(os.listdir(data)) == []  # no archive, no .part, nothing unpacked
    assert no_verify == []


def test_a_truncated_part_file_resumes_with_a_range_request(server, monkeypatch, tmp_path, cub_tgz, layout, no_verify):
    from embedding_transfer.dataset import build_dataset
    path = serve_archive(server, monkeypatch, "CUB_200_2011.tgz", cub_tgz)
    data = tmp_path / "data"
    data.mkdir()
    have = len(cub_tgz) * 2 // 5
    (data / "CUB_200_2011.tgz.part").write_bytes(cub_tgz[:have])
    assert run_data(data, "cub") == 0
    assert server.log == [(path, f"bytes={have}-")]
    assert md5((data / "CUB_200_2011.tgz").read_bytes()) == md5(cub_tgz)
    assert len(build_dataset("cub", str(data), "train")) == n_cub_train(layout)


def test_a_dropped_connection_keeps_the_part_file_and_the_next_run_resumes(server, monkeypatch, tmp_path, cub_tgz,
                                                                           no_verify, capsys):
    path = serve_archive(server, monkeypatch, "CUB_200_2011.tgz", cub_tgz)
    cut = len(cub_tgz) // 3
    server.cut[path] = cut
    data = tmp_path / "data"
    assert run_data(data, "cub") == 1
    assert "run again to resume" in capsys.readouterr().err
    assert (data / "CUB_200_2011.tgz.part").stat().st_size == cut
    assert not (data / "CUB_200_2011").exists()
    del server.cut[path]
    assert run_data(data, "cub") == 0
    assert server.log[-1] == (path, f"bytes={cut}-")
    assert (data / "CUB_200_2011" / "images").is_dir()


def test_a_server_that_ignores_range_gets_a_fresh_download(server, monkeypatch, tmp_path, cub_tgz, no_verify):
    serve_archive(server, monkeypatch, "CUB_200_2011.tgz", cub_tgz)
    server.ranges = False
    data = tmp_path / "data"
    data.mkdir()
    (data / "CUB_200_2011.tgz.part").write_bytes(b"x" * 1000)  # stale bytes must not stay in front
    assert run_data(data, "cub") == 0
    assert md5((data / "CUB_200_2011.tgz").read_bytes()) == md5(cub_tgz)


def test_a_present_corrupt_archive_is_replaced_and_a_good_one_is_used(server, monkeypatch, tmp_path, cub_tgz,
                                                                      no_verify, capsys):
    path = serve_archive(server, monkeypatch, "CUB_200_2011.tgz", cub_tgz)
    data = tmp_path / "data"
    data.mkdir()
    (data / "CUB_200_2011.tgz").write_bytes(cub_tgz[:100])
    assert run_data(data, "cub") == 0
    assert "CUB_200_2011.tgz is corrupt" in capsys.readouterr().err
    assert server.log == [(path, None)]
    # An archive put there by hand (here: the one just downloaded) is unpacked without a download.
    import shutil
    shutil.rmtree(data / "CUB_200_2011")
    assert run_data(data, "cub") == 0
    assert len(server.log) == 1 and (data / "CUB_200_2011" / "images").is_dir()


def test_an_unpacked_data_set_is_not_downloaded_again(server, monkeypatch, tmp_path, cub_tgz, no_verify, capsys):
    serve_archive(server, monkeypatch, "CUB_200_2011.tgz", cub_tgz)
    data = tmp_path / "data"
    (data / "CUB_200_2011" / "images").mkdir(parents=True)
    assert run_data(data, "cub") == 0
    assert server.log == [] and "have" in capsys.readouterr().out
    assert no_verify == [["cub"]]  # the counts are still checked


def test_no_names_means_all_three_and_unknown_names_are_refused(monkeypatch, tmp_path, no_verify, capsys):
    called = []
    monkeypatch.setattr(download_data, "GETTERS", {k: (lambda d, q, k=k: called.append(k))
                                                   for k in download_data.GETTERS})
    assert run_data(tmp_path) == 0
    assert called == ["cub", "cars", "SOP"] and no_verify == [["cub", "cars", "SOP"]]
    with pytest.raises(SystemExit) as e:
        run_data(tmp_path, "cub", "imagenet")
    assert e.value.code == 2 and "unknown data set(s) imagenet" in capsys.readouterr().err


def test_sop_zip_unpacks(server, monkeypatch, tmp_path, sop_dir, no_verify):
    from embedding_transfer.dataset import build_dataset
    serve_archive(server, monkeypatch, "Stanford_Online_Products.zip",
                  zip_of(sop_dir / "Stanford_Online_Products", "Stanford_Online_Products"))
    data = tmp_path / "data"
    assert run_data(data, "SOP") == 0
    assert len(build_dataset("SOP", str(data), "eval")) == 8


@pytest.fixture
def cars_files(cars_dir):
    """The official pair (car_ims.tgz, cars_annos.mat) made from the reference layout."""
    return {"car_ims.tgz": tgz_of(cars_dir / "cars196" / "car_ims", "car_ims"),
            "cars_annos.mat": (cars_dir / "cars196" / "cars_annos.mat").read_bytes(),
            "tree": cars_dir / "cars196"}


def test_cars_official_pair_is_used_when_it_answers(server, monkeypatch, tmp_path, cars_files, layout, no_verify):
    from embedding_transfer.dataset import build_dataset
    for name in ("car_ims.tgz", "cars_annos.mat"):
        serve_archive(server, monkeypatch, name, cars_files[name])
    serve_archive(server, monkeypatch, "CARS196.zip", zip_of(cars_files["tree"], "cars196"), md5sum=None)
    data = tmp_path / "data"
    assert run_data(data, "cars") == 0
    assert [p for p, _ in server.log] == ["/car_ims.tgz", "/cars_annos.mat"]
    n_train = sum(1 for c in layout.cars_classes if c <= 98)
    assert len(build_dataset("cars", str(data), "train")) == n_train


def test_cars_falls_back_to_the_zip_when_the_official_host_is_gone(server, monkeypatch, tmp_path, cars_files,
                                                                   layout, no_verify):
    from embedding_transfer.dataset import build_dataset
    for name in ("car_ims.tgz", "cars_annos.mat"):  # 404: registered, not served
        monkeypatch.setitem(download_data.ARCHIVES, name, {"urls": [server.url(f"/gone/{name}")], "md5": "0" * 32})
    # car_ims/ and cars_annos.mat one folder down, beside other files: found wherever they are.
    serve_archive(server, monkeypatch, "CARS196.zip", zip_of(cars_files["tree"], "CARS196"), md5sum=None)
    data = tmp_path / "data"
    assert run_data(data, "cars") == 0
    assert [p for p, _ in server.log] == ["/gone/car_ims.tgz", "/CARS196.zip"]
    assert (data / "cars196" / "cars_annos.mat").is_file()
    assert len(build_dataset("cars", str(data), "eval")) == sum(1 for c in layout.cars_classes if c > 98)
    assert not list(data.glob(".unpacking-*"))


def test_cars_zip_without_the_expected_files_fails_loudly_then_explains_kaggle(server, monkeypatch, tmp_path,
                                                                             cars_dir, no_verify, capsys):
    for name in ("car_ims.tgz", "cars_annos.mat"):
        monkeypatch.setitem(download_data.ARCHIVES, name, {"urls": [server.url(f"/gone/{name}")], "md5": "0" * 32})
    wrong = cars_dir / "wrong"
    wrong.mkdir()
    (wrong / "readme.txt").write_text("not cars")
    serve_archive(server, monkeypatch, "CARS196.zip", zip_of(wrong, "stuff"), md5sum=None)
    data = tmp_path / "data"
    assert run_data(data, "cars") == 1
    err = capsys.readouterr().err
    assert "holds no car_ims/ folder and cars_annos.mat; it contains: stuff/, stuff/readme.txt" in err
    assert "HTTP 404" in err and "kaggle.com" in err and str(data / "cars196") in err
    assert no_verify == []


def test_cars_in_another_complete_layout_is_not_downloaded(server, monkeypatch, tmp_path, no_verify, capsys):
    for name in ("car_ims.tgz", "cars_annos.mat", "CARS196.zip"):
        monkeypatch.setitem(download_data.ARCHIVES, name, {"urls": [server.url(f"/{name}")], "md5": None})
    root = tmp_path / "data" / "cars196"
    for folder in ("cars_train", "cars_test", "devkit"):  # the classification layout (Kaggle's)
        (root / folder).mkdir(parents=True)
    (root / "devkit" / "cars_train_annos.mat").write_bytes(b"")
    assert download_data.cars_layout(str(root)) is None  # test labels missing: incomplete
    (root / "cars_test_annos_withlabels.mat").write_bytes(b"")
    assert run_data(tmp_path / "data", "cars") == 0
    assert server.log == [] and "have the classification layout" in capsys.readouterr().out
    assert no_verify == [["cars"]]


def test_a_damaged_archive_without_md5_is_removed(server, monkeypatch, tmp_path, cars_files, no_verify, capsys):
    for name in ("car_ims.tgz", "cars_annos.mat"):
        monkeypatch.setitem(download_data.ARCHIVES, name, {"urls": [server.url(f"/gone/{name}")], "md5": "0" * 32})
    good = zip_of(cars_files["tree"], "CARS196")
    serve_archive(server, monkeypatch, "CARS196.zip", good[: len(good) // 2], md5sum=None)
    data = tmp_path / "data"
    assert run_data(data, "cars") == 1
    assert re.search(r"CARS196\.zip is damaged \(BadZipFile", capsys.readouterr().err)
    assert not (data / "CARS196.zip").exists() and not (data / "cars196" / "car_ims").exists()


# ---- source networks ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Bytes of a {'model_state_dict': ...} file for the released network (BN-Inception, 512-d)
    and for another network."""
    from embedding_transfer.models import build_model
    out = {}
    for key, (arch, size) in {"good": ("bn_inception", 512), "wrong": ("resnet_narrow", 512)}.items():
        path = tmp_path_factory.mktemp("ckpt") / f"{key}.pth"
        torch.save({"model_state_dict": build_model(arch, size, pretrained=False).state_dict()}, str(path))
        out[key] = path.read_bytes()
    out["html"] = b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>"
    out["truncated"] = out["good"][: len(out["good"]) // 2]
    return out


DEST = os.path.join("bn_inception", "cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth")
DRIVE_ID = download_sources.DRIVE_IDS["bn_inception", "cub"]


def fake_gdown(monkeypatch, content):
    """gdown.download replaced: writes `content` to the output path (or raises it)."""
    calls = []

    def download(url=None, output=None, quiet=False, id=None, **kwargs):
        calls.append(id)
        assert not os.path.exists(output)  # with resume=True gdown would skip an existing file
        if isinstance(content, Exception):
            raise content
        with open(output, "wb") as f:
            f.write(content)
        return output
    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=download))
    monkeypatch.delenv("SOURCE_MODELS_URL", raising=False)
    return calls


def run_sources(out_dir, *names):
    return download_sources.main(["--out-dir", str(out_dir), *(names or ("bn_inception", "cub"))])


def test_a_good_checkpoint_from_drive_is_kept(monkeypatch, tmp_path, checkpoints, capsys):
    calls = fake_gdown(monkeypatch, checkpoints["good"])
    assert run_sources(tmp_path) == 0
    assert calls == [DRIVE_ID]
    assert (tmp_path / DEST).read_bytes() == checkpoints["good"]
    assert f"saved {tmp_path / DEST}" in capsys.readouterr().out


@pytest.mark.parametrize("kind, message", [
    ("html", "it is an HTML page"),
    ("truncated", "probably a truncated download"),
    ("wrong", "it is not the bn_inception 512-d network: "),
])
def test_a_bad_download_is_removed_and_named(monkeypatch, tmp_path, checkpoints, capsys, kind, message):
    fake_gdown(monkeypatch, checkpoints[kind])
    assert run_sources(tmp_path) == 1
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if ln.startswith("error: cub_bn_inception"))
    assert message in line and "removed it" in line
    assert f"https://drive.google.com/uc?id={DRIVE_ID}" in err
    assert "scripts/source_bn_inception_cub.sh" in err and str(tmp_path / DEST) in err
    assert not (tmp_path / DEST).exists()


def test_the_wrong_network_lists_missing_and_unexpected_keys(monkeypatch, tmp_path, checkpoints, capsys):
    fake_gdown(monkeypatch, checkpoints["wrong"])
    run_sources(tmp_path)
    assert re.search(r"\d+ keys missing \(e\.g\. .+\), \d+ unexpected keys", capsys.readouterr().err)


def test_a_present_valid_file_is_skipped(monkeypatch, tmp_path, checkpoints, capsys):
    calls = fake_gdown(monkeypatch, RuntimeError("must not be called"))
    (tmp_path / "bn_inception").mkdir()
    (tmp_path / DEST).write_bytes(checkpoints["good"])
    assert run_sources(tmp_path) == 0
    assert calls == [] and f"have {tmp_path / DEST}" in capsys.readouterr().out


def test_a_present_invalid_file_is_reported_and_downloaded_again(monkeypatch, tmp_path, checkpoints, capsys):
    calls = fake_gdown(monkeypatch, checkpoints["good"])
    (tmp_path / "bn_inception").mkdir()
    (tmp_path / DEST).write_bytes(checkpoints["html"])
    assert run_sources(tmp_path) == 0
    assert "is unusable (it is an HTML page" in capsys.readouterr().err
    assert calls == [DRIVE_ID] and (tmp_path / DEST).read_bytes() == checkpoints["good"]


def test_missing_gdown_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "gdown", None)  # import gdown -> ImportError
    monkeypatch.delenv("SOURCE_MODELS_URL", raising=False)
    assert download_sources.main(["--out-dir", str(tmp_path)]) == 1  # all six
    err = capsys.readouterr().err
    assert err.count("gdown is not installed: pip install gdown") == 1 and "Traceback" not in err
    assert "6 of 6 source networks are missing" in err and err.count("drive.google.com/uc?id=") == 6


def test_a_drive_error_is_reported(monkeypatch, tmp_path, capsys):
    fake_gdown(monkeypatch, OSError("Too many users have viewed or downloaded this file recently\nmore"))
    assert run_sources(tmp_path) == 1
    assert "Google Drive: OSError: Too many users have viewed or downloaded this file recently more" in \
        capsys.readouterr().err


def test_the_subset_arguments_choose_models_and_data_sets():
    assert download_sources.select(["cub"]) == (["bn_inception", "resnet50"], ["cub"])
    assert download_sources.select(["resnet50", "SOP", "cars"]) == (["resnet50"], ["cars", "SOP"])
    assert download_sources.select([]) == (list(download_sources.MODELS), list(download_sources.DATASETS))


def test_the_mirror_is_used_with_resume_and_checked(server, monkeypatch, tmp_path, checkpoints, capsys):
    calls = fake_gdown(monkeypatch, RuntimeError("must not be called"))
    path = "/mirror/bn_inception/cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth"
    server.files[path] = checkpoints["good"]
    monkeypatch.setenv("SOURCE_MODELS_URL", server.url("/mirror/"))
    (tmp_path / "bn_inception").mkdir()
    have = 4096
    (tmp_path / (DEST + ".part")).write_bytes(checkpoints["good"][:have])
    assert run_sources(tmp_path) == 0
    assert calls == [] and server.log == [(path, f"bytes={have}-")]
    assert (tmp_path / DEST).read_bytes() == checkpoints["good"]
    # A mirror that serves something else: named, removed, non-zero exit.
    (tmp_path / DEST).unlink()
    server.files[path] = checkpoints["html"]
    assert run_sources(tmp_path) == 1
    assert "it is an HTML page" in capsys.readouterr().err and not (tmp_path / DEST).exists()


def test_a_mirror_without_the_file_says_so(server, monkeypatch, tmp_path, capsys):
    fake_gdown(monkeypatch, RuntimeError("must not be called"))
    monkeypatch.setenv("SOURCE_MODELS_URL", server.url(""))
    assert run_sources(tmp_path, "resnet50", "SOP") == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and download_sources.DRIVE_IDS["resnet50", "SOP"] in err


def test_fetch_accepts_a_complete_part_file_answered_with_416(server, tmp_path, monkeypatch):
    server.files["/f.bin"] = b"abcdef" * 100
    (tmp_path / "f.bin.part").write_bytes(server.files["/f.bin"])
    downloads.fetch(server.url("/f.bin"), str(tmp_path / "f.bin"), md5(server.files["/f.bin"]), quiet=True)
    assert (tmp_path / "f.bin").read_bytes() == server.files["/f.bin"]
    assert server.log == [("/f.bin", "bytes=600-")]
