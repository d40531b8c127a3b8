"""Krum and Multi-Krum (Blanchard et al. 2017, "Machine learning with adversaries: Byzantine
tolerant gradient descent", NeurIPS).

Krum scores each input by how close it sits to its ``n - f - 2`` nearest neighbours and picks
the best: an outlier far from the honest cluster scores badly whatever direction it points
in. Unlike the coordinate-wise rules it compares whole updates, at the price of an ``n x n``
distance matrix. The selection helpers are shared with :mod:`securemed.aggregation.bulyan`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from securemed.aggregation.base import check_f, require, validate_inputs
from securemed.errors import AggregationPreconditionError, ConfigError

KRUM_SOURCE = "Blanchard et al. 2017"


def pairwise_squared_distances(matrix: torch.Tensor) -> torch.Tensor:
    """Return the ``(n, n)`` matrix of squared Euclidean distances between rows.

    Uses ``|a|^2 + |b|^2 - 2 a.b``: one ``n x n`` matrix product, several times faster than
    the direct differences for ``d`` in the millions. Its rounding error is about machine
    epsilon times ``|a|^2 + |b|^2`` of the two rows involved, so a huge Byzantine row blurs only
    its own distances, which are huge anyway. Negative round-off is clamped to zero; the
    result is exactly symmetric with an exactly zero diagonal.
    """
    norms = (matrix * matrix).sum(dim=1)
    distances = norms[:, None] + norms[None, :] - 2.0 * (matrix @ matrix.T)
    # A BLAS product need not be exactly symmetric; mirrored ties must stay ties.
    distances = (distances + distances.T) / 2
    distances.clamp_(min=0.0)
    distances.fill_diagonal_(0.0)
    return distances


def krum_scores(distances: torch.Tensor, neighbours: int) -> torch.Tensor:
    """Score each row by the sum of squared distances to its ``neighbours`` nearest others.

    Lower is better. ``distances`` is a square matrix from :func:`pairwise_squared_distances`
    (or a principal sub-matrix of one); a row is never its own neighbour.
    """
    others = distances.clone()
    others.fill_diagonal_(torch.inf)
    # Sorted, so rows with the same neighbour distances sum them in the same order and tie
    # exactly rather than differing in the last bit.
    return torch.topk(others, neighbours, dim=1, largest=False, sorted=True).values.sum(dim=1)


def krum_ranking(matrix: torch.Tensor, f: int) -> torch.Tensor:
    """Row indices from best to worst Krum score, ties kept in row order (deterministic)."""
    n = matrix.shape[0]
    scores = krum_scores(pairwise_squared_distances(matrix), n - f - 2)
    return torch.sort(scores, stable=True).indices


def check_krum(n: int, f: int, rule: str) -> None:
    """Krum's condition ``n > 2f + 2``: each score then sums at least ``f + 1`` neighbours."""
    require(
        n > 2 * f + 2,
        rule=rule,
        f=f,
        n=n,
        condition="n > 2f + 2",
        bound=2 * f + 2,
        source=KRUM_SOURCE,
    )


class Krum:
    """Krum: return the single input with the best score.

    The output is one hospital's (or bucket's) update unchanged, which is robust but throws
    away the variance reduction of averaging; :class:`MultiKrum` keeps more of it.

    Attributes:
        last_selected: row index chosen in the last call, for logs and audits.
    """

    name = "krum"
    needs_individual_updates = True
    needs_hospital_ids = False

    def __init__(self, f: int) -> None:
        self.f = check_f(f)
        self.last_selected: list[int] = []

    def check(self, n: int) -> None:
        """Require ``n > 2f + 2`` (Blanchard et al. 2017)."""
        check_krum(n, self.f, "Krum")

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Return the row with the lowest Krum score (the first one on a tie)."""
        validate_inputs(matrix, weights)
        self.check(matrix.shape[0])
        best = int(krum_ranking(matrix, self.f)[0])
        self.last_selected = [best]
        return matrix[best].clone()

    def reset(self) -> None:
        """Krum keeps no state across rounds."""


class MultiKrum:
    """Multi-Krum: average the ``m`` inputs with the best Krum scores.

    Scores are computed once over all inputs, as in Blanchard et al. 2017 (Bulyan's iterated
    selection recomputes them instead). ``m`` defaults to ``n - f``, the most inputs that can
    be averaged while every honest input may be among them; a larger ``m`` is refused because
    it would always average in some inputs that could be Byzantine.

    Args:
        f: Byzantine inputs to tolerate.
        m: inputs to average, ``1 <= m <= n - f``; ``None`` means ``n - f``.

    Attributes:
        last_selected: row indices averaged in the last call, best score first.
    """

    name = "multi_krum"
    needs_individual_updates = True
    needs_hospital_ids = False

    def __init__(self, f: int, *, m: int | None = None) -> None:
        self.f = check_f(f)
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ConfigError(
                f"Multi-Krum m (inputs to average) must be an integer >= 1, not {m!r}"
            )
        self.m = m
        self.last_selected: list[int] = []

    def selected_count(self, n: int) -> int:
        """Number of inputs averaged for ``n`` inputs."""
        return n - self.f if self.m is None else self.m

    def check(self, n: int) -> None:
        """Require ``n > 2f + 2`` and ``m <= n - f``."""
        check_krum(n, self.f, "Multi-Krum")
        if self.selected_count(n) > n - self.f:
            raise AggregationPreconditionError(
                f"Multi-Krum with f={self.f} Byzantine inputs averages at most n - f = "
                f"{n - self.f} of n={n} inputs ({KRUM_SOURCE}), asked for m={self.m}: lower m "
                "or leave it unset"
            )

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Return the mean of the ``m`` best-scored rows."""
        validate_inputs(matrix, weights)
        n = matrix.shape[0]
        self.check(n)
        chosen = krum_ranking(matrix, self.f)[: self.selected_count(n)]
        self.last_selected = chosen.tolist()
        return matrix[chosen].mean(dim=0)

    def reset(self) -> None:
        """Multi-Krum keeps no state across rounds."""
