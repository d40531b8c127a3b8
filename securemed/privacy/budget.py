"""The budget orchestrator: before a round, decide which hospitals may spend privacy in it.

For every selected hospital the orchestrator projects the cumulative epsilon *after* the
planned round with the same Opacus accountant the hospital trains under, and decides:

* ``allow``: the projection stays within the hospital's budget;
* ``raise_noise`` (only when configured): the planned noise would overspend, so the round runs
  with the smallest noise multiplier (found by bisection) that keeps the projection within
  budget;
* ``exclude``: the hospital would overspend (or has already spent its budget, counting rounds
  that were reserved but never confirmed after a crash), so it sits the round out.

Exclusions are data, not exceptions: a round goes on with the hospitals that may spend. The
hard gate is :meth:`BudgetOrchestrator.reserve`, which writes the ledger row before the update
is released and raises :class:`~securemed.errors.BudgetExhausted` when the budget would break.

Projection is the accountant itself, not an estimate: :func:`project_epsilon` takes the
accountant's ``history`` of ``(noise_multiplier, sample_rate, steps)`` entries, adds the planned
steps exactly as ``step()`` would, and computes epsilon as Opacus' ``PRVAccountant`` (which it
runs) or ``RDPAccountant`` (whose own analysis functions and orders it calls, caching each
entry's curve) would report it; the tests check the numbers agree to the last digits.
Client-level DP is the Skellam mechanism, accounted in :mod:`securemed.privacy.client_dp`.

Float rounding: a projection may exceed the budget by at most :data:`EPSILON_TOLERANCE`
(``1e-9``). Ledger values and projections come from the same deterministic computation, so this
slack only absorbs the last bits of float arithmetic; it is far below the accountants' own
conservatism (PRV reports the upper end of its error band).

What it does not do: change a trainer's noise (the host applies ``noise_multiplier`` from the
decision), pick which hospitals are selected, or talk to the network.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis

from securemed.errors import BudgetExhausted, ConfigError
from securemed.privacy.ledger import (
    EPSILON_TOLERANCE,
    AccountantKind,
    LedgerEntry,
    Mechanism,
    PrivacyLedger,
    PrivacyUnit,
)

log = logging.getLogger(__name__)

Action = Literal["allow", "raise_noise", "exclude"]
HistoryEntry = tuple[float, float, int]


def project_epsilon(
    history: Iterable[Sequence[Any]],
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: AccountantKind,
) -> float:
    """Epsilon at ``delta`` after ``history`` plus ``steps`` more steps, as Opacus reports it.

    Args:
        history: the accountant's ``history`` (``accountant.history`` or the ``"history"`` of
            a trainer's ``accountant_state()``): ``(noise_multiplier, sample_rate, steps)``
            entries, oldest first.
        noise_multiplier: the noise multiplier of the planned steps.
        sample_rate: their sampling rate (records or patients per batch over all of them).
        steps: how many steps the round takes (``0`` gives the epsilon of ``history``).
        delta: the delta to state epsilon at.
        accountant: ``"rdp"`` or ``"prv"``, the accountant the hospital trains with.

    Returns:
        The cumulative epsilon; ``0.0`` for an empty history and no steps, ``inf`` when the
        accountant cannot bound it (treat that as "do not release").

    Raises:
        ConfigError: an argument or a history entry is out of range.

    Example:
        >>> project_epsilon([(1.1, 0.01, 300)], noise_multiplier=1.1, sample_rate=0.01,
        ...                 steps=100, delta=1e-5, accountant="rdp")  # same as 400 steps
    """
    if accountant not in ("rdp", "prv"):
        raise ConfigError(f"accountant must be 'rdp' or 'prv', got {accountant!r}")
    entries = _canonical_history(history)
    _check_mechanism(noise_multiplier, sample_rate, steps, where="planned round")
    if not (isinstance(delta, int | float) and math.isfinite(delta) and 0 < delta < 1):
        raise ConfigError(f"delta must be in (0, 1), got {delta!r}")
    if steps > 0:
        entries = _merge([*entries, (float(noise_multiplier), float(sample_rate), int(steps))])
    if not entries:
        return 0.0
    try:
        with warnings.catch_warnings():
            # RDP's order range and PRV's tails warn at extreme noise; the bound stays valid.
            warnings.filterwarnings("ignore", message="Optimal order is the")
            warnings.simplefilter("ignore", RuntimeWarning)
            epsilon = _epsilon(entries, delta, accountant)
    except (ValueError, ArithmeticError) as error:
        log.warning(
            "accountant could not bound epsilon", extra={"accountant": accountant, "error": error}
        )
        return math.inf
    return epsilon if math.isfinite(epsilon) else math.inf


@dataclass(frozen=True)
class PrivacyBudget:
    """A hospital's privacy budget: at most ``epsilon`` at ``delta`` over the whole run."""

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ConfigError(f"a budget's epsilon must be positive and finite, got {self.epsilon}")
        if not (math.isfinite(self.delta) and 0 < self.delta < 1):
            raise ConfigError(f"a budget's delta must be in (0, 1), got {self.delta}")


@dataclass(frozen=True)
class RoundPlan:
    """What a hospital's next round will do to its accountant.

    Attributes:
        history: the accountant history so far (see :func:`project_epsilon`).
        noise_multiplier: the noise multiplier the hospital plans to use.
        sample_rate: its sampling rate.
        steps: the steps of the round (``local_epochs * steps_per_epoch`` for DP-SGD, ``1``
            for client-level DP).
    """

    history: tuple[HistoryEntry, ...]
    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "history", tuple(_canonical_history(self.history)))
        _check_mechanism(self.noise_multiplier, self.sample_rate, self.steps, where="round plan")
        if self.steps < 1:
            raise ConfigError(f"a round plan takes at least one step, got {self.steps}")


@dataclass(frozen=True)
class BudgetDecision:
    """What one hospital may do in the coming round, and why (ids and numbers only).

    Attributes:
        hospital: the hospital's id.
        action: ``"allow"``, ``"raise_noise"`` or ``"exclude"``.
        noise_multiplier: the noise multiplier to train with; ``None`` when excluded.
        sample_rate: the round's sampling rate (from the plan).
        steps: the round's steps (from the plan).
        projected_epsilon: the cumulative epsilon after the round with that noise (for an
            exclusion, with the planned noise, when it was computed; else ``None``).
        spent_epsilon: what the ledger counts as spent before the round.
        budget_epsilon: the hospital's budget.
        delta: the delta of all three epsilons.
        reason: a sentence for logs and reports.
    """

    hospital: str
    action: Action
    noise_multiplier: float | None
    sample_rate: float
    steps: int
    projected_epsilon: float | None
    spent_epsilon: float
    budget_epsilon: float
    delta: float
    reason: str

    @property
    def participates(self) -> bool:
        """Whether the hospital trains and releases in this round."""
        return self.action != "exclude"


@dataclass
class BudgetOrchestrator:
    """Keep one hospital's data set within its privacy budget, round after round, run after run.

    The hospital runs it on its own machine against its own ledger: the aggregator never
    decides how much of a hospital's budget is spent. The spend is the data set's, over every
    run that has used it (the ledger is keyed by ``dataset_id``), and the accountant history is
    rebuilt from the ledger's rows (:meth:`history`), so it can never forget a round that was
    reserved before a crash.

    Args:
        ledger: the hospital's privacy ledger.
        budget: the data set's lifetime budget.
        dataset_id: the data set the budget belongs to.
        hospital: the hospital's id, written on each row.
        run_id: the run this orchestrator reserves rounds of.
        mechanism: ``"dp-sgd"`` or ``"client-dp"``.
        privacy_unit: ``"record"`` or ``"patient"``, written on every ledger row.
        accountant: ``"rdp"`` or ``"prv"``, the accountant the mechanism is accounted with.
        raise_noise: when the hospital would overspend, raise its noise instead of excluding it.
        max_noise_multiplier: the largest noise the bisection tries; a hospital that needs
            more is excluded (an update this noisy is useless to the model anyway).
        noise_tolerance: the bisection stops when the bracket's upper end is within this
            relative distance of the lower end; the answer is always the upper end, which
            was checked to fit the budget.
        guarantee: ``False`` for a run in the insecure reproducible mode (written on rows).

    Example:
        >>> orchestrator = BudgetOrchestrator(ledger, PrivacyBudget(3.0, 1e-5),
        ...                                   dataset_id="ds-1", hospital="h1", run_id="run-1")
        >>> decision = orchestrator.decide(1, RoundPlan(orchestrator.history(), 1.0, 0.02, 50))
        >>> if decision.participates:
        ...     orchestrator.reserve(decision, round_number=1)  # before sending
        ...     # ... send, then
        ...     orchestrator.commit(round_number=1)
    """

    ledger: PrivacyLedger
    budget: PrivacyBudget
    dataset_id: str
    hospital: str
    run_id: str
    mechanism: Mechanism = "dp-sgd"
    privacy_unit: PrivacyUnit = "record"
    accountant: AccountantKind = "prv"
    raise_noise: bool = False
    max_noise_multiplier: float = 100.0
    noise_tolerance: float = 1e-3
    guarantee: bool = True

    def __post_init__(self) -> None:
        if self.accountant not in ("rdp", "prv"):
            raise ConfigError(f"accountant must be 'rdp' or 'prv', got {self.accountant!r}")
        if self.mechanism not in ("dp-sgd", "client-dp"):
            raise ConfigError(f"mechanism must be 'dp-sgd' or 'client-dp', got {self.mechanism!r}")
        if self.privacy_unit not in ("record", "patient"):
            raise ConfigError(
                f"privacy_unit must be 'record' or 'patient', got {self.privacy_unit!r}"
            )
        if not (math.isfinite(self.max_noise_multiplier) and self.max_noise_multiplier > 0):
            raise ConfigError("max_noise_multiplier must be positive and finite")
        if not 0 < self.noise_tolerance < 1:
            raise ConfigError("noise_tolerance must be in (0, 1)")
        if not isinstance(self.budget, PrivacyBudget):
            raise ConfigError(f"the budget of data set {self.dataset_id!r} is not a PrivacyBudget")

    # ------------------------------------------------------------------------------ reads

    def spent(self) -> float:
        """What the ledger counts as spent on the data set (reserved rounds included)."""
        return self.ledger.spent(dataset_id=self.dataset_id, mechanism=self.mechanism)

    def history(self) -> list[HistoryEntry]:
        """The accountant history of every counted round on the data set, oldest first.

        Rebuilt from the ledger's rows, so it includes rounds of earlier runs and rounds
        reserved just before a crash: exactly what was (or may have been) released.
        """
        return _merge(
            [
                (
                    float(entry.parameters["noise_multiplier"]),
                    float(entry.parameters["sample_rate"]),
                    int(entry.parameters["steps"]),
                )
                for entry in self.ledger.history(
                    dataset_id=self.dataset_id, mechanism=self.mechanism
                )
                if entry.counted
            ]
        )

    def ensure_within_budget(self) -> None:
        """Raise unless the data set still has budget left.

        Raises:
            BudgetExhausted: the ledger shows spend at or over the budget, counting rounds
                reserved before a crash and never confirmed.
        """
        spent = self.spent()
        if spent >= self.budget.epsilon:
            raise BudgetExhausted(
                f"data set {self.dataset_id!r} of hospital {self.hospital!r} has spent epsilon "
                f"{spent:.6g} of its budget {self.budget.epsilon:.6g} at delta "
                f"{self.budget.delta:g} (reserved rounds count; ledger {self.ledger.path}); it "
                "must not release another update"
            )

    # ---------------------------------------------------------------------------- decide

    def decide(self, round_number: int, plan: RoundPlan) -> BudgetDecision:
        """Decide whether, and with what noise, the hospital takes part in the round."""
        decision = self._decide(plan)
        log.info(
            "budget decision",
            extra={
                "dataset_id": self.dataset_id,
                "run_id": self.run_id,
                "round": round_number,
                "action": decision.action,
                "noise_multiplier": decision.noise_multiplier,
                "projected_epsilon": decision.projected_epsilon,
                "spent_epsilon": decision.spent_epsilon,
                "budget_epsilon": decision.budget_epsilon,
            },
        )
        return decision

    def _decide(self, plan: RoundPlan) -> BudgetDecision:
        budget = self.budget
        spent = self.spent()
        limit = budget.epsilon + EPSILON_TOLERANCE

        def decision(
            action: Action, reason: str, sigma: float | None = None, projected: float | None = None
        ) -> BudgetDecision:
            return BudgetDecision(
                hospital=self.hospital,
                action=action,
                noise_multiplier=sigma,
                sample_rate=plan.sample_rate,
                steps=plan.steps,
                projected_epsilon=projected,
                spent_epsilon=spent,
                budget_epsilon=budget.epsilon,
                delta=budget.delta,
                reason=reason,
            )

        if spent >= budget.epsilon:
            return decision(
                "exclude",
                f"budget exhausted: the ledger counts epsilon {spent:.4g} of {budget.epsilon:.4g}",
            )
        so_far = self._project(plan, plan.noise_multiplier, steps=0)
        if so_far < spent - EPSILON_TOLERANCE * max(1.0, spent):
            return decision(
                "exclude",
                f"the accountant history gives epsilon {so_far:.6g} but the ledger counts "
                f"{spent:.6g}: the history misses a reserved round; rebuild it from the ledger",
            )
        planned = self._project(plan, plan.noise_multiplier)
        if planned <= limit:
            return decision(
                "allow",
                f"projected epsilon {planned:.4g} within budget {budget.epsilon:.4g}",
                plan.noise_multiplier,
                planned,
            )
        over = f"noise {plan.noise_multiplier:.4g} would take epsilon to {planned:.4g}"
        if not self.raise_noise:
            return decision(
                "exclude", f"{over}, past budget {budget.epsilon:.4g}", projected=planned
            )
        ceiling = self.max_noise_multiplier
        at_ceiling = self._project(plan, ceiling) if ceiling > plan.noise_multiplier else math.inf
        if at_ceiling > limit:
            return decision(
                "exclude",
                f"{over}; even noise {ceiling:.4g} gives {at_ceiling:.4g}, past budget "
                f"{budget.epsilon:.4g}",
                projected=planned,
            )
        sigma, projected = self._smallest_noise(plan, plan.noise_multiplier, ceiling)
        return decision(
            "raise_noise",
            f"{over}; noise raised to {sigma:.4g} keeps it at {projected:.4g} within budget "
            f"{budget.epsilon:.4g}",
            sigma,
            projected,
        )

    def _smallest_noise(self, plan: RoundPlan, low: float, high: float) -> tuple[float, float]:
        """Bisect (geometrically) for the smallest noise whose projection fits the budget.

        Invariant: ``low`` overspends, ``high`` fits. Epsilon falls as noise rises, but the
        answer never relies on that: ``high`` is only ever a value that was checked to fit.
        """
        limit = self.budget.epsilon + EPSILON_TOLERANCE
        high_epsilon = self._project(plan, high)
        while high / low > 1 + self.noise_tolerance:
            middle = math.sqrt(low * high)
            epsilon = self._project(plan, middle)
            if epsilon <= limit:
                high, high_epsilon = middle, epsilon
            else:
                low = middle
        return high, high_epsilon

    def _project(self, plan: RoundPlan, sigma: float, *, steps: int | None = None) -> float:
        return project_epsilon(
            plan.history,
            noise_multiplier=sigma,
            sample_rate=plan.sample_rate,
            steps=plan.steps if steps is None else steps,
            delta=self.budget.delta,
            accountant=self.accountant,
        )

    # ----------------------------------------------------------------------------- gate

    def reserve(
        self,
        decision: BudgetDecision,
        *,
        round_number: int,
        cumulative_epsilon: float | None = None,
    ) -> LedgerEntry:
        """Write the data set's ledger row for the round: call it before the update leaves.

        Args:
            decision: the hospital's decision for this round.
            cumulative_epsilon: the trainer's epsilon after the round, when known; the
                decision's projection otherwise. The larger of the two is recorded.

        Raises:
            BudgetExhausted: the decision excluded the hospital, the ledger already shows its
                budget spent, or the epsilon would pass the budget.
            LedgerError: the ledger refused the row (see :meth:`PrivacyLedger.reserve`).
        """
        if (
            not decision.participates
            or decision.projected_epsilon is None
            or decision.noise_multiplier is None
        ):
            raise BudgetExhausted(
                f"hospital {decision.hospital!r} was excluded from round {round_number} "
                f"({decision.reason}); it must not release an update"
            )
        epsilon = decision.projected_epsilon
        if cumulative_epsilon is not None:
            epsilon = max(epsilon, cumulative_epsilon)
        return self.ledger.reserve(
            dataset_id=self.dataset_id,
            run_id=self.run_id,
            hospital=self.hospital,
            round_number=round_number,
            mechanism=self.mechanism,
            cumulative_epsilon=epsilon,
            delta=self.budget.delta,
            privacy_unit=self.privacy_unit,
            accountant=self.accountant,
            parameters={
                "noise_multiplier": decision.noise_multiplier,
                "sample_rate": decision.sample_rate,
                "steps": decision.steps,
            },
            guarantee=self.guarantee,
            budget_epsilon=self.budget.epsilon,
        )

    def commit(self, *, round_number: int) -> LedgerEntry:
        """Mark the reserved round as released (after sending)."""
        return self.ledger.commit(
            dataset_id=self.dataset_id,
            run_id=self.run_id,
            round_number=round_number,
            mechanism=self.mechanism,
        )

    def abort(self, *, round_number: int, reason: str) -> LedgerEntry:
        """Undo a reservation whose update provably never left (see :meth:`PrivacyLedger.abort`)."""
        return self.ledger.abort(
            dataset_id=self.dataset_id,
            run_id=self.run_id,
            round_number=round_number,
            mechanism=self.mechanism,
            reason=reason,
        )


# ------------------------------------------------------------------------------- helpers


def _epsilon(entries: list[HistoryEntry], delta: float, kind: str) -> float:
    """Ask the Opacus accountant ``kind`` for epsilon after ``entries``.

    RDP adds one curve per entry, so the per-step curve of each (noise, rate) is cached: the
    sum, taken in the accountant's order with its orders, is bit-for-bit what
    ``RDPAccountant.get_epsilon`` computes, but a bisection over the planned noise no longer
    recomputes the whole history every time.
    """
    if kind == "rdp":
        curve = sum(_rdp_per_step(rate, sigma) * steps for sigma, rate, steps in entries)
        epsilon, _ = rdp_analysis.get_privacy_spent(
            orders=RDPAccountant.DEFAULT_ALPHAS, rdp=curve, delta=delta
        )
        return float(epsilon)
    if kind == "prv":
        counter = PRVAccountant()
        counter.history = list(entries)
        return float(counter.get_epsilon(delta))
    raise ConfigError(f"accountant must be 'rdp' or 'prv', got {kind!r}")


@functools.lru_cache(maxsize=1024)
def _rdp_per_step(rate: float, sigma: float) -> np.ndarray:
    curve = np.asarray(
        rdp_analysis.compute_rdp(
            q=rate, noise_multiplier=sigma, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS
        ),
        dtype=float,
    )
    curve.setflags(write=False)
    return curve


def _check_mechanism(sigma: object, rate: object, steps: object, *, where: str) -> None:
    if isinstance(sigma, bool) or not isinstance(sigma, int | float):
        raise ConfigError(f"{where}: noise_multiplier must be a number, got {sigma!r}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"{where}: noise_multiplier must be positive and finite, got {sigma}")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise ConfigError(f"{where}: sample_rate must be in (0, 1], got {rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"{where}: steps must be a non-negative integer, got {steps!r}")


def _canonical_history(history: Iterable[Sequence[Any]]) -> list[HistoryEntry]:
    """Validate a history and merge neighbours of equal noise and rate, as ``step()`` does."""
    if isinstance(history, str | bytes) or not isinstance(history, Iterable):
        raise ConfigError("an accountant history is a list of (noise, rate, steps) entries")
    entries: list[HistoryEntry] = []
    for entry in history:
        try:
            sigma, rate, steps = entry
        except (TypeError, ValueError):
            raise ConfigError(
                f"accountant history entry {entry!r} is not (noise_multiplier, sample_rate, steps)"
            ) from None
        if isinstance(steps, float) and steps.is_integer():
            steps = int(steps)  # JSON round trips may turn counts into floats
        _check_mechanism(sigma, rate, steps, where=f"history entry {entry!r}")
        if steps:
            entries.append((float(sigma), float(rate), int(steps)))
    return _merge(entries)


def _merge(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    merged: list[HistoryEntry] = []
    for sigma, rate, steps in entries:
        if merged and merged[-1][0] == sigma and merged[-1][1] == rate:
            merged[-1] = (sigma, rate, merged[-1][2] + steps)
        else:
            merged.append((sigma, rate, steps))
    return merged
