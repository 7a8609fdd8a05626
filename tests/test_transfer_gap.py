"""scripts/transfer_gap.py: the loss floor against a brute-force minimum, the rank correlation, and
the script on a trained target run."""
import os
import sys

import pytest
import torch

from embedding_transfer import train_target
from embedding_transfer.errors import UserError
from embedding_transfer.losses.relaxed import RelaxedContrastiveLoss, source_similarities

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import transfer_gap  # noqa: E402


@pytest.mark.parametrize("delta", [1.0, 0.5])
def test_floor_is_each_pairs_least_loss_summed(delta):
    W = source_similarities(torch.randn(6, 4), 1)
    D = torch.linspace(0, 3, 30001)
    least = 0.0
    for i in range(6):
        for j in range(6):
            if i != j:
                w = W[i, j]
                least += (w * D ** 2 + (1 - w) * torch.relu(delta - D) ** 2).min().item()
    assert transfer_gap.loss_floor(W, delta) == pytest.approx(least / 6, rel=1e-5)


def test_no_embedding_scores_below_the_floor():
    torch.manual_seed(0)
    s = torch.randn(20, 8)
    loss = RelaxedContrastiveLoss(1, 1)
    floor = transfer_gap.loss_floor(source_similarities(s, 1), 1)
    for t in (torch.randn(20, 5), s, s * 3, torch.randn(20, 64)):
        assert loss(t, s).item() >= floor


def test_gap_rank_correlation():
    torch.manual_seed(0)
    s = torch.randn(30, 8)
    loss = RelaxedContrastiveLoss(1, 1)
    same, rho_same = transfer_gap.gap(s, s, loss)
    scaled, rho_scaled = transfer_gap.gap(2.5 * s, s, loss)   # relative distances: scale does not count
    assert rho_same == pytest.approx(1) and rho_scaled == pytest.approx(1)
    assert scaled == pytest.approx(same, rel=1e-5)
    _, rho_unrelated = transfer_gap.gap(torch.randn(30, 8), s, loss)
    assert abs(rho_unrelated) < 0.3


def test_script_on_a_trained_target(tiny_cub, tiny_flags, source_ckpt, tmp_path, capsys):
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path),
                         "--embedding-size", "16", "--batch-size", "12", "--IPC", "2", "--workers", "2",
                         "--loss", "Relaxed_Contra", "--source-ckpt", source_ckpt,
                         "--source-model", "resnet_narrow", "--source-embedding-size", "32"]
    train_target.main(train_target.get_args_parser().parse_args(argv))
    capsys.readouterr()
    transfer_gap.main(transfer_gap.get_args_parser().parse_args([str(tmp_path), "--batches", "2", "--workers", "2"]))
    out = capsys.readouterr().out.splitlines()
    assert "checkpoint after epoch 0" in out[0] and "resnet_narrow-16 from resnet_narrow-32" in out[0]
    rows = [line.replace("|", " ").split() for line in out[2:]]
    assert [r[0] for r in rows] == ["0", "1"]
    for _, start, trained, source, floor, rho_start, rho_trained in rows:
        assert min(float(start), float(trained), float(source)) >= float(floor) > 0
        assert -1 <= float(rho_start) <= 1 and -1 <= float(rho_trained) <= 1
    with pytest.raises(UserError, match="--batches 1000: the run's training split gives 1 to"):
        transfer_gap.main(transfer_gap.get_args_parser().parse_args([str(tmp_path), "--batches", "1000"]))


def test_a_run_without_a_source_is_refused(tiny_cub, tiny_flags, tmp_path):
    argv = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--LOG_DIR", str(tmp_path),
                         "--embedding-size", "8", "--batch-size", "12", "--IPC", "2", "--loss", "Proxy_Anchor"]
    train_target.main(train_target.get_args_parser().parse_args(argv))
    with pytest.raises(UserError, match="0 train_target runs that learn from a source"):
        transfer_gap.main(transfer_gap.get_args_parser().parse_args([str(tmp_path)]))


def test_also_measures_a_labels_only_run_on_the_same_batches(tiny_cub, tiny_flags, source_ckpt, tmp_path, capsys):
    common = tiny_flags + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--embedding-size", "16",
                           "--batch-size", "12", "--IPC", "2"]
    transfer = common + ["--LOG_DIR", str(tmp_path / "rc"), "--loss", "Relaxed_Contra", "--source-ckpt", source_ckpt,
                         "--source-model", "resnet_narrow", "--source-embedding-size", "32"]
    labels = common + ["--LOG_DIR", str(tmp_path / "pa"), "--loss", "Proxy_Anchor", "--target-norm", "1"]
    for argv in (transfer, labels):
        train_target.main(train_target.get_args_parser().parse_args(argv))
    capsys.readouterr()
    transfer_gap.main(transfer_gap.get_args_parser().parse_args(
        [str(tmp_path / "rc"), "--batches", "1", "--also", str(tmp_path / "pa")]))
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("also: ") and "Proxy_Anchor (no source), resnet_narrow-16" in out[1]
    row = out[3].replace("|", " ").split()
    assert len(row) == 9 and -1 <= float(row[8]) <= 1 and float(row[7]) >= float(row[4])   # loss >= floor


def test_also_must_be_the_same_network(tiny_cub, tiny_flags, source_ckpt, tmp_path):
    common = ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--embedding-size", "16", "--batch-size", "12", "--IPC", "2"]
    transfer = tiny_flags + common + ["--LOG_DIR", str(tmp_path / "rc"), "--loss", "Relaxed_Contra",
                                      "--source-ckpt", source_ckpt, "--source-model", "resnet_narrow",
                                      "--source-embedding-size", "32"]
    other = [f if f != "32" else "48" for f in tiny_flags] + common + ["--LOG_DIR", str(tmp_path / "pa"), "--loss", "Proxy_Anchor"]
    for argv in (transfer, other):
        train_target.main(train_target.get_args_parser().parse_args(argv))
    with pytest.raises(UserError, match="must be the run's network, resnet_narrow at 32 px"):
        transfer_gap.main(transfer_gap.get_args_parser().parse_args([str(tmp_path / "rc"), "--also", str(tmp_path / "pa")]))
