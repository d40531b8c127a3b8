"""A copy of a model's weights that later training cannot change, and a fingerprint of them."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def snapshot_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every entry of ``model.state_dict()``, detached and cloned: state_dict's tensors share
    storage with the live parameters, so keeping "the best epoch's weights" needs a copy."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over every state_dict entry's name, dtype, shape and bytes, in name order: the
    same weights give the same fingerprint in any process, any change gives another."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(value.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())  # any dtype, bfloat16 too
    return digest.hexdigest()
