"""Image classifiers that DP-SGD can train: no BatchNorm anywhere (it mixes examples)."""

from securemed.models.factory import MODEL_NAMES, GradSampleMode, build_model, grad_sample_mode_for

__all__ = ["MODEL_NAMES", "GradSampleMode", "build_model", "grad_sample_mode_for"]
