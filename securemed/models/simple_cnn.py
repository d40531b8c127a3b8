"""A small convolutional classifier: the default model, quick enough for DP-SGD on a CPU.

Three conv blocks, each convolution followed by GroupNorm (per-example statistics, so Opacus'
per-sample gradients stay exact), then global average pooling and one linear head.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(in_channels: int, out_channels: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SimpleCNN(nn.Module):
    """Conv(16) → Conv(32) → Conv(64) → global pool → Linear(num_classes) logits."""

    def __init__(self, *, num_classes: int, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, width, groups=4),
            _block(width, width * 2, groups=8),
            _block(width * 2, width * 4, groups=8),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(width * 4, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
