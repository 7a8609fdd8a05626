"""train_source.py end to end on tiny generated trees in the real archives' layouts."""
import json
import os

import pytest
import torch

from embedding_transfer import train_source
from embedding_transfer.errors import UserError


def run(argv):
    return train_source.main(train_source.get_args_parser().parse_args(argv))


def test_saves_the_released_checkpoint_name_and_run_files(source_ckpt):
    assert os.path.isfile(source_ckpt)
    ckpt = torch.load(source_ckpt, weights_only=True)
    assert ckpt["arch"] == "resnet_narrow" and ckpt["embedding_size"] == 32 and ckpt["l2_norm"]
    assert "model.embedding.weight" in ckpt["model_state_dict"]
    run_dir = os.path.join(os.path.dirname(source_ckpt), "..", "..", "logs", "logs_cub")
    (name,) = os.listdir(run_dir)
    assert name == "resnet_narrow_Proxy_Anchor_embedding32_alpha32.0_mrg0.1_adamw_lr0.0001_batch12"
    files = os.listdir(os.path.join(run_dir, name))
    assert {"args.json", "metrics.jsonl", "checkpoint.pth"} <= set(files)
    # --save 1: the best model and its results file under the authors' names, nowhere else.
    assert not any(f.endswith("_best.pth") for f in files)
    results = source_ckpt.replace("_ckpt.pth", "_results.txt")
    assert open(results).read().startswith("Best Epoch: 0\nBest Recall@1: ")
    with open(os.path.join(run_dir, name, "metrics.jsonl")) as f:
        rec = json.loads(f.readline())
    assert {"epoch", "loss", "lr", "R@1", "R@2", "R@4", "R@8", "time"} <= set(rec)


@pytest.mark.parametrize("loss", ["Proxy_NCA", "MS", "Contrastive", "Triplet", "NPair"])
def test_baseline_losses_train(loss, tiny_cub, tiny_flags, tmp_path):
    best = run(tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--embedding-size", "8",
                             "--batch-size", "12", "--IPC", "2", "--loss", loss, "--LOG_DIR", str(tmp_path),
                             "--save", "1", "--save-dir", str(tmp_path / "src")])
    ckpt = tmp_path / "src" / "resnet_narrow" / f"cub_resnet_narrow_8dim_{loss}_ckpt.pth"
    assert torch.load(ckpt, weights_only=True)["model_state_dict"]["model.embedding.weight"].shape == (8, 256)
    lines = open(str(ckpt).replace("_ckpt.pth", "_results.txt")).read().splitlines()
    assert lines[:2] == [f"Best Epoch: {best[0]}", f"Best Recall@1: {100 * best[1]['R@1']:.4f}"]


@pytest.mark.parametrize("dataset", ["cars", "SOP"])
def test_other_layouts(dataset, request, tiny_flags, tmp_path):
    data = request.getfixturevalue({"cars": "cars_dir", "SOP": "sop_dir"}[dataset])
    best = run(tiny_flags + ["--dataset", dataset, "--DATA_DIR", str(data), "--embedding-size", "8",
                             "--batch-size", "4", "--IPC", "2", "--LOG_DIR", str(tmp_path / "logs"),
                             "--save-dir", str(tmp_path / "src")])
    ks = {"R@1", "R@10", "R@100", "R@1000"} if dataset == "SOP" else {"R@1", "R@2", "R@4", "R@8"}
    assert set(best[1]) == ks | {"MAP@R", "RP"}


def test_shuffled_batches_without_ipc_with_worker_processes(tiny_cub, tiny_flags, tmp_path):
    run(tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--embedding-size", "8", "--workers", "2",
                      "--batch-size", "16", "--IPC", "0", "--LOG_DIR", str(tmp_path)])
    # The authors' default --save 0 keeps no best model (the resumable checkpoint.pth stays).
    assert not list(tmp_path.rglob("*_ckpt.pth")) and len(list(tmp_path.rglob("checkpoint.pth"))) == 1


def test_unknown_loss_lists_the_valid_ones(tiny_cub, tiny_flags, tmp_path):
    with pytest.raises(UserError, match="Proxy_Anchor, Proxy_NCA"):
        run(tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--loss", "Nope",
                          "--LOG_DIR", str(tmp_path), "--save-dir", str(tmp_path)])


def test_save_epochs_keeps_weaker_sources_that_train_target_takes(tiny_cub, tiny_flags, tmp_path, capsys):
    """--save-epochs: the model after N epochs, beside the best one, loadable as --source-ckpt; an
    epoch the run never reaches is said, not silently skipped."""
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--embedding-size", "8", "--batch-size", "12",
                         "--IPC", "2", "--LOG_DIR", str(tmp_path), "--save-dir", str(tmp_path / "src"),
                         "--save", "1", "--save-epochs", "2,1,9", "--epochs", "2"]
    run(argv)
    folder = tmp_path / "src" / "resnet_narrow"
    kept = {n: torch.load(folder / f"cub_resnet_narrow_8dim_Proxy_Anchor_epoch{n}_ckpt.pth", weights_only=True)
            for n in (1, 2)}
    assert not (folder / "cub_resnet_narrow_8dim_Proxy_Anchor_epoch9_ckpt.pth").exists()
    assert "--save-epochs 9: the run ended after 2 epochs" in capsys.readouterr().err
    w1, w2 = (kept[n]["model_state_dict"]["model.embedding.weight"] for n in (1, 2))
    assert w1.shape == (8, 256) and not torch.equal(w1, w2)
    from embedding_transfer import train_target
    args = train_target.get_args_parser().parse_args(
        ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--model", "resnet_narrow", "--random-init", "--crop-size", "32",
         "--source-model", "resnet_narrow", "--source-embedding-size", "8", "--workers", "0",
         "--source-ckpt", str(folder / "cub_resnet_narrow_8dim_Proxy_Anchor_epoch1_ckpt.pth")])
    train_target.default_source(args)
    source = train_target.build_source(args, torch.device("cpu"))
    assert torch.equal(source.model.embedding.weight, w1)
    with pytest.raises(SystemExit):
        train_source.get_args_parser().parse_args(["--save-epochs", "0,3"])
