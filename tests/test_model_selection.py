"""--val-classes: the best epoch chosen on held-out training classes, never on the test split."""
import json
import re

import pytest
import torch

from embedding_transfer import evaluation
from embedding_transfer import loaders
from embedding_transfer.loaders import Loaders
from embedding_transfer import train_target
from embedding_transfer.dataset import build_dataset
from embedding_transfer.errors import UserError
from embedding_transfer.records import improves, selection_key
from embedding_transfer.reporting.runs import Run


def test_held_out_classes_are_disjoint_relabelled_and_fixed(cub_dir):
    train = build_dataset("cub", str(cub_dir), "train", transform="train-tf")
    part, val = loaders.hold_out_classes(train, 0.2, transform="eval-tf")
    assert val.nb_classes() == 20 and part.nb_classes() == 80
    assert sorted(set(part.ys)) == list(range(80)) and sorted(set(val.ys)) == list(range(20))
    assert not set(part.im_paths) & set(val.im_paths)
    assert sorted(part.im_paths + val.im_paths) == sorted(train.im_paths)
    assert (part.transform, val.transform) == ("train-tf", "eval-tf")
    # Labels still name the same classes: images of one original class share one new label.
    old = dict(zip(train.im_paths, train.ys))
    for ds in (part, val):
        pairs = {(old[p], y) for p, y in zip(ds.im_paths, ds.ys)}
        assert len({o for o, _ in pairs}) == len(pairs) == len({y for _, y in pairs})
    assert loaders.hold_out_classes(train, 0.2, None)[1].im_paths == val.im_paths   # same classes every time
    assert len(train.ys) == 133   # the original is left as it was


def test_per_image_lists_follow_the_split(cub_dir):
    train = build_dataset("cub", str(cub_dir), "train")
    train.vendors = [f"v{i}" for i in range(len(train.ys))]
    train.classes = [f"c{c}" for c in range(train.nb_classes())]
    _, val = loaders.hold_out_classes(train, 0.1, None)
    index = {p: i for i, p in enumerate(train.im_paths)}
    assert val.vendors == [f"v{index[p]}" for p in val.im_paths]
    assert [val.classes[y] for y in val.ys] == [f"c{train.ys[index[p]]}" for p in val.im_paths]


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1, 0.001, 0.999])
def test_bad_fractions_are_explained(cub_dir, fraction):
    train = build_dataset("cub", str(cub_dir), "train")
    with pytest.raises(UserError, match="--val-classes"):
        loaders.hold_out_classes(train, fraction, None)


def test_test_split_is_scored_only_when_validation_improves(monkeypatch):
    val_r1 = iter([0.3, 0.2, 0.5])
    test_calls = []

    def fake_evaluate(model, loader, device, ks, channels_last=False, normalised=False):
        if loader == "val":
            return {"R@1": next(val_r1), "MAP@R": 0.1, "RP": 0.1}
        test_calls.append(1)
        return {"R@1": 0.9, "MAP@R": 0.2, "RP": 0.2}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    best, records = None, []
    for epoch in range(3):
        rec = evaluation.score_epoch(None, Loaders(None, "test", "val", {}), best, "cpu", [1], False)
        records.append(rec)
        if improves(rec, best, selection_key(True)):
            best = (epoch, rec)
    assert ["R@1" in r for r in records] == [True, False, True] and len(test_calls) == 2
    assert best[0] == 2 and best[1]["R@1"] == 0.9
    # Without a validation split: the test split, every epoch (the paper's protocol).
    assert evaluation.score_epoch(None, Loaders(None, "test", None, {}), best, "cpu", [1]) == {"R@1": 0.9, "MAP@R": 0.2, "RP": 0.2}


def test_train_target_selects_on_validation_classes(tiny_cub, tiny_flags, source_ckpt, tmp_path, capsys):
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path), "--save", "1",
                         "--embedding-size", "16", "--batch-size", "12", "--IPC", "2", "--loss", "RKD",
                         "--source-ckpt", source_ckpt, "--source-model", "resnet_narrow",
                         "--source-embedding-size", "32", "--val-classes", "0.25", "--lr", "1e-3"]
    argv[argv.index("--epochs") + 1] = "3"
    best_epoch, best = train_target.main(train_target.get_args_parser().parse_args(argv))
    assert re.search(r"train 9\d images \(75 classes\), validation 3\d images \(25 held-out training classes",
                     capsys.readouterr().out)
    run_dir = tmp_path / "logs_cub" / "resnet_narrow_RKD_embedding16_adamw_lr0.001_batch12"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("val/R@1" in r and "val/MAP@R" in r for r in records)
    running = [max(r["val/R@1"] for r in records[:i + 1]) for i in range(3)]
    improved = [i == 0 or records[i]["val/R@1"] > running[i - 1] for i in range(3)]
    assert ["R@1" in r for r in records] == improved      # test scored only when validation improved
    assert best_epoch == max(range(3), key=lambda i: (records[i]["val/R@1"], -i))
    assert best["R@1"] == records[best_epoch]["R@1"]
    text = (run_dir / "cub_resnet_narrow_best_results.txt").read_text()
    assert text.startswith(f"Best Epoch: {best_epoch}\nBest Recall@1: {100 * best['R@1']:.4f}")
    assert "held-out training classes" in text
    run = Run(str(run_dir))
    assert run.selection == "val" and run.selected["epoch"] == best_epoch
    assert (run_dir / "curves.png").stat().st_size > 1000
    state = torch.load(run_dir / "checkpoint.pth", weights_only=True)
    assert state["best"]["epoch"] == best_epoch and state["args"]["val_classes"] == 0.25
