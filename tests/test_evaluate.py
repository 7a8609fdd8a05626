"""evaluate.py on saved models, and its errors."""
import importlib.util
import os

import pytest
import torch

from embedding_transfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("evaluate_cli", os.path.join(ROOT, "evaluate.py"))
evaluate_cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evaluate_cli)


def run(argv):
    return evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(argv))


def test_reproduces_the_recall_recorded_at_training(tiny_cub, source_ckpt):
    got = run(["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0",
               "--ckpt", source_ckpt])
    with open(source_ckpt.replace("_ckpt.pth", "_results.txt")) as f:   # train_source --save 1 wrote it
        lines = f.read().splitlines()[1:]
    assert lines == [f"Best Recall@{k}: {100 * got[f'R@{k}']:.4f}" for k in (1, 2, 4, 8)]


def test_released_style_checkpoint_needs_its_architecture(tiny_cub, source_ckpt, tmp_path):
    # A bare {'model_state_dict': ...} as released: architecture from the flags.
    bare = tmp_path / "released.pth"
    torch.save({"model_state_dict": torch.load(source_ckpt, weights_only=True)["model_state_dict"]}, bare)
    base = ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0", "--ckpt", str(bare)]
    with pytest.raises(UserError, match="--model resnet_narrow --embedding-size 32"):
        run(base)   # the defaults (BN-Inception-512) do not fit; the message says what does
    assert set(run(base + ["--model", "resnet_narrow", "--embedding-size", "32"])) == \
        {"R@1", "R@2", "R@4", "R@8", "MAP@R", "RP"}


def test_missing_checkpoint_is_an_error_not_an_untrained_model(tiny_cub, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        run(["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--ckpt", str(tmp_path / "none.pth")])


def test_ckpt_is_required():
    with pytest.raises(SystemExit):
        evaluate_cli.get_args_parser().parse_args(["--dataset", "cub"])


def test_evaluates_a_saved_target_as_recorded(tiny_cub, tiny_flags, source_ckpt, tmp_path, capsys):
    from embedding_transfer import train_target
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path), "--save", "1",
                         "--embedding-size", "16", "--batch-size", "12", "--IPC", "2", "--loss", "Relaxed_Contra",
                         "--source-ckpt", source_ckpt, "--source-model", "resnet_narrow", "--source-embedding-size", "32"]
    _, recalls = train_target.main(train_target.get_args_parser().parse_args(argv))
    best = next((tmp_path / "logs_cub").iterdir()) / "cub_resnet_narrow_best.pth"
    got = run(["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0", "--ckpt", str(best)])
    assert got == pytest.approx(recalls, abs=1e-12)
    # Without --dataset and --crop-size: the run's, from the args.json beside the best model.
    capsys.readouterr()
    assert run(["--DATA_DIR", str(tiny_cub), "--workers", "0", "--ckpt", str(best)]) == pytest.approx(recalls, abs=1e-12)
    out = capsys.readouterr().out
    assert "cub eval split" in out and "at 32 px" in out


def test_data_set_and_crop_come_from_the_run_and_a_differing_flag_is_said(sop_dir, source_ckpt, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ckpt = run_dir / "SOP_resnet_narrow_best.pth"
    ckpt.write_bytes(open(source_ckpt, "rb").read())
    (run_dir / "args.json").write_text('{"dataset": "SOP", "crop_size": 40, "model": "resnet_narrow"}')
    run(["--DATA_DIR", str(sop_dir), "--workers", "0", "--ckpt", str(ckpt)])
    out, err = capsys.readouterr()
    assert "SOP eval split, 8 images, resnet_narrow-32 (L2-normalised) at 40 px" in out and "the run trained" not in err
    run(["--DATA_DIR", str(sop_dir), "--workers", "0", "--ckpt", str(ckpt), "--dataset", "SOP", "--crop-size", "32"])
    out, err = capsys.readouterr()
    assert "at 32 px" in out
    (line,) = [l for l in err.splitlines() if "the run trained" in l]
    assert line == f"warning: --crop-size 32, but the run trained with 40 ({run_dir / 'args.json'})."


def test_save_embeddings(tiny_cub, source_ckpt, tmp_path):
    import numpy as np
    out = tmp_path / "emb.npz"
    got = run(["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0",
               "--ckpt", source_ckpt, "--save-embeddings", str(out)])
    z = np.load(out)
    assert z["embeddings"].shape == (133, 32) and z["labels"].shape == (133,) and len(z["paths"]) == 133
    assert str(z["paths"][0]).endswith(".jpg") and "CUB_200_2011" in str(z["paths"][0])
    from embedding_transfer.metrics import recall_at_k
    assert recall_at_k(torch.from_numpy(z["embeddings"]), torch.from_numpy(z["labels"]), [1])[0] == got["R@1"]


def test_visualize_draws_the_nearest_neighbours(tiny_cub, source_ckpt, tmp_path):
    import numpy as np
    import PIL.Image
    from embedding_transfer.reporting.retrieval_grid import GREEN, RED, pick_queries
    out, emb = tmp_path / "grid.png", tmp_path / "emb.npz"
    run(["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0",
         "--ckpt", source_ckpt, "--visualize", "4", "--visualize-k", "3", "--visualize-out", str(out),
         "--save-embeddings", str(emb)])
    saved = np.load(emb)
    X, labels = torch.from_numpy(saved["embeddings"]).double(), saved["labels"]
    im = np.asarray(PIL.Image.open(out).convert("RGB"))
    size, gap = 96, 12
    assert im.shape == (4 * size, 4 * size + gap, 3)
    for row, q in enumerate(pick_queries(len(labels), 4)):
        d = (X - X[q]).norm(dim=1)
        d[q] = float("inf")
        for col, j in enumerate(d.argsort()[:3].tolist()):
            frame = tuple(im[row * size + 1, size + gap + col * size + 1])
            assert frame == (GREEN if labels[j] == labels[q] else RED)


def test_visualize_default_file_is_beside_the_checkpoint(tiny_cub, source_ckpt, tmp_path):
    import shutil
    ckpt = tmp_path / "model.pth"
    shutil.copy(source_ckpt, ckpt)
    run(["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--crop-size", "32", "--workers", "0",
         "--ckpt", str(ckpt), "--visualize", "2"])
    assert (tmp_path / "model_cub_retrievals.png").stat().st_size > 0
