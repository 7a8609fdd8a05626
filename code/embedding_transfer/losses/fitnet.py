"""FitNets hint loss (Romero et al., ICLR 2015) on intermediate feature maps."""
import torch.nn as nn
import torch.nn.functional as F


class FitNetLoss(nn.Module):
    """One bias-free 1x1 convolution per (target channels, source channels) pair regresses the
    target map onto the source map; loss = MSE after regression, summed over pairs.
    The regressors are trained with the target network (they are this module's parameters)."""

    inputs = ("t_maps", "s_maps")
    options = ("channels",)   # what the trainer passes (losses.build_loss)

    def __init__(self, channels):
        super().__init__()
        self.regressors = nn.ModuleList(
            nn.Conv2d(t_ch, s_ch, kernel_size=1, bias=False) for t_ch, s_ch in channels)
        for conv in self.regressors:
            nn.init.uniform_(conv.weight, -0.005, 0.005)   # the reference's init: start near 0

    def forward(self, t_maps, s_maps):
        if not len(t_maps) == len(s_maps) == len(self.regressors):
            raise ValueError(f"FitNet was built for {len(self.regressors)} feature-map pairs, got "
                             f"{len(t_maps)} target and {len(s_maps)} source maps")
        loss = 0
        for reg, t, s in zip(self.regressors, t_maps, s_maps):
            t = reg(t)                                     # (N, t_ch, H, W) -> (N, s_ch, H, W)
            if t.shape != s.shape:
                raise ValueError(f"FitNet: regressed target map {tuple(t.shape)} does not match "
                                 f"source map {tuple(s.shape)}")
            loss = loss + F.mse_loss(t, s)
        return loss
