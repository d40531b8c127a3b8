"""Image classifiers that DP-SGD can train: no BatchNorm anywhere (it mixes examples)."""

from securemed.models.factory import build_model

__all__ = ["build_model"]
