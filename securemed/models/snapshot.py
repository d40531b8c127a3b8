"""A copy of a model's weights that later training cannot change."""

from __future__ import annotations

import torch
from torch import nn


def snapshot_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every entry of ``model.state_dict()``, detached and cloned: state_dict's tensors share
    storage with the live parameters, so keeping "the best epoch's weights" needs a copy."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}
