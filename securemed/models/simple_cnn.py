"""A small convolutional classifier: the default model, quick enough for DP-SGD on a CPU.

Three conv blocks, each convolution followed by GroupNorm (per-example statistics, so Opacus'
per-sample gradients stay exact), then a head that sees both the average and the maximum of
every feature map. Average pooling alone dilutes a finding that covers a few pixels (a nodule
is about 1 % of a 64 px film) until it is lost; the maximum keeps it. Measured on the
synthetic data, 6000 films, 5 central epochs, width 16: macro-AUROC 0.79 with average pooling
alone, 0.97 with both.

The default width is 8 (about 6,300 weights): DP-SGD adds noise of the same size to every
weight, so the noise in an update grows with the square root of the weight count while the
clipped signal does not. In our calibration (4 hospitals, Dirichlet 0.5, epsilon 8, 5 rounds)
width 8 on 20,000 films reached 0.88 macro-AUROC; the width-16 runs (6,000-12,000 films) ended
between 0.65 and 0.72, and each step cost three times as much.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(in_channels: int, out_channels: int, groups: int) -> nn.Sequential:
    # Not in place: Opacus' backward hooks refuse in-place ops on a hooked layer's output.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class SimpleCNN(nn.Module):
    """Conv(w) → Conv(2w) → Conv(4w) → [global average ‖ global max] → Linear logits."""

    def __init__(self, *, num_classes: int, in_channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, width, groups=min(4, width)),
            _block(width, width * 2, groups=8),
            _block(width * 2, width * 4, groups=8),
        )
        self.head = nn.Linear(2 * width * 4, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(images)
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)
