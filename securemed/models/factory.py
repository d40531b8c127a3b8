"""Build a classifier by name, DP-compatible and checked by Opacus' ModuleValidator.

ResNet-18 and DenseNet-121 come from torchvision with every BatchNorm replaced by GroupNorm
and the stem taking one grayscale channel. Weights are never downloaded: models start from
their initialisation, or from a local state dict the caller loads.
"""

from __future__ import annotations

from functools import partial

from opacus.validators import ModuleValidator
from torch import nn
from torchvision import models as tv

from securemed.errors import ConfigError
from securemed.models.simple_cnn import SimpleCNN

MODEL_NAMES = ("simple_cnn", "resnet18", "densenet121")


def _group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    groups = max_groups
    while channels % groups:
        groups //= 2
    return nn.GroupNorm(groups, channels)


def _resnet18(num_classes: int, in_channels: int) -> nn.Module:
    model = tv.resnet18(weights=None, num_classes=num_classes, norm_layer=partial(_group_norm))
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def _densenet121(num_classes: int, in_channels: int) -> nn.Module:
    model = tv.densenet121(weights=None, num_classes=num_classes)
    model.features.conv0 = nn.Conv2d(
        in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False
    )
    # torchvision's DenseNet has no norm_layer argument: swap BatchNorm for GroupNorm in place.
    return ModuleValidator.fix(model)


def build_model(name: str, *, num_classes: int, in_channels: int = 1) -> nn.Module:
    """Return a freshly initialised model that Opacus accepts.

    Raises:
        ConfigError: the name is unknown, or the model fails Opacus' validation.
    """
    if name == "simple_cnn":
        model: nn.Module = SimpleCNN(num_classes=num_classes, in_channels=in_channels)
    elif name == "resnet18":
        model = _resnet18(num_classes, in_channels)
    elif name == "densenet121":
        model = _densenet121(num_classes, in_channels)
    else:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        raise ConfigError(f"model {name!r} is not DP-compatible: {problems}")
    return model
