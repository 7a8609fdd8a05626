"""Where SPEC.md is silent, the authors' scripts decide (../shared/paper/reference-flags.md): no
abbreviated flags, warm-up, Adam's eps, Attention's blocks, each network's own input, evaluate.py's
flags and defaults, --gpu-id -1."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from embedding_transfer import train_source
from embedding_transfer import train_target
from embedding_transfer.dataset import build_transform, convert_input
from embedding_transfer.optim import Warmup
from embedding_transfer.models import build_model
from embedding_transfer.distributed import select_device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


evaluate_cli = load_script("evaluate.py", "evaluate_cli_defaults")


# --- flags -------------------------------------------------------------------------------------

@pytest.mark.parametrize("parser, argv", [
    (train_source.get_args_parser, ["--save-d", "x"]),     # once silently read as --save-dir
    (train_source.get_args_parser, ["--embedding", "64"]),
    (train_target.get_args_parser, ["--source-c", "x.pth"]),
    (evaluate_cli.get_args_parser, ["--ckpt", "x.pth", "--target", "1"]),
])
def test_abbreviated_flags_are_refused(parser, argv, capsys):
    with pytest.raises(SystemExit) as e:
        parser().parse_args(argv)
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_train_source_save_is_the_authors_flag():
    args = train_source.get_args_parser().parse_args(["--save", "1", "--LOG_DIR", "runs"])
    assert (args.save, args.save_dir) == (1, None)
    assert train_source.checkpoint_path(args) == os.path.join("runs", "bn_inception",
                                                              "cub_bn_inception_512dim_Proxy_Anchor_ckpt.pth")


# --- warm-up -----------------------------------------------------------------------------------

def grads(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch, classifier", [("resnet18", "model.fc."), ("bn_inception", "model.last_linear.")])
def test_warmup_then_everything_trains_batchnorm_affine_included(arch, classifier):
    model = build_model(arch, 16, bn_freeze=True)
    bn_affine = {n for n, p in model.named_parameters() if n.endswith("_bn.weight") or ".bn" in n}
    assert bn_affine and not bn_affine & grads(model)               # --bn-freeze 1 holds them ...
    warmup = Warmup(model, 2)
    for epoch in (0, 1):
        warmup.set(epoch)
        assert grads(model) == {"model.embedding.weight", "model.embedding.bias"}
    warmup.set(2)                                                    # ... until the warm-up ends
    everything = {n for n, _ in model.named_parameters() if not n.startswith(classifier)}
    assert grads(model) == everything and bn_affine <= everything
    assert not any(n.startswith(classifier) for n in grads(model))  # the unused classifier never


def test_without_warmup_frozen_batchnorm_stays_frozen():
    model = build_model("resnet18", 16, bn_freeze=True)
    before = grads(model)
    Warmup(model, 0).set(5)
    assert grads(model) == before and not any(".bn" in n for n in before)


def test_bn_freeze_warm_run_trains_affine_but_not_statistics(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path),
                         "--embedding-size", "16", "--batch-size", "12", "--IPC", "2", "--loss", "Relaxed_Contra",
                         "--source-ckpt", source_ckpt, "--source-model", "resnet_narrow",
                         "--source-embedding-size", "32", "--bn-freeze", "1", "--warm", "1", "--epochs", "2",
                         "--lr", "1e-2"]
    train_target.main(train_target.get_args_parser().parse_args(argv))
    (ckpt,) = tmp_path.glob("logs_cub/*/checkpoint.pth")
    state = torch.load(ckpt, weights_only=True)["model"]
    assert not torch.equal(state["model.bn1.weight"], torch.ones_like(state["model.bn1.weight"]))
    assert torch.equal(state["model.bn1.running_mean"], torch.zeros_like(state["model.bn1.running_mean"]))
    assert torch.equal(state["model.bn1.running_var"], torch.ones_like(state["model.bn1.running_var"]))


# --- Adam's eps --------------------------------------------------------------------------------

@pytest.mark.parametrize("module, eps", [(train_target, 1.0), (train_source, 1e-8)])
def test_adam_eps_differs_between_the_trainers(module, eps, tiny_cub, tiny_flags, source_ckpt, tmp_path):
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path),
                         "--embedding-size", "16", "--batch-size", "12", "--IPC", "2", "--optimizer", "adam"]
    if module is train_target:
        argv += ["--source-ckpt", source_ckpt, "--source-model", "resnet_narrow", "--source-embedding-size", "32"]
    module.main(module.get_args_parser().parse_args(argv))
    (ckpt,) = tmp_path.glob("logs_cub/*/checkpoint.pth")
    groups = torch.load(ckpt, weights_only=True)["optimizer"]["param_groups"]
    assert {g["eps"] for g in groups} == {eps}


# --- Attention's blocks and each network's input -----------------------------------------------

class FourImages:
    """What build_objective reads of a training split: 4 images of 2 classes."""
    ys = [0, 0, 1, 1]

    def __len__(self):
        return 4

    def nb_classes(self):
        return 2


def objective_for(target_arch, source_arch, loss, crop=64):
    args = train_target.get_args_parser().parse_args(
        ["--model", target_arch, "--source-model", source_arch, "--loss", loss, "--embedding-size", "8",
         "--crop-size", str(crop), "--source-ckpt", "unused"])
    target = build_model(target_arch, 8)
    source = build_model(source_arch, 512).eval()
    return train_target.build_objective(args, target, source, FourImages(), torch.device("cpu")), source


@pytest.mark.parametrize("target, source, n_pairs", [("resnet50", "resnet50", 3), ("resnet101", "resnet50", 3),
                                                      ("resnet18", "resnet50", 4),
                                                      ("bn_inception", "bn_inception", 3)])
def test_attention_pairs_the_authors_blocks(target, source, n_pairs):
    objective, _ = objective_for(target, source, "Attention")
    assert objective.map_pairs == [(i, i) for i in range(n_pairs)]


def test_fitnet_keeps_all_four_resnet_blocks():
    objective, _ = objective_for("resnet50", "resnet50", "FitNet")
    assert objective.map_pairs == [(i, i) for i in range(4)]


def test_each_network_gets_its_own_input_normalisation():
    rng = np.random.default_rng(0)
    images = [PIL.Image.fromarray(rng.integers(0, 256, (80, 70, 3), dtype=np.uint8)) for _ in range(4)]
    batch = {m: torch.stack([build_transform(m, False, crop_size=64)(im) for im in images])
             for m in ("resnet18", "bn_inception")}
    assert torch.allclose(convert_input(batch["resnet18"], "resnet18", "bn_inception"), batch["bn_inception"],
                          atol=1e-3)
    assert torch.allclose(convert_input(batch["bn_inception"], "bn_inception", "resnet18"), batch["resnet18"],
                          atol=1e-5)
    assert convert_input(batch["resnet18"], "resnet18", "resnet50") is batch["resnet18"]

    objective, source = objective_for("resnet18", "bn_inception", "RKD")
    seen = []
    source.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    x = torch.stack([batch["resnet18"], batch["resnet18"]], dim=1)           # (B, V=2, 3, H, W)
    objective(x, torch.tensor([0, 0, 1, 1]), torch.arange(4))
    expected = torch.cat([batch["bn_inception"], batch["bn_inception"]])       # view-major
    assert torch.allclose(seen[0], expected, atol=1e-3)


# --- evaluate.py -------------------------------------------------------------------------------

def embeddings_norms(tiny_cub, ckpt, tmp_path, *extra):
    out = tmp_path / f"emb{len(list(tmp_path.iterdir()))}.npz"
    evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(
        ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0", "--ckpt", str(ckpt),
         "--save-embeddings", str(out), *extra]))
    return np.linalg.norm(np.load(out)["embeddings"], axis=1)


def test_evaluate_takes_the_authors_flags_and_defaults(tiny_cub, source_ckpt, tmp_path):
    defaults = evaluate_cli.get_args_parser().parse_args(["--ckpt", "x"])
    assert (defaults.batch_size, defaults.workers, defaults.bn_freeze, defaults.source_norm) == (150, 20, 1, 1)
    # Our checkpoint records that the source is L2-normalised: used unless a flag says otherwise.
    assert np.allclose(embeddings_norms(tiny_cub, source_ckpt, tmp_path), 1, atol=1e-5)
    assert not np.allclose(embeddings_norms(tiny_cub, source_ckpt, tmp_path, "--target-norm", "0"), 1, atol=1e-3)
    # A checkpoint without our metadata (released, or trained with the authors' code): their
    # defaults, --target-norm 0.
    bare = tmp_path / "released.pth"
    torch.save({"model_state_dict": torch.load(source_ckpt, weights_only=True)["model_state_dict"]}, bare)
    arch = ["--model", "resnet_narrow", "--embedding-size", "32", "--source-norm", "1", "--bn-freeze", "1"]
    assert not np.allclose(embeddings_norms(tiny_cub, bare, tmp_path, *arch), 1, atol=1e-3)
    assert np.allclose(embeddings_norms(tiny_cub, bare, tmp_path, *arch, "--target-norm", "1"), 1, atol=1e-5)


# --- --gpu-id -1 -------------------------------------------------------------------------------

def test_all_gpus_without_a_gpu_says_so_and_runs_on_the_cpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(-1) == torch.device("cpu")
    assert "--gpu-id -1 asks for all GPUs, but CUDA is not available" in capsys.readouterr().err


def test_all_gpus_relaunches_like_torchrun(tiny_cub, source_ckpt, tmp_path):
    """--gpu-id -1 with N GPUs runs the command again under torchrun with N processes; here with
    two CPU processes (gloo): the same recalls as one process."""
    argv = ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0",
            "--batch-size", "7", "--ckpt", source_ckpt, "--gpu-id", "-1"]
    one = subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), *argv], capture_output=True, text=True,
                         timeout=300)
    code = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, 'code'); from embedding_transfer import distributed; "
        f"sys.exit(distributed.relaunch(2, 'evaluate.py', {argv!r}))")], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert one.returncode == 0 and code.returncode == 0, one.stderr[-2000:] + code.stderr[-2000:]
    assert "2 processes, one per GPU" in code.stdout
    recalls = [[line for line in out.stdout.splitlines() if line.startswith(("R@", "MAP@R", "RP"))]
               for out in (one, code)]
    assert recalls[0] == recalls[1] and len(recalls[0]) == 6
