"""torchrun with 2 CPU processes (gloo) gives the single-process result with the paper's networks:
same weights after an epoch (frozen BatchNorm), same Recall@K; the building blocks on their own.
Every loss, step by step: tests/test_ddp_steps.py."""
import os
import socket
import subprocess
import sys

import pytest
import torch

from embedding_transfer import distributed
from embedding_transfer import views

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script, args, nproc):
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
                f"--master_port={free_port()}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd + [os.path.join(ROOT, script), *args], capture_output=True, text=True,
                         timeout=900, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def paper_network_run(tmp_path, tiny_cub, tiny_flags, source_ckpt, model, nproc, *extra):
    """One short Relaxed_MS run of a paper network (ImageNet classifier included) at 64 px with a
    loader worker per process; returns the saved state."""
    args = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--loss", "Relaxed_MS", "--model", model,
                         "--crop-size", "64", "--workers", "1", "--embedding-size", "16", "--batch-size", "44",
                         "--IPC", "2", "--source-ckpt", source_ckpt, "--source-model", "resnet_narrow",
                         "--source-embedding-size", "32", "--optimizer", "sgd", "--lr", "0.001", *extra]
    log_dir = tmp_path / f"{model}{'_'.join(extra)}_{nproc}"
    launch("code/train_target.py", args + ["--LOG_DIR", str(log_dir)], nproc)
    (ckpt,) = log_dir.glob("logs_cub/*/checkpoint.pth")
    return torch.load(ckpt, weights_only=True)


def test_the_warm_up_switch_trains_like_one_process(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    """ResNet-18's unused ImageNet classifier (fc) once stopped DDP in its first step. With frozen
    BatchNorm statistics two processes give one process's weights, the warm-up's switch to training
    every parameter (BatchNorm's affine too) included. (Without warm-up, every loss with ResNet-18
    and BN-Inception, step by step: tests/test_ddp_steps.py.)"""
    one, two = (paper_network_run(tmp_path, tiny_cub, tiny_flags, source_ckpt, "resnet18", n, "--bn-freeze", "1",
                                  "--warm", "1", "--epochs", "2") for n in (1, 2))
    diff = max(float((one["model"][k] - two["model"][k]).abs().max()) for k in one["model"]
               if one["model"][k].is_floating_point())
    assert diff <= 1e-4
    bn = one["model"]["model.layer1.0.bn1.weight"]   # BatchNorm's affine trained after the warm-up
    assert not torch.equal(bn, torch.ones_like(bn))


@pytest.mark.parametrize("model", ["resnet18", "bn_inception"])
def test_paper_networks_train_batchnorm_under_torchrun(model, tiny_cub, tiny_flags, source_ckpt, tmp_path):
    """--bn-freeze 0 (the paper's targets): each process normalises with its own share's statistics
    (exactly one process's only with --sync-bn, which needs CUDA), so this checks the run itself."""
    state = paper_network_run(tmp_path, tiny_cub, tiny_flags, source_ckpt, model, 2, "--bn-freeze", "0")
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["model"].values()
                                       if v.is_floating_point())


def test_distributed_evaluation_equals_one_process(tiny_cub, source_ckpt):
    args = ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0",
            "--batch-size", "7", "--ckpt", source_ckpt]
    lines = [[l for l in launch("evaluate.py", args, n).splitlines() if l.startswith("R@")] for n in (1, 2)]
    assert lines[0] == lines[1] and len(lines[0]) == 4


def test_single_process_helpers_are_identities():
    x = torch.randn(6, 3, requires_grad=True)
    assert views.gather_views(x, views=2) is x
    assert distributed.scale_grad(x, 1) is x
    assert distributed.world_size() == 1 and distributed.is_main() and not distributed.any_rank(False)


def test_scale_grad_keeps_the_value_and_scales_the_gradient():
    x = torch.tensor(2.0, requires_grad=True)
    y = distributed.scale_grad(x * x, 3)
    y.backward()
    assert float(y.detach()) == 4.0 and float(x.grad) == 12.0
