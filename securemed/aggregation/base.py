"""The protocol every aggregation rule on update matrices follows, and checks they share.

A rule turns an ``(n, d)`` matrix (one flattened update per row, see
:mod:`securemed.aggregation.vectors`) into one ``d``-vector. Rows are "inputs" rather than
hospitals because in secure-bucketing mode a row is the mean of a bucket of hospitals. Each
rule states the published condition under which its guarantee holds and refuses to run outside
it, so a misconfigured federation fails loudly instead of silently aggregating without the
protection it asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from securemed.errors import AggregationPreconditionError, ConfigError, InvalidUpdate


@runtime_checkable
class AggregationRule(Protocol):
    """A way to combine ``n`` update vectors into one.

    Attributes:
        name: the registry name (``"krum"``), used in configs and logs.
        f: number of Byzantine (arbitrary, possibly colluding) inputs the rule must tolerate.
        needs_individual_updates: True when the rule must see each input's vector; such a rule
            cannot run on a securely aggregated sum, only on individual updates or bucket means.
        needs_hospital_ids: True when ``aggregate`` needs ``hospitals`` (the rule keeps
            per-hospital state across rounds, as FoolsGold does).
    """

    name: str
    f: int
    needs_individual_updates: bool
    needs_hospital_ids: bool

    def check(self, n: int) -> None:
        """Raise :class:`AggregationPreconditionError` when ``n`` inputs are too few for ``f``."""
        ...

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Combine the rows of ``matrix`` into one vector; calls :meth:`check` first.

        Args:
            matrix: ``(n, d)`` floating tensor, one update per row.
            weights: optional ``n`` positive sample counts. Only FedAvg uses them: counts are
                self-reported, so a Byzantine input could claim any count, and the robust
                guarantees are stated for unweighted inputs.
            hospitals: the hospital of each row; used only by rules with
                ``needs_hospital_ids`` and ignored by the others.
        """
        ...

    def reset(self) -> None:
        """Forget state carried across rounds (a no-op for stateless rules)."""
        ...


def check_f(f: int) -> int:
    """Validate a Byzantine count given in a config and return it."""
    if isinstance(f, bool) or not isinstance(f, int) or f < 0:
        raise ConfigError(
            f"f (number of Byzantine inputs tolerated) must be an integer >= 0, not {f!r}"
        )
    return f


def require(
    ok: bool, *, rule: str, f: int, n: int, condition: str, bound: int, source: str
) -> None:
    """Raise a precondition error that cites the condition, its numbers and its source.

    ``condition`` is written in terms of ``n`` and ``f`` (``"n > 2f + 2"``) and ``bound`` is its
    right-hand side evaluated, so the message reads
    ``Krum with f=2 Byzantine inputs needs n > 2f + 2 = 6 inputs (Blanchard et al. 2017), got 5``.
    """
    if not ok:
        raise AggregationPreconditionError(
            f"{rule} with f={f} Byzantine inputs needs {condition} = {bound} inputs ({source}), "
            f"got {n}: lower f, choose a rule with a weaker condition, or wait for more updates"
        )


def validate_inputs(matrix: torch.Tensor, weights: torch.Tensor | None = None) -> None:
    """Refuse matrices the rules cannot order or measure: wrong shape, not float, not finite.

    A single NaN would poison a sort or a distance, and an infinite update is never a
    legitimate training result, so both are rejected before any rule looks at the values.
    """
    if matrix.dim() != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise InvalidUpdate(
            f"aggregation takes an (n, d) matrix with n, d >= 1, got shape {tuple(matrix.shape)}"
        )
    if not matrix.dtype.is_floating_point:
        raise InvalidUpdate(f"aggregation takes a floating matrix, got {matrix.dtype}")
    # Summing is much cheaper than an element-wise isfinite over n * d values, and a sum of
    # finite values is finite unless it overflows; only then pay for the exact check.
    if not torch.isfinite(matrix.sum()) and not bool(torch.isfinite(matrix).all()):
        rows = (~torch.isfinite(matrix)).any(dim=1).nonzero().flatten().tolist()
        raise InvalidUpdate(f"updates in rows {rows} contain NaN or infinite values")
    if weights is not None:
        n = matrix.shape[0]
        if weights.shape != (n,):
            raise InvalidUpdate(f"{n} updates need {n} weights, got shape {tuple(weights.shape)}")
        if not bool(torch.isfinite(weights).all()) or bool((weights <= 0).any()):
            raise InvalidUpdate("weights (sample counts) must be finite and positive")


def check_hospitals(hospitals: Sequence[str] | None, n: int, rule: str) -> list[str]:
    """Validate the row-to-hospital mapping a stateful rule keys its state by."""
    if hospitals is None:
        raise AggregationPreconditionError(
            f"{rule} keeps per-hospital history and needs the hospital of each row: "
            "pass hospitals=[...] to aggregate"
        )
    names = list(hospitals)
    if len(names) != n:
        raise InvalidUpdate(f"{n} updates but {len(names)} hospital names")
    if len(set(names)) != n:
        raise InvalidUpdate(f"a hospital appears twice among the rows given to {rule}")
    return names
