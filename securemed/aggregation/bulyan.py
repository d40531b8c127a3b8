"""Bulyan (El Mhamdi, Guerraoui and Rouault 2018, "The hidden vulnerability of distributed
learning in Byzantium", ICML).

Krum alone lets an attacker hide a large change in a few coordinates of an update that is
otherwise close to the honest ones. Bulyan closes that gap in two stages: iterated Krum picks
``theta = n - 2f`` inputs, then each coordinate averages only the ``beta = theta - 2f`` selected
values closest to that coordinate's median. The price is a stricter condition, ``n >= 4f + 3``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from securemed.aggregation.base import check_f, require, validate_inputs
from securemed.aggregation.coordinatewise import median_of_sorted
from securemed.aggregation.krum import krum_scores, pairwise_squared_distances


def iterated_krum(matrix: torch.Tensor, f: int, count: int) -> list[int]:
    """Select ``count`` rows one at a time, each the Krum winner among the rows still left.

    The distance matrix is computed once; each step scores a principal sub-matrix. With ``r``
    rows left a score sums ``r - f - 2`` neighbours, as Krum on those ``r`` rows would. The
    last steps have fewer rows than Krum's own condition asks for; the neighbour count is then
    kept at one or more (and at most ``r - 1``) so that each step still prefers rows with a
    close neighbour, and a single remaining row is simply taken. Ties go to the lower index.
    """
    distances = pairwise_squared_distances(matrix)
    remaining = list(range(matrix.shape[0]))
    selected: list[int] = []
    for _ in range(count):
        r = len(remaining)
        if r == 1:
            best = 0
        else:
            index = torch.tensor(remaining, device=matrix.device)
            sub = distances[index][:, index]
            neighbours = min(max(r - f - 2, 1), r - 1)
            best = int(torch.argmin(krum_scores(sub, neighbours)))
        selected.append(remaining.pop(best))
    return selected


def closest_to_median_mean(values: torch.Tensor, keep: int) -> torch.Tensor:
    """Per column, the mean of the ``keep`` values closest to that column's median.

    The values closest to the median are a contiguous run of the sorted column, so instead of
    sorting distances this sorts the values once and drops the farther end ``t - keep`` times,
    one vectorised step for all columns at a time. On an exact tie the value above the median
    is dropped, which makes the result deterministic.
    """
    t = values.shape[0]
    ordered = torch.sort(values, dim=0).values
    median = median_of_sorted(ordered)
    low = torch.zeros(values.shape[1], dtype=torch.long, device=values.device)
    high = torch.full_like(low, t - 1)
    for _ in range(t - keep):
        below = median - ordered.gather(0, low[None]).squeeze(0)
        above = ordered.gather(0, high[None]).squeeze(0) - median
        drop_high = above >= below
        high = high - drop_high.long()
        low = low + (~drop_high).long()
    rows = torch.arange(t, device=values.device)[:, None]
    kept = (rows >= low) & (rows <= high)
    return torch.where(kept, ordered, 0.0).sum(dim=0) / keep


class Bulyan:
    """Bulyan over Krum: iterated Krum selection, then a median-centred coordinate-wise mean.

    Attributes:
        last_selected: rows chosen by iterated Krum in the last call, in selection order.
    """

    name = "bulyan"
    needs_individual_updates = True
    needs_hospital_ids = False

    def __init__(self, f: int) -> None:
        self.f = check_f(f)
        self.last_selected: list[int] = []

    def check(self, n: int) -> None:
        """Require ``n >= 4f + 3`` (El Mhamdi et al. 2018)."""
        require(
            n >= 4 * self.f + 3,
            rule="Bulyan",
            f=self.f,
            n=n,
            condition="n >= 4f + 3",
            bound=4 * self.f + 3,
            source="El Mhamdi et al. 2018",
        )

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Select ``theta = n - 2f`` rows by iterated Krum, then average per coordinate the
        ``beta = theta - 2f`` selected values closest to the median."""
        validate_inputs(matrix, weights)
        n = matrix.shape[0]
        self.check(n)
        theta = n - 2 * self.f
        self.last_selected = iterated_krum(matrix, self.f, theta)
        chosen = matrix[torch.tensor(self.last_selected, device=matrix.device)]
        return closest_to_median_mean(chosen, theta - 2 * self.f)

    def reset(self) -> None:
        """Bulyan keeps no state across rounds."""
