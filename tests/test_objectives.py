"""The training objectives: feature-map pairing, the loss classes they call, mixed precision."""
import pytest
import torch

from embedding_transfer.losses import LOSSES, build_loss, is_batchwise
from embedding_transfer.models import build_model
from embedding_transfer.objectives import TransferObjective, pair_feature_maps


def test_map_pairs_follow_the_reference_and_strides():
    bn, r18, r50 = (build_model(n, 8) for n in ("bn_inception", "resnet18", "resnet50"))
    assert pair_feature_maps(bn, bn) == [(0, 0), (1, 1), (2, 2)]          # reference: in order
    assert pair_feature_maps(r18, r50) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert pair_feature_maps(bn, r50) == [(0, 2), (1, 3), (2, 3)]          # strides 16, 32, 32
    assert pair_feature_maps(r18, bn) == [(2, 0), (3, 2)]                  # strides 4, 8 unmatched


def test_only_feature_map_losses_are_per_sample():
    assert {n for n, c in LOSSES.items() if not is_batchwise(c)} == {"Attention", "FitNet"}


def objective(loss, amp_dtype):
    torch.manual_seed(0)
    target, source = build_model("resnet_narrow", 16), build_model("resnet_narrow", 32, l2_norm=True).eval()
    pairs = pair_feature_maps(target, source)
    labels = torch.arange(6).repeat_interleave(2)
    run = dict(sigma=1, delta=1, t_dim=256, s_dim=256, n_data=24, nce_k=8,
               channels=[(target.feature_channels[i], source.feature_channels[j]) for i, j in pairs])
    method = build_loss(loss, **{k: run[k] for k in LOSSES[loss].options})
    pa = build_loss("Proxy_Anchor", nb_classes=6, sz_embed=16, mrg=0.1, alpha=32) if loss == "FitNet" else None
    obj = TransferObjective(method, target, source, 2, labels.repeat(2), pairs, pa, nce_k=8,
                            generator=torch.Generator().manual_seed(0), amp_dtype=amp_dtype)
    x = torch.rand(12, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return obj(x, labels, torch.arange(12)).detach()


@pytest.mark.parametrize("loss", ["Relaxed_Contra", "RKD", "FitNet"])
def test_bf16_gives_the_fp32_loss_within_1_percent(loss):
    fp32, bf16 = objective(loss, None), objective(loss, torch.bfloat16)
    assert fp32.dtype == bf16.dtype == torch.float32       # losses computed in float32
    assert float(bf16) == pytest.approx(float(fp32), rel=1e-2)
