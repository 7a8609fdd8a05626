"""Nothing lost: a run killed with SIGKILL mid-epoch and resumed ends with the weights of the run
left alone; same seed, same weights; interrupted and failed runs keep their last checkpoint."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from embedding_transfer import train_target
from embedding_transfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = "resnet_narrow_CRD_embedding16_adamw_lr0.0001_batch12"


def argv(tiny_flags, data, log_dir, source_ckpt, *extra):
    flags = [f for f in tiny_flags]
    flags[flags.index("--epochs") + 1] = "3"
    return flags + ["--dataset", "cub", "--DATA_DIR", str(data), "--LOG_DIR", str(log_dir), "--loss", "CRD",
                    "--embedding-size", "16", "--batch-size", "12", "--IPC", "2", "--nce-k", "16",
                    "--source-ckpt", source_ckpt, "--source-model", "resnet_narrow",
                    "--source-embedding-size", "32", *extra]


def final_state(log_dir):
    return torch.load(os.path.join(log_dir, "logs_cub", RUN, "checkpoint.pth"), weights_only=True)


def max_diff(a, b):
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def launch(args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "code", "train_target.py"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    workers = ["--workers", "2"]
    whole = launch(argv(tiny_flags, tiny_cub, tmp_path / "whole", source_ckpt, *workers))
    assert whole.wait(timeout=600) == 0, whole.stderr.read()

    ckpt = tmp_path / "cut" / "logs_cub" / RUN / "checkpoint.pth"
    cut = launch(argv(tiny_flags, tiny_cub, tmp_path / "cut", source_ckpt, *workers))
    deadline = time.time() + 600
    while not ckpt.exists():            # epoch 0 saved: the run is now inside epoch 1
        assert cut.poll() is None and time.time() < deadline, "the run ended before epoch 0 was saved"
        time.sleep(0.05)
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    assert torch.load(ckpt, weights_only=True)["epoch"] == 0
    resumed = launch(argv(tiny_flags, tiny_cub, tmp_path / "cut", source_ckpt, *workers, "--resume", str(ckpt)))
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()

    a, b = final_state(tmp_path / "whole"), final_state(tmp_path / "cut")
    assert a["epoch"] == b["epoch"] == 2
    assert max_diff(a["model"], b["model"]) <= 1e-5
    assert max_diff(a["loss"], b["loss"]) <= 1e-5          # CRD memory banks, proxies
    assert a["best"]["epoch"] == b["best"]["epoch"]
    lines = (tmp_path / "cut" / "logs_cub" / RUN / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3                                 # epoch 0, then epochs 1 and 2 after resuming


def test_same_seed_same_weights(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    for name in ("a", "b"):
        train_target.main(train_target.get_args_parser().parse_args(
            argv(tiny_flags, tiny_cub, tmp_path / name, source_ckpt)))
    assert max_diff(final_state(tmp_path / "a")["model"], final_state(tmp_path / "b")["model"]) == 0


def test_resume_with_other_settings_is_refused(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    train_target.main(train_target.get_args_parser().parse_args(argv(tiny_flags, tiny_cub, tmp_path, source_ckpt)))
    ckpt = str(tmp_path / "logs_cub" / RUN / "checkpoint.pth")
    other = argv(tiny_flags, tiny_cub, tmp_path / "o", source_ckpt, "--resume", ckpt, "--seed", "1")
    with pytest.raises(UserError, match="--seed 0 .now 1."):
        train_target.main(train_target.get_args_parser().parse_args(other))
    with pytest.raises(UserError, match="does not exist"):
        train_target.main(train_target.get_args_parser().parse_args(
            argv(tiny_flags, tiny_cub, tmp_path / "o", source_ckpt, "--resume", str(tmp_path / "x.pth"))))


def test_sigterm_stops_cleanly_and_says_how_to_resume(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    ckpt = tmp_path / "logs_cub" / RUN / "checkpoint.pth"
    flags = argv(tiny_flags, tiny_cub, tmp_path, source_ckpt)
    flags[flags.index("--epochs") + 1] = "50"
    run = launch(flags)
    deadline = time.time() + 600
    while not ckpt.exists():
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    err = run.communicate(timeout=120)[1]
    assert run.returncode == 130, err
    assert f"--resume {ckpt}" in err and "Traceback" not in err
    assert torch.load(ckpt, weights_only=True)["epoch"] >= 0


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tiny_cub, tiny_flags, source_ckpt, tmp_path, monkeypatch):
    from embedding_transfer import objectives
    real = objectives.TransferObjective.forward
    calls = {"n": 0}

    def forward(self, *a):
        calls["n"] += 1
        loss = real(self, *a)
        return loss * float("nan") if calls["n"] > 12 else loss   # epoch 0 has 11 steps
    monkeypatch.setattr(objectives.TransferObjective, "forward", forward)
    with pytest.raises(UserError, match="at epoch 1, step 1"):
        train_target.main(train_target.get_args_parser().parse_args(argv(tiny_flags, tiny_cub, tmp_path, source_ckpt)))
    assert torch.load(tmp_path / "logs_cub" / RUN / "checkpoint.pth", weights_only=True)["epoch"] == 0
