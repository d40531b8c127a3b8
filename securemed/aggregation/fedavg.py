"""Federated averaging (McMahan et al. 2017): the sample-weighted mean of updates.

A pure function, separate from round orchestration, so the same arithmetic serves the
aggregator, tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from securemed.errors import InvalidUpdate


def fedavg(
    updates: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]
) -> dict[str, torch.Tensor]:
    """Return ``sum_i w_i * update_i / sum_i w_i`` tensor by tensor.

    Integer tensors (counters such as ``num_batches_tracked``) are averaged in float64 and
    rounded back, so they keep their dtype.

    Raises:
        InvalidUpdate: no updates, a weight count that does not match, a non-positive weight,
            or updates whose tensor names differ.
    """
    if not updates:
        raise InvalidUpdate("fedavg needs at least one update")
    if len(updates) != len(weights):
        raise InvalidUpdate(f"{len(updates)} updates but {len(weights)} weights")
    if any(weight <= 0 for weight in weights):
        raise InvalidUpdate("fedavg weights (sample counts) must be positive")
    names = list(updates[0])
    for update in updates[1:]:
        if list(update) != names:
            raise InvalidUpdate("updates to average must carry the same tensors in the same order")
    total = float(sum(weights))
    averaged: dict[str, torch.Tensor] = {}
    for name in names:
        stacked = torch.stack([update[name].to(torch.float64) for update in updates])
        coefficients = torch.tensor(weights, dtype=torch.float64).view(
            -1, *[1] * (stacked.dim() - 1)
        )
        mean = (stacked * coefficients).sum(dim=0) / total
        dtype = updates[0][name].dtype
        averaged[name] = mean.round().to(dtype) if not dtype.is_floating_point else mean.to(dtype)
    return averaged
