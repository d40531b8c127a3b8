"""DP-SGD steps that every Opacus training loop in SecureMed needs the same way."""

from __future__ import annotations

import torch
from torch import nn


def empty_private_step(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """A DP step when Poisson sampling drew nothing: zero per-example gradients, then the
    optimizer step as usual.

    The analysis assumes a step happens at every sampling round, empty or not, so noise is
    added and the accountant counts it; skipping it would spend less than the accountant says
    only by luck, and under data parallelism would leave the other workers waiting in the
    gradient all-reduce.
    """
    optimizer.zero_grad(set_to_none=True)
    for parameter in model.parameters():
        if parameter.requires_grad:
            setattr(parameter, "grad_sample", parameter.new_zeros((0, *parameter.shape)))  # noqa: B010
    optimizer.step()
