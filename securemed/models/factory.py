"""Build a classifier by name, DP-compatible and checked by Opacus' ModuleValidator.

ResNet-18 and DenseNet-121 come from torchvision with every BatchNorm replaced by GroupNorm,
the stem taking one grayscale channel, and no in-place operation on an activation: Opacus'
backward hooks refuse to see a hooked output modified in place. Weights are never downloaded:
models start from their initialisation, or from a local state dict the caller loads.
"""

from __future__ import annotations

from typing import Literal

import torch
from opacus.validators import ModuleValidator
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torchvision import models as tv
from torchvision.models.resnet import BasicBlock

from securemed.errors import ConfigError
from securemed.models.simple_cnn import SimpleCNN

MODEL_NAMES = ("simple_cnn", "resnet18", "densenet121")

GradSampleMode = Literal["ew", "hooks"]

# How Opacus computes per-example gradients for each model, measured with torch 2.14:
# ExpandedWeights ("ew") is the faster, but its grouped-conv backward fails on DenseNet's
# concatenated (non-contiguous) feature maps, so DenseNet uses backward hooks.
_GRAD_SAMPLE_MODES: dict[str, GradSampleMode] = {
    "simple_cnn": "ew",
    "resnet18": "ew",
    "densenet121": "hooks",
}


def grad_sample_mode_for(name: str) -> GradSampleMode:
    """The Opacus ``grad_sample_mode`` known to work (and be fastest) for model ``name``."""
    _check_name(name)
    return _GRAD_SAMPLE_MODES[name]


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """Group norm with the most groups (up to ``max_groups``) that divide ``channels``."""
    groups = max_groups
    while channels % groups:
        groups //= 2
    return nn.GroupNorm(groups, channels)


class _OutOfPlaceBasicBlock(BasicBlock):
    """torchvision's BasicBlock with the residual sum out of place (``+`` instead of ``+=``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class _OutOfPlaceDenseNet(tv.DenseNet):
    """torchvision's DenseNet whose final ReLU is not in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1))
        return self.classifier(torch.flatten(out, 1))


def no_inplace_relu(model: nn.Module) -> nn.Module:
    for layer in model.modules():
        if isinstance(layer, nn.ReLU):
            layer.inplace = False
    return model


def _resnet18(num_classes: int, in_channels: int) -> nn.Module:
    model = tv.ResNet(
        _OutOfPlaceBasicBlock, [2, 2, 2, 2], num_classes=num_classes, norm_layer=group_norm
    )
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return no_inplace_relu(model)


def _densenet121(num_classes: int, in_channels: int) -> nn.Module:
    model = _OutOfPlaceDenseNet(
        growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, num_classes=num_classes
    )
    model.features.conv0 = nn.Conv2d(
        in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False
    )
    # torchvision's DenseNet has no norm_layer argument: swap BatchNorm for GroupNorm in place.
    return no_inplace_relu(ModuleValidator.fix(model))


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


def build_model(name: str, *, num_classes: int, in_channels: int = 1) -> nn.Module:
    """Return a freshly initialised model that Opacus accepts.

    Raises:
        ConfigError: the name is unknown, or the model fails Opacus' validation.
    """
    _check_name(name)
    if name == "simple_cnn":
        model: nn.Module = SimpleCNN(num_classes=num_classes, in_channels=in_channels)
    elif name == "resnet18":
        model = _resnet18(num_classes, in_channels)
    else:
        model = _densenet121(num_classes, in_channels)
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        raise ConfigError(f"model {name!r} is not DP-compatible: {problems}")
    return model
