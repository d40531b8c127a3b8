"""FoolsGold (Fung, Yoon and Beschastnikh 2020, "The limitations of federated learning in sybil
settings", RAID).

Sybils pushing one poisoning objective send updates that point the same way round after round,
while honest hospitals with different data drift apart. FoolsGold therefore keeps, per
hospital, the sum of all its updates so far, and gives a low learning-rate weight to hospitals
whose history is very similar to another's. It needs no bound on the number of sybils, but it
does need to know which hospital sent which row, and it keeps that history across rounds.

Deliberately left out: the paper's optional feature-importance weighting of the similarity,
which needs the output layer's position in the flattened update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from securemed.aggregation.base import check_f, check_hospitals, require, validate_inputs
from securemed.errors import ConfigError, InvalidUpdate

logger = logging.getLogger(__name__)

#: FoolsGold replaces a re-scaled similarity weight of exactly 1 by this before the logit, as
#: the authors' implementation does, since the logit of 1 is infinite.
_LOGIT_CAP = 0.99

#: ``1 - cosine`` below this is rounding error between identical histories, not diversity.
_TWIN_TOLERANCE = 1e-9


def foolsgold_weights(histories: torch.Tensor, kappa: float) -> torch.Tensor:
    """Per-row weights in ``[0, 1]`` from the rows' update histories (Algorithm 1 of the paper).

    1. ``cs[i, j]``: cosine similarity of histories ``i`` and ``j`` (a zero history is similar
       to nothing), and ``v[i] = max_j cs[i, j]`` over the other rows.
    2. Pardoning: where ``v[j] > v[i]`` (``v`` clamped at 0), ``cs[i, j]`` is scaled by
       ``v[i] / v[j]``, so an honest row that merely resembles a sybil is not punished as much
       as the sybils themselves.
    3. ``alpha[i] = 1 - max_j cs[i, j]``, clipped to ``[0, 1]`` and re-scaled so the largest is 1.
    4. Logit with confidence ``kappa``: ``kappa * (ln(alpha / (1 - alpha)) + 0.5)``, clipped
       to ``[0, 1]``; re-scaled values of exactly 1 are first lowered to 0.99.
    """
    n = histories.shape[0]
    norms = histories.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, histories / norms.clamp_min(torch.finfo(histories.dtype).tiny), 0)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-torch.inf)
    # Clamped at 0 for pardoning only: a row whose best match is negative resembles nobody
    # (its weight is 1 anyway), and a negative ratio would flip the sign of a similarity.
    highest = similarity.amax(dim=1).clamp_min(0.0)
    pardon = highest[None, :] > highest[:, None]
    ratio = highest[:, None] / torch.where(pardon, highest[None, :], 1.0)
    similarity = torch.where(pardon, similarity * ratio, similarity)
    alpha = (1.0 - similarity.amax(dim=1)).clamp(0.0, 1.0)
    # Identical histories give a cosine of 1 only up to rounding; without this snap, which
    # rows count as exact twins (and the all-twins case below) would depend on the last bit.
    alpha = torch.where(alpha < _TWIN_TOLERANCE, 0.0, alpha)
    top = alpha.max()
    if top == 0:
        # Every history has an exact twin: there is no row left to trust more than another.
        return torch.zeros(n, dtype=histories.dtype, device=histories.device)
    alpha = alpha / top
    alpha = torch.where(alpha == 1.0, _LOGIT_CAP, alpha)
    # ln(0) = -inf for perfect sybils; the clip below maps it to a weight of 0.
    logit = kappa * (torch.log(alpha) - torch.log1p(-alpha) + 0.5)
    return logit.clamp(0.0, 1.0)


class FoolsGold:
    """FoolsGold: weight each hospital's update by how unlike the others its history is.

    The output is ``sum_i a_i x_i / sum_i a_i`` with the FoolsGold weights ``a``. The paper
    applies ``sum_i a_i x_i`` with a learning rate; normalising keeps the output on the same
    scale as the other rules' so they are interchangeable in the coordinator. When every
    weight is zero (every hospital has an exact twin) the output is the zero update: nothing
    is trusted, so nothing is applied.

    Args:
        f: accepted for a uniform interface; FoolsGold does not assume a bound on sybils.
        kappa: confidence of the logit, ``> 0`` (the paper's default is 1).

    Attributes:
        last_weights: the weights of the last call, row by row, for logs and audits.
    """

    name = "foolsgold"
    needs_individual_updates = True
    needs_hospital_ids = True

    def __init__(self, f: int = 0, *, kappa: float = 1.0) -> None:
        self.f = check_f(f)
        if isinstance(kappa, bool) or not isinstance(kappa, int | float) or not kappa > 0:
            raise ConfigError(f"FoolsGold kappa (logit confidence) must be > 0, not {kappa!r}")
        self.kappa = float(kappa)
        self.histories: dict[str, torch.Tensor] = {}
        self.last_weights: torch.Tensor | None = None

    def check(self, n: int) -> None:
        """Require two inputs to compare and at least one honest input (``n > f``)."""
        require(
            n >= 2,
            rule="FoolsGold",
            f=self.f,
            n=n,
            condition="n >= 2",
            bound=2,
            source="similarity needs two histories, Fung et al. 2020",
        )
        require(
            n > self.f,
            rule="FoolsGold",
            f=self.f,
            n=n,
            condition="n > f",
            bound=self.f,
            source="at least one honest hospital, Fung et al. 2020",
        )

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Add each row to its hospital's history, then return the FoolsGold-weighted mean.

        Hospitals absent from this round keep their history for later rounds.

        Raises:
            AggregationPreconditionError: ``hospitals`` missing, or ``n`` too small.
            InvalidUpdate: hospital names that do not match the rows, or a history of another
                length (the model changed under a running federation: call :meth:`reset`).
        """
        validate_inputs(matrix, weights)
        n = matrix.shape[0]
        self.check(n)
        names = check_hospitals(hospitals, n, "FoolsGold")
        for name in names:
            history = self.histories.get(name)
            if history is not None and history.shape != matrix.shape[1:]:
                raise InvalidUpdate(
                    f"hospital {name!r} has a FoolsGold history of {history.numel()} values but "
                    f"sent {matrix.shape[1]}: reset the rule when the model changes"
                )
        for row, name in enumerate(names):
            history = self.histories.get(name)
            update = matrix[row].to(torch.float64)
            self.histories[name] = update.clone() if history is None else history + update
        stacked = torch.stack([self.histories[name] for name in names])
        trust = foolsgold_weights(stacked, self.kappa)
        self.last_weights = trust
        if not bool(trust.any()):
            logger.warning(
                "foolsgold gave every input weight 0; applying no update",
                extra={"inputs": n},
            )
            return torch.zeros(matrix.shape[1], dtype=matrix.dtype, device=matrix.device)
        coefficients = (trust / trust.sum()).to(matrix.dtype)
        return coefficients @ matrix

    def reset(self) -> None:
        """Forget all histories (a new federation, or a model of another shape)."""
        self.histories.clear()
        self.last_weights = None
