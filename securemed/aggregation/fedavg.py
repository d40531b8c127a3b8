"""Federated averaging (McMahan et al. 2017): the sample-weighted mean of updates.

A pure function, separate from round orchestration, so the same arithmetic serves the
aggregator, tests and benchmarks. :func:`fedavg` works on state dicts; :class:`FedAvg` is the
same mean on an update matrix, for the coordinator's rule registry. FedAvg tolerates no
Byzantine input at all: one arbitrary update moves the mean anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from securemed.aggregation.base import check_f, validate_inputs
from securemed.errors import ConfigError, InvalidUpdate


def weighted_mean(stacked: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Return ``sum_i w_i * stacked[i] / sum_i w_i`` over the first dimension.

    ``stacked`` holds one update (or one tensor of each update) per index of dimension 0; the
    weights are broadcast over the remaining dimensions. Computed in the dtype of ``stacked``.
    """
    coefficients = weights.to(device=stacked.device, dtype=stacked.dtype)
    coefficients = coefficients.view(-1, *[1] * (stacked.dim() - 1))
    return (stacked * coefficients).sum(dim=0) / coefficients.sum()


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
    # Tensor by tensor rather than on one flattened matrix: peak memory stays at n copies of
    # the largest tensor instead of n copies of the whole model.
    coefficients = torch.tensor(weights, dtype=torch.float64)
    averaged: dict[str, torch.Tensor] = {}
    for name in names:
        stacked = torch.stack([update[name].to(torch.float64) for update in updates])
        mean = weighted_mean(stacked, coefficients)
        dtype = updates[0][name].dtype
        averaged[name] = mean.round().to(dtype) if not dtype.is_floating_point else mean.to(dtype)
    return averaged


class FedAvg:
    """The weighted mean as an aggregation rule on an update matrix.

    It needs only the sum of weighted updates, so it can run on a securely aggregated sum
    (``needs_individual_updates`` is False). It tolerates no Byzantine input, hence ``f`` must
    be 0: accepting ``f > 0`` would promise a protection it does not give.
    """

    name = "fedavg"
    needs_individual_updates = False
    needs_hospital_ids = False

    def __init__(self, f: int = 0) -> None:
        if check_f(f) != 0:
            raise ConfigError(
                f"fedavg tolerates no Byzantine inputs (one arbitrary update moves the mean "
                f"anywhere), so f must be 0, not {f}: choose a robust rule such as "
                "'trimmed_mean', 'median' or 'krum' to tolerate f > 0"
            )
        self.f = 0

    def check(self, n: int) -> None:
        """FedAvg is defined for any ``n >= 1``."""
        if n < 1:
            raise InvalidUpdate("fedavg needs at least one update")

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Return the ``weights``-weighted mean of the rows (the plain mean without weights)."""
        validate_inputs(matrix, weights)
        self.check(matrix.shape[0])
        if weights is None:
            return matrix.mean(dim=0)
        return weighted_mean(matrix, weights)

    def reset(self) -> None:
        """FedAvg keeps no state across rounds."""
