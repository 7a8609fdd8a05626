"""Expected failures end with one `error:` line and a non-zero exit, never a traceback."""
import os
import pickle
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e   # each test runs an entry point in a new process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(script, *args, cwd=None):
    out = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True, text=True,
                         timeout=300, cwd=cwd)
    return out.returncode, out.stderr


class Payload:
    """Unpickling this would create a file: the code that loads checkpoints must never run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def assert_clean_error(rc, err, *fragments):
    """One error message (its first line starts with `error:`; a list of problems follows it)."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    (start,) = [i for i, l in enumerate(lines) if l.startswith("error:")]
    message = "\n".join(lines[start:])
    for f in fragments:
        assert f in message, message
    return message


def test_missing_dataset(tmp_path):
    rc, err = cli("code/train_target.py", "--DATA_DIR", str(tmp_path), "--dataset", "cub", "--wandb", "disabled",
                  "--LOG_DIR", str(tmp_path / "logs"), "--model", "resnet_narrow", "--random-init",
                  "--loss", "Proxy_Anchor")
    message = assert_clean_error(rc, err, os.path.join(str(tmp_path), "CUB_200_2011"), "caltech.edu")
    assert len(message.splitlines()) == 1   # one problem: one line


def test_every_missing_input_is_named_at_once(tmp_path):
    """No data, no ImageNet weights (an empty torch.hub cache, downloads refused), no source
    checkpoint and no checkpoint to resume: all four in the one message, before anything trains."""
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch_home"), http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "code", "train_target.py"), "--DATA_DIR", str(tmp_path),
                          "--dataset", "cub", "--wandb", "disabled", "--LOG_DIR", str(tmp_path / "logs"),
                          "--resume", str(tmp_path / "checkpoint.pth")],
                         capture_output=True, text=True, timeout=300, env=env)
    message = assert_clean_error(out.returncode, out.stderr, "4 problems", "CUB_200_2011",
                                 "ImageNet weights for bn_inception", "--source-ckpt", "--resume")
    assert [l.split(".")[0].strip() for l in message.splitlines()[1:]] == ["1", "2", "3", "4"]
    assert not (tmp_path / "logs").exists()
    evaluated = subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), "--DATA_DIR", str(tmp_path),
                                "--ckpt", str(tmp_path / "missing.pth")], capture_output=True, text=True, timeout=300)
    assert_clean_error(evaluated.returncode, evaluated.stderr, "2 problems", "--ckpt", "CUB_200_2011")


def test_batch_not_divisible_by_ipc(tiny_cub, tmp_path):
    rc, err = cli("code/train_source.py", "--DATA_DIR", str(tiny_cub), "--batch-size", "10", "--IPC", "3",
                  "--wandb", "disabled", "--LOG_DIR", str(tmp_path))
    assert_clean_error(rc, err, "--batch-size 10 is not divisible by --IPC 3")


def test_too_many_classes_per_batch(tiny_cub, tmp_path):
    rc, err = cli("code/train_source.py", "--DATA_DIR", str(tiny_cub), "--batch-size", "120", "--IPC", "1",
                  "--wandb", "disabled", "--LOG_DIR", str(tmp_path))
    assert_clean_error(rc, err, "only 100 classes")


def test_unknown_dataset(tmp_path):
    rc, err = cli("evaluate.py", "--dataset", "imagenet", "--ckpt", __file__)
    assert rc == 2 and "Traceback" not in err


def test_pickled_code_is_refused_and_never_runs(tiny_cub, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model_state_dict": Payload(str(marker))}, f)
    rc, err = cli("evaluate.py", "--ckpt", str(evil), "--dataset", "cub", "--DATA_DIR", str(tmp_path))
    assert_clean_error(rc, err, "refusing to load", str(evil))
    assert not marker.exists()
    rc, err = cli("code/train_target.py", "--resume", str(evil), "--loss", "Proxy_Anchor", "--wandb", "disabled",
                  "--model", "resnet_narrow", "--random-init", "--crop-size", "32", "--workers", "0",
                  "--batch-size", "12", "--IPC", "2", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path))
    assert_clean_error(rc, err, "refusing to load", str(evil))
    assert not marker.exists()


def test_unwritable_log_dir_fails_before_training(tiny_cub, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, err = cli("code/train_target.py", "--DATA_DIR", str(tiny_cub), "--loss", "Proxy_Anchor", "--model",
                  "resnet_narrow", "--random-init", "--wandb", "disabled", "--LOG_DIR", str(blocker))
    assert_clean_error(rc, err, "--LOG_DIR")


@pytest.mark.parametrize("loss, source, refused", [
    ("Proxy_Anchor", None, False),            # no source: its default network sees no image
    ("Relaxed_Contra", None, False),          # a Lite target's default source is Lite too
    ("Relaxed_Contra", "bn_inception", True),
])
def test_bn_inception_crop_rule_applies_only_to_networks_that_run(loss, source, refused):
    from embedding_transfer import loaders
    from embedding_transfer import train_target
    from embedding_transfer.errors import UserError
    argv = ["--loss", loss, "--model", "efficientnet_lite0", "--crop-size", "48"]
    args = train_target.get_args_parser().parse_args(argv + (["--source-model", source] if source else []))
    train_target.default_source(args)
    if refused:
        with pytest.raises(UserError, match="--crop-size 48: BN-Inception"):
            loaders.image_options(args)
    else:
        assert loaders.image_options(args) == {"crop_size": 48}
