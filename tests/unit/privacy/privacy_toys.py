"""A learnable toy task shared by the DP trainer tests (record and patient level)."""

from __future__ import annotations

import torch

from securemed.config import PrivacyConfig
from securemed.models import build_model

SIZE = 8
CLASSES = 2


def toy_data(n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 lights the top-left quadrant, class 1 the bottom-right: learnable in a step."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.rand((n, CLASSES), generator=generator) < 0.5).float()
    images = 0.3 * torch.rand((n, 1, SIZE, SIZE), generator=generator)
    half = SIZE // 2
    images[labels[:, 0] == 1, :, :half, :half] += 1.0
    images[labels[:, 1] == 1, :, half:, half:] += 1.0
    return images, labels


def fresh_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("simple_cnn", num_classes=CLASSES)


def dp(**overrides: object) -> PrivacyConfig:
    settings: dict[str, object] = {"target_epsilon": None, "noise_multiplier": 1.0}
    settings["accountant"] = "rdp"  # the fast accountant; PRV is covered where it matters
    settings.update(overrides)
    return PrivacyConfig(**settings)  # type: ignore[arg-type]
