"""Prometheus metrics of the federation, exported through Ray's metrics agent.

Labels are hospital names (institutions, never patients), mechanisms and decline reasons, and
nothing else: no PHI can reach a label. Ray prefixes every name with ``ray_`` and counters
with ``_total`` on export. The aggregator actor exports what the aggregator sees; each
hospital actor exports its own privacy spend (in a real deployment, the site's own Prometheus
would scrape that, not the federation's).
"""

from __future__ import annotations

from collections.abc import Callable

from ray.util.metrics import Counter, Gauge, Histogram

from securemed.federation.coordinator import RoundOutcome
from securemed.hospital import DeclineReason, PrivacyStatus

_ROUND_SECONDS_BOUNDARIES = [1, 5, 10, 30, 60, 120, 300, 600]


class FederationMetrics:
    """Rounds, participants, update bytes, round seconds and epsilon per hospital."""

    def __init__(self) -> None:
        self.rounds = Counter(
            "securemed_federation_rounds", description="Federated rounds completed."
        )
        self.participants = Gauge(
            "securemed_federation_participants",
            description="Hospitals whose updates were aggregated in the last round.",
        )
        self.missed = Counter(
            "securemed_federation_missed_deadlines",
            description="Selected hospitals that missed a round's deadline.",
            tag_keys=("hospital",),
        )
        self.update_bytes = Counter(
            "securemed_federation_update_bytes",
            description="Bytes of model updates received.",
            tag_keys=("hospital",),
        )
        self.round_seconds = Histogram(
            "securemed_federation_round_seconds",
            description="Wall time of a round, from opening to aggregation.",
            boundaries=_ROUND_SECONDS_BOUNDARIES,
        )
        self.flagged = Counter(
            "securemed_federation_anomalous_updates",
            description="Updates whose norm z-score exceeded the anomaly threshold.",
            tag_keys=("hospital",),
        )
        self.aborted = Counter(
            "securemed_federation_aborted_rounds",
            description="Secure rounds aborted for lack of surviving hospitals.",
        )
        self.epsilon = Gauge(
            "securemed_hospital_epsilon",
            description="Cumulative DP epsilon each hospital reported, at the federation's delta.",
            tag_keys=("hospital",),
        )
        self.test_macro_auroc = Gauge(
            "securemed_federation_test_macro_auroc",
            description="Macro-AUROC of the global model on the held-out test set, last round.",
        )
        self.active = Gauge(
            "securemed_federation_active",
            description="1 while a federation runs (rounds should progress), 0 once finished.",
        )
        self.violations = Counter(
            "securemed_federation_protocol_violations",
            description="Hospitals caught breaking the secure-aggregation protocol (a bad "
            "share dealt or returned, a false complaint).",
            tag_keys=("hospital",),
        )

    def record(self, outcome: RoundOutcome, *, seconds: float) -> None:
        self.rounds.inc()
        self.participants.set(len(outcome.participants))
        self.round_seconds.observe(seconds)
        for hospital in outcome.missing:
            self.missed.inc(tags={"hospital": hospital})
        if outcome.aborted is not None:
            self.aborted.inc()
        for hospital in outcome.anomalies.flagged if outcome.anomalies else ():
            self.flagged.inc(tags={"hospital": hospital})
        for culprit in outcome.culprits:
            self.violations.inc(tags={"hospital": culprit.hospital})
        for hospital, report in outcome.reports.items():
            self.update_bytes.inc(report.update_bytes, tags={"hospital": hospital})
            if report.epsilon is not None:
                self.epsilon.set(report.epsilon, tags={"hospital": hospital})


class HospitalMetrics:
    """One hospital's privacy spend against its budget, its declined and released rounds.

    It is the site's :class:`~securemed.hospital.SiteEvents`: after every declined or
    released round it reads the site's :class:`PrivacyStatus` through ``status`` (given the
    rounds left) and updates its gauges.
    """

    def __init__(
        self,
        hospital: str,
        *,
        total_rounds: int,
        status: Callable[[int], PrivacyStatus | None],
    ) -> None:
        self._tags = {"hospital": hospital}
        self._total_rounds = total_rounds
        self._status = status
        self.budget = Gauge(
            "securemed_hospital_epsilon_budget",
            description="A hospital's lifetime DP-SGD budget on its data set.",
            tag_keys=("hospital",),
        )
        self.spent = Gauge(
            "securemed_hospital_ledger_epsilon",
            description="Epsilon a hospital's own ledger counts on its data set, by mechanism "
            "(dp-sgd, client-dp), across runs.",
            tag_keys=("hospital", "mechanism"),
        )
        self.projected = Gauge(
            "securemed_hospital_projected_epsilon",
            description="The DP-SGD spend if every round left ran at the current plan; above "
            "the budget, rounds will be declined.",
            tag_keys=("hospital",),
        )
        self.released = Counter(
            "securemed_hospital_ledger_releases",
            description="Rounds whose update left the hospital (its ledger rows released).",
            tag_keys=("hospital",),
        )
        self.declined = Counter(
            "securemed_hospital_declined_rounds",
            description="Rounds a hospital sat out: its budget, or its security/privacy policy.",
            tag_keys=("hospital", "reason"),
        )
        self._update(0)

    def round_declined(self, round_number: int, reason: DeclineReason) -> None:
        self.declined.inc(tags={**self._tags, "reason": reason})
        self._update(round_number)

    def round_released(self, round_number: int) -> None:
        self.released.inc(tags=self._tags)
        self._update(round_number)

    def _update(self, round_number: int) -> None:
        status = self._status(self._total_rounds - round_number)
        if status is None:
            return
        if status.budget is not None:
            self.budget.set(status.budget, tags=self._tags)
        if status.projected is not None:
            self.projected.set(status.projected, tags=self._tags)
        for mechanism, epsilon in status.spent.items():
            self.spent.set(epsilon, tags={**self._tags, "mechanism": mechanism})
