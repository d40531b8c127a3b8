"""A hospital's own privacy bookkeeping: its ledger, its budget, its decisions, on its machine.

The aggregator and the job operator may be curious or malicious, so nothing they send decides
how much of a hospital's budget is spent. :class:`HospitalPrivacy` is what the hospital's loop
(:func:`securemed.hospital.run_hospital`) asks before and after every round, in the Ray actor
and in ``python -m securemed.hospital`` alike:

* at start, it rebuilds the accountant from the hospital's own write-ahead ledger (every run on
  the same data set, every round reserved before a crash) and refuses a run whose plan would
  pass the data set's lifetime budget, naming what was spent and where;
* before a round, it decides whether the hospital takes part, and with what noise
  (:class:`~securemed.privacy.budget.BudgetOrchestrator`); a round this run already reserved
  before a restart is sat out, never released twice;
* after training and before any byte of the update leaves, it writes the round's reservation
  (write-ahead); once the update is sent, it marks the round released.

The ledger is the source of truth: epsilon after a crash is the ledger's cumulative spend,
whatever a checkpoint said, so a resume can neither charge a round twice nor skip one.

Client-level DP rounds (noise the hospital adds to its masked levels) are reserved in the same
ledger under their own mechanism and budget (:mod:`securemed.privacy.client_dp`).

What it does not do: train, add noise or talk to the network.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securemed.config import PrivacyConfig
from securemed.errors import BudgetExhausted, ConfigError
from securemed.privacy.budget import (
    BudgetDecision,
    BudgetOrchestrator,
    PrivacyBudget,
    RoundPlan,
    project_epsilon,
)
from securemed.privacy.client_dp import ClientDPPolicy, client_dp_epsilon
from securemed.privacy.ledger import LedgerEntry, Mechanism, PrivacyLedger
from securemed.privacy.patient_level import PrivacyUnit

log = logging.getLogger(__name__)

#: the ledger file inside a hospital's state folder
LEDGER_FILE = "privacy-ledger.sqlite"


@dataclass(frozen=True)
class LedgerPlace:
    """Where a hospital's ledger lives and which data set its budget belongs to.

    Attributes:
        path: the ledger file.
        dataset_id: the ledger key of the data.
        public_data: the data is generated (public by construction): its ledger covers one
            run, and its results say so.
    """

    path: Path
    dataset_id: str
    public_data: bool


def ledger_place(
    privacy: PrivacyConfig,
    *,
    hospital: str,
    data_file: Path | None,
    run_folder: Path | None,
    run_id: str,
) -> LedgerPlace:
    """Where ``hospital`` keeps its ledger, from its own config.

    Real data (``data_file``) gets one ledger per data set in the hospital's state folder
    (``privacy.state_dir``, outside ``runs/``), keyed by ``privacy.dataset_id`` or the file's
    SHA-256, so every run on it composes. Generated data is public by construction: its ledger
    lives in the run folder (or the state folder when there is none) and covers this run.
    """
    if data_file is not None:
        dataset_id = privacy.dataset_id or f"sha256:{file_digest(data_file)}"
        return LedgerPlace(privacy.state_dir / hospital / LEDGER_FILE, dataset_id, False)
    folder = run_folder / "privacy" if run_folder is not None else privacy.state_dir / hospital
    dataset_id = privacy.dataset_id or f"generated:{run_id}:{hospital}"
    return LedgerPlace(folder / f"{hospital}.sqlite", dataset_id, True)


def file_digest(path: Path) -> str:
    """SHA-256 of a data file, read in chunks (a MedMNIST file may be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HospitalPrivacy:
    """One hospital's privacy ledger and budgets for one run, on its own machine.

    Args:
        ledger: the hospital's own ledger (see :func:`ledger_place`).
        privacy: the hospital's own DP-SGD settings (never the aggregator's).
        hospital: the hospital's name.
        dataset_id: the data set the budgets belong to.
        run_id: this run.
        privacy_unit: what the DP-SGD epsilon protects in this run.
        secure_noise: ``False`` in the insecure reproducible mode: rows say their epsilon is
            no guarantee.
        client_dp: the hospital's own client-level DP settings, if it adds such noise.
    """

    def __init__(
        self,
        ledger: PrivacyLedger,
        *,
        privacy: PrivacyConfig,
        hospital: str,
        dataset_id: str,
        run_id: str,
        privacy_unit: PrivacyUnit,
        secure_noise: bool,
        client_dp: ClientDPPolicy | None = None,
    ) -> None:
        self.ledger = ledger
        self._privacy = privacy
        self._hospital = hospital
        self._dataset_id = dataset_id
        self._run_id = run_id
        self._secure_noise = secure_noise
        self._client_dp = client_dp
        self._orchestrator: BudgetOrchestrator | None = None
        if privacy.enabled:
            if privacy.budget is None:
                raise ConfigError(
                    "a hospital that trains with a fixed noise multiplier needs a budget: set "
                    "privacy.budget_epsilon"
                )
            self._orchestrator = BudgetOrchestrator(
                ledger,
                PrivacyBudget(privacy.budget, privacy.delta),
                dataset_id=dataset_id,
                hospital=hospital,
                run_id=run_id,
                privacy_unit=privacy_unit,
                accountant=privacy.accountant,
                raise_noise=privacy.on_budget_exhausted == "raise_noise",
                guarantee=secure_noise,
            )
        self._decisions: dict[int, BudgetDecision] = {}
        self._client_rounds: dict[int, dict[str, float]] = {}

    @property
    def dataset_id(self) -> str:
        return self._dataset_id

    def accountant_state(self) -> dict[str, Any] | None:
        """The trainer's accountant as the ledger says it is: every counted round on the data
        set, across runs and crashes (pass it to ``LocalTrainer(accountant_state=...)``);
        ``None`` without DP-SGD."""
        if self._orchestrator is None:
            return None
        return {
            "mechanism": self._privacy.accountant,
            "history": [list(entry) for entry in self._orchestrator.history()],
            "unit": self._orchestrator.privacy_unit,
        }

    def spent(self, mechanism: Mechanism = "dp-sgd") -> float:
        """The data set's spend under ``mechanism`` over every run (reserved rounds count)."""
        return self.ledger.spent(dataset_id=self._dataset_id, mechanism=mechanism)

    def guaranteed(self) -> bool:
        """Whether the data set's whole spend is a guarantee: this run's noise and every
        counted round before it came from the OS, none from a config seed."""
        return self._secure_noise and all(
            entry.guarantee
            for entry in self.ledger.history(dataset_id=self._dataset_id)
            if entry.counted
        )

    # --------------------------------------------------------------------------- DP-SGD

    def check_run(self, plan: tuple[float, float, int], rounds: int) -> None:
        """Refuse a run that would pass the data set's lifetime budget because of earlier runs.

        A run whose own plan passes the budget (a budget set below the target on purpose) is
        allowed: the hospital sits out the rounds it cannot afford. Earlier runs on the same
        data are what this guards against: they are named, with their spend and the ledger.

        Raises:
            BudgetExhausted: the data set has no budget left, or earlier runs leave too little
                for this run's plan.
        """
        orchestrator = self._orchestrator
        if orchestrator is None:
            return
        orchestrator.ensure_within_budget()
        earlier = [
            entry
            for entry in self.ledger.history(dataset_id=self._dataset_id, mechanism="dp-sgd")
            if entry.counted and entry.run_id != self._run_id
        ]
        if not earlier:
            return
        projected = self.projected(plan, rounds)
        if projected is not None and projected > orchestrator.budget.epsilon:
            raise BudgetExhausted(
                f"data set {self._dataset_id!r} has spent epsilon {self.spent():.3g} of its "
                f"lifetime budget {orchestrator.budget.epsilon:.3g} in earlier runs "
                f"({_runs(earlier)}; ledger {self.ledger.path}); this run's {rounds} rounds "
                f"would take it to {projected:.3g}. Train with more noise or fewer rounds, or "
                "use other data"
            )

    @property
    def budget(self) -> float | None:
        """The data set's lifetime DP-SGD budget (``None`` without DP-SGD)."""
        return None if self._orchestrator is None else self._orchestrator.budget.epsilon

    def projected(self, plan: tuple[float, float, int], rounds: int) -> float | None:
        """The DP-SGD spend if ``rounds`` more rounds ran at ``plan`` (noise multiplier,
        sample rate, steps per round) after every counted one; ``None`` without DP-SGD."""
        orchestrator = self._orchestrator
        if orchestrator is None:
            return None
        sigma, rate, steps = plan
        return project_epsilon(
            orchestrator.history(),
            noise_multiplier=sigma,
            sample_rate=rate,
            steps=steps * rounds,
            delta=orchestrator.budget.delta,
            accountant=orchestrator.accountant,
        )

    def decide(self, round_number: int, plan: tuple[float, float, int]) -> BudgetDecision | None:
        """Whether the hospital takes part in ``round_number``, and with what noise; ``None``
        without DP-SGD (nothing to decide)."""
        orchestrator = self._orchestrator
        if orchestrator is None:
            return None
        sigma, rate, steps = plan
        if self._already_reserved(round_number, "dp-sgd"):
            decision = BudgetDecision(
                hospital=self._hospital,
                action="exclude",
                noise_multiplier=None,
                sample_rate=rate,
                steps=steps,
                projected_epsilon=None,
                spent_epsilon=self.spent(),
                budget_epsilon=orchestrator.budget.epsilon,
                delta=orchestrator.budget.delta,
                reason=f"round {round_number} was already reserved before a restart; an update "
                "for it may have left, so no second one is released",
            )
        else:
            decision = orchestrator.decide(
                round_number,
                RoundPlan(
                    history=tuple(orchestrator.history()),
                    noise_multiplier=sigma,
                    sample_rate=rate,
                    steps=steps,
                ),
            )
        if decision.participates:
            self._decisions[round_number] = decision
        return decision

    # ---------------------------------------------------------------------- client-level DP

    def decide_client_dp(self, round_number: int, parameters: Mapping[str, float]) -> str | None:
        """Check the round's client-level noise against the hospital's client-level budget;
        returns why it must sit out, or ``None`` (and remembers the round's mechanism)."""
        policy = self._client_dp
        if policy is None:
            return None
        if self._already_reserved(round_number, "client-dp"):
            return f"round {round_number}'s client-level noise was already reserved"
        projected = client_dp_epsilon([*self._client_history(), parameters], delta=policy.delta)
        if policy.budget_epsilon is not None and projected > policy.budget_epsilon:
            return (
                f"client-level epsilon would reach {projected:.3g}, past its budget "
                f"{policy.budget_epsilon:.3g}"
            )
        self._client_rounds[round_number] = dict(parameters)
        return None

    # ------------------------------------------------------------------ write-ahead ledger

    def reserve(self, round_number: int, epsilon: float | None) -> list[LedgerEntry]:
        """Write the round's reservations (before any byte of the update leaves).

        Raises:
            BudgetExhausted: no decision allowed the round, or it would pass a budget.
        """
        entries = []
        if self._orchestrator is not None:
            decision = self._decisions.get(round_number)
            if decision is None:
                raise BudgetExhausted(
                    f"round {round_number} was not allowed by this hospital's budget; it must "
                    "not release an update"
                )
            entries.append(
                self._orchestrator.reserve(
                    decision, round_number=round_number, cumulative_epsilon=epsilon
                )
            )
        parameters = self._client_rounds.get(round_number)
        if parameters is not None:
            assert self._client_dp is not None
            entries.append(
                self.ledger.reserve(
                    dataset_id=self._dataset_id,
                    run_id=self._run_id,
                    hospital=self._hospital,
                    round_number=round_number,
                    mechanism="client-dp",
                    cumulative_epsilon=client_dp_epsilon(
                        [*self._client_history(), parameters], delta=self._client_dp.delta
                    ),
                    delta=self._client_dp.delta,
                    privacy_unit="patient",  # a hospital's whole data set: every patient in it
                    accountant="rdp",
                    parameters=parameters,
                    guarantee=self._secure_noise,
                    budget_epsilon=self._client_dp.budget_epsilon,
                )
            )
        return entries

    def released(self, round_number: int) -> None:
        """Mark the round's reservations released (the update was sent)."""
        for mechanism in ("dp-sgd", "client-dp"):
            if self._already_reserved(round_number, mechanism):
                self.ledger.commit(
                    dataset_id=self._dataset_id,
                    run_id=self._run_id,
                    round_number=round_number,
                    mechanism=mechanism,
                )
        self._decisions.pop(round_number, None)
        self._client_rounds.pop(round_number, None)

    def _already_reserved(self, round_number: int, mechanism: Mechanism) -> bool:
        return any(
            entry.round == round_number and entry.counted
            for entry in self.ledger.history(
                dataset_id=self._dataset_id, mechanism=mechanism, run_id=self._run_id
            )
        )

    def _client_history(self) -> list[Mapping[str, float]]:
        return [
            entry.parameters
            for entry in self.ledger.history(dataset_id=self._dataset_id, mechanism="client-dp")
            if entry.counted
        ]


def _runs(entries: Sequence[LedgerEntry]) -> str:
    """'run-a: 3 rounds, run-b: 1 round', for a refusal message."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.run_id] = counts.get(entry.run_id, 0) + 1
    return ", ".join(f"{run}: {n} round{'s' if n != 1 else ''}" for run, n in counts.items())
