"""Coordinate-wise robust statistics: the median and the trimmed mean of each coordinate.

Each coordinate is aggregated on its own, so a Byzantine input can only ever pull a coordinate
as far as the honest values around the median or the trimming cut allow. These rules do not
compare whole updates (see :mod:`securemed.aggregation.krum` for that), which makes them cheap
but blind to attacks spread thinly over many coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from securemed.aggregation.base import check_f, require, validate_inputs
from securemed.errors import AggregationPreconditionError, ConfigError


def median_of_sorted(ordered: torch.Tensor) -> torch.Tensor:
    """Median of each column of a column-sorted matrix; the mean of the two middle values
    when the number of rows is even."""
    n = ordered.shape[0]
    middle = (n - 1) // 2
    if n % 2 == 1:
        return ordered[middle].clone()
    return (ordered[middle] + ordered[middle + 1]) / 2


def coordinate_median(matrix: torch.Tensor) -> torch.Tensor:
    """Median of each column; for an even number of rows, the mean of the two middle values.

    ``torch.median`` (a selection, about half the cost of a sort) gives the middle value of an
    odd count but only the lower middle value of an even one; an even count therefore sorts,
    which measured cheaper than a second selection plus the passes to find the upper value.
    """
    if matrix.shape[0] % 2 == 1:
        return torch.median(matrix, dim=0).values
    return median_of_sorted(torch.sort(matrix, dim=0).values)


def coordinate_trimmed_mean(matrix: torch.Tensor, trim: int) -> torch.Tensor:
    """Mean of each column after dropping its ``trim`` smallest and ``trim`` largest values.

    Sorting and summing the kept middle rows adds only the kept values: subtracting the
    dropped ones from the total instead would let a dropped outlier of 1e12 cancel away the
    honest values' precision.
    """
    n = matrix.shape[0]
    if trim == 0:
        return matrix.mean(dim=0)
    ordered = torch.sort(matrix, dim=0).values
    return ordered[trim : n - trim].mean(dim=0)


class CoordinateWiseMedian:
    """Coordinate-wise median (Yin et al. 2018, "Byzantine-robust distributed learning:
    towards optimal statistical rates", ICML).

    The median of ``n`` values stays within the range of the honest ones while fewer than half
    are Byzantine (breakdown point 1/2), so the rule needs ``n >= 2f + 1``.
    """

    name = "median"
    needs_individual_updates = True
    needs_hospital_ids = False

    def __init__(self, f: int) -> None:
        self.f = check_f(f)

    def check(self, n: int) -> None:
        """Require ``n >= 2f + 1`` so that honest inputs are a strict majority."""
        require(
            n >= 2 * self.f + 1,
            rule="coordinate-wise median",
            f=self.f,
            n=n,
            condition="n >= 2f + 1",
            bound=2 * self.f + 1,
            source="breakdown point 1/2, Yin et al. 2018",
        )

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Return the median of each coordinate; ``weights`` are checked but not used."""
        validate_inputs(matrix, weights)
        self.check(matrix.shape[0])
        return coordinate_median(matrix)

    def reset(self) -> None:
        """The median keeps no state across rounds."""


class TrimmedMean:
    """Coordinate-wise trimmed mean (Yin et al. 2018, ICML).

    Each coordinate drops its ``k`` largest and ``k`` smallest values and averages the rest.
    By default ``k = f``: every Byzantine value is then either dropped or lies between honest
    values. ``beta`` instead trims a fraction of the inputs per side, ``k = floor(beta * n)``,
    as in the paper; it must still trim at least ``f`` per side (the paper's ``beta >= alpha``)
    or the Byzantine values could survive on one side.

    Args:
        f: Byzantine inputs to tolerate.
        beta: optional fraction trimmed per side, ``0 <= beta < 0.5``.
    """

    name = "trimmed_mean"
    needs_individual_updates = True
    needs_hospital_ids = False

    def __init__(self, f: int, *, beta: float | None = None) -> None:
        self.f = check_f(f)
        if beta is not None and not (
            isinstance(beta, int | float) and not isinstance(beta, bool) and 0 <= beta < 0.5
        ):
            raise ConfigError(
                f"trimmed mean beta (fraction trimmed per side) must be in [0, 0.5), not {beta!r}"
            )
        self.beta = beta

    def trim_per_side(self, n: int) -> int:
        """Number of values dropped at each end of every coordinate for ``n`` inputs."""
        return self.f if self.beta is None else math.floor(self.beta * n)

    def check(self, n: int) -> None:
        """Require ``n > 2f``, and with ``beta`` a trim of at least ``f`` per side."""
        require(
            n > 2 * self.f,
            rule="coordinate-wise trimmed mean",
            f=self.f,
            n=n,
            condition="n > 2f",
            bound=2 * self.f,
            source="Yin et al. 2018",
        )
        trim = self.trim_per_side(n)
        if trim < self.f:
            raise AggregationPreconditionError(
                f"trimmed mean with beta={self.beta} trims floor(beta * n) = {trim} values per "
                f"side of n={n} inputs, fewer than f={self.f} Byzantine inputs (Yin et al. 2018 "
                f"need beta >= f/n = {self.f / n:.3g}): raise beta or leave it unset to trim f"
            )

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Return the trimmed mean of each coordinate; ``weights`` are checked but not used."""
        validate_inputs(matrix, weights)
        n = matrix.shape[0]
        self.check(n)
        return coordinate_trimmed_mean(matrix, self.trim_per_side(n))

    def reset(self) -> None:
        """The trimmed mean keeps no state across rounds."""
