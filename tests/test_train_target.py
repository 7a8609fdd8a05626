"""train_target.py end to end: every transfer loss for one short epoch from a trained source."""
import json

import pytest
import torch

from embedding_transfer import train_target
from embedding_transfer.errors import UserError
from embedding_transfer.losses import LOSSES


def run(argv):
    return train_target.main(train_target.get_args_parser().parse_args(argv))


def flags(tiny_flags, data, log_dir, source_ckpt, *extra):
    return tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(data), "--LOG_DIR", str(log_dir),
                         "--embedding-size", "16", "--batch-size", "12", "--IPC", "2", "--nce-k", "16",
                         "--source-ckpt", source_ckpt, "--source-model", "resnet_narrow",
                         "--source-embedding-size", "32", "--save", "1", *extra]


@pytest.mark.parametrize("loss", [n for n in LOSSES if n != "Proxy_Anchor"])
def test_each_transfer_loss_trains_and_saves(loss, tiny_cub, tiny_flags, source_ckpt, tmp_path):
    best = run(flags(tiny_flags, tiny_cub, tmp_path, source_ckpt, "--loss", loss))
    run_dir = tmp_path / "logs_cub" / f"resnet_narrow_{loss}_embedding16_adamw_lr0.0001_batch12"
    assert (run_dir / "cub_resnet_narrow_best_results.txt").read_text().startswith(f"Best Epoch: {best[0]}")
    ckpt = torch.load(run_dir / "cub_resnet_narrow_best.pth", weights_only=True)
    assert ckpt["model_state_dict"]["model.embedding.weight"].shape == (16, 256)
    rec = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["R@1"] == pytest.approx(best[1]["R@1"]) and rec["loss"] > 0
    assert json.loads((run_dir / "args.json").read_text())["loss"] == loss


def test_proxy_anchor_alone_needs_no_source(tiny_cub, tiny_flags, tmp_path, capsys):
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path),
                         "--embedding-size", "8", "--batch-size", "12", "--IPC", "2", "--loss", "Proxy_Anchor"]
    epoch, best = run(argv)   # no --source-ckpt given, none needed
    assert "Proxy_Anchor: resnet_narrow-8 on cpu" in capsys.readouterr().out     # no " from <source>"
    (run_dir,) = (tmp_path / "logs_cub").iterdir()
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[epoch])
    assert {k: record[k] for k in best} == best and record["loss"] > 0
    state = torch.load(run_dir / "checkpoint.pth", weights_only=True)["loss"]
    assert set(state) == {"method.proxies"} and state["method.proxies"].shape == (100, 8)


def test_source_is_frozen_and_target_learns(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    before = torch.load(source_ckpt, weights_only=True)["model_state_dict"]
    best = run(flags(tiny_flags, tiny_cub, tmp_path, source_ckpt, "--loss", "Relaxed_Contra", "--save", "1",
                     "--score-normalised"))
    after = torch.load(source_ckpt, weights_only=True)["model_state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    # --score-normalised: the same model's test split scored again on unit-length embeddings.
    from embedding_transfer import evaluate_checkpoint
    (ckpt,) = tmp_path.glob("logs_cub/*/cub_resnet_narrow_best.pth")
    args = evaluate_checkpoint.get_args_parser().parse_args(
        ["--ckpt", str(ckpt), "--DATA_DIR", str(tiny_cub), "--workers", "0", "--target-norm", "1"])
    normalised = evaluate_checkpoint.main(args)
    assert {k for k in best[1] if k.startswith("norm/")} == {"norm/R@1", "norm/R@2", "norm/R@4", "norm/R@8",
                                                             "norm/MAP@R", "norm/RP"}
    assert all(abs(best[1]["norm/" + k] - normalised[k]) < 1e-6 for k in ("R@1", "R@2", "R@4", "R@8"))


def test_missing_source_checkpoint_is_an_error(tiny_cub, tiny_flags, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        run(flags(tiny_flags, tiny_cub, tmp_path, str(tmp_path / "nope.pth"), "--loss", "Relaxed_Contra"))
    with pytest.raises(UserError, match="--source-ckpt"):
        run(flags(tiny_flags, tiny_cub, tmp_path, "", "--loss", "RKD"))


def test_source_of_another_size_is_named(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    argv = flags(tiny_flags, tiny_cub, tmp_path, source_ckpt, "--loss", "PKT")
    argv[argv.index("--source-embedding-size") + 1] = "64"
    with pytest.raises(UserError, match="--source-embedding-size 32"):
        run(argv)


@pytest.mark.parametrize("flag,value,pattern", [("--loss", "Nope", "Relaxed_Contra, Relaxed_MS"),
                                                ("--model", "vgg", "bn_inception, resnet18"),
                                                ("--optimizer", "lamb", "adamw, sgd")])
def test_unknown_names_list_the_valid_ones(flag, value, pattern, tiny_cub, tiny_flags, source_ckpt, tmp_path):
    argv = flags(tiny_flags, tiny_cub, tmp_path, source_ckpt, flag, value)
    with pytest.raises(UserError, match=pattern):
        run(argv)


def test_gpu_id_0_runs_on_cpu_with_one_warning(tiny_cub, tiny_flags, source_ckpt, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run(flags(tiny_flags, tiny_cub, tmp_path, source_ckpt, "--loss", "PKT", "--gpu-id", "0"))
    warnings = [l for l in capsys.readouterr().err.splitlines() if l.startswith("warning:")]
    assert warnings == ["warning: --gpu-id 0 asks for GPU 0, but CUDA is not available (no GPU or a CPU-only "
                        "torch): running on the CPU, in one process."]


def test_warm_up_trains_only_the_embedding(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    from embedding_transfer import models
    torch.manual_seed(0)   # the run's --seed 0: the target starts from these weights
    start = models.build_model("resnet_narrow", 16).state_dict()
    run(flags(tiny_flags, tiny_cub, tmp_path, source_ckpt, "--loss", "Relaxed_Contra", "--warm", "1",
              "--bn-freeze", "1"))
    saved = torch.load(tmp_path / "logs_cub" / "resnet_narrow_Relaxed_Contra_embedding16_adamw_lr0.0001_batch12"
                       / "cub_resnet_narrow_best.pth", weights_only=True)["model_state_dict"]
    assert torch.equal(saved["model.conv1.weight"], start["model.conv1.weight"])   # same seed, untouched
    assert not torch.equal(saved["model.embedding.weight"], start["model.embedding.weight"])


@pytest.mark.parametrize("dataset", ["cars", "SOP"])
def test_other_layouts(dataset, request, tiny_flags, source_ckpt, tmp_path):
    data = request.getfixturevalue({"cars": "cars_dir", "SOP": "sop_dir"}[dataset])
    argv = flags(tiny_flags, data, tmp_path, source_ckpt, "--loss", "Relaxed_Contra")
    argv[argv.index("--dataset") + 1] = dataset
    argv[argv.index("--batch-size") + 1] = "4"
    best = run(argv)
    ks = ["R@1", "R@10", "R@100", "R@1000"] if dataset == "SOP" else ["R@1", "R@2", "R@4", "R@8"]
    assert list(best[1]) == ks + ["MAP@R", "RP"]
