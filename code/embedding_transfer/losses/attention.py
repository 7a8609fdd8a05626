"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017), as in RepDistiller."""
import torch.nn as nn
import torch.nn.functional as F


def attention_map(x):
    """(N, C, H, W) -> (N, H*W): mean over channels of x^2, flattened, L2-normalised."""
    return F.normalize(x.pow(2).mean(1).flatten(1), p=2, dim=1)


class AttentionLoss(nn.Module):
    """Sum over (target, source) feature-map pairs of the mean squared difference of their
    attention maps. Channel counts may differ; spatial sizes must match."""

    inputs = ("t_maps", "s_maps")
    options = ()   # what the trainer passes (losses.build_loss)
    # The authors pair blocks 1-3 of ResNet-50/101 targets; ResNet-18 targets add block 4.
    target_maps = {"resnet50": 3, "resnet101": 3}

    def forward(self, t_maps, s_maps):
        if len(t_maps) != len(s_maps):
            raise ValueError(f"Attention needs as many target as source feature maps, got "
                             f"{len(t_maps)} and {len(s_maps)}")
        loss = 0
        for t, s in zip(t_maps, s_maps):
            if t.shape[2:] != s.shape[2:]:
                raise ValueError(f"Attention: spatial sizes differ, target {tuple(t.shape)} "
                                 f"vs source {tuple(s.shape)}")
            loss = loss + (attention_map(t) - attention_map(s)).pow(2).mean()
        return loss
