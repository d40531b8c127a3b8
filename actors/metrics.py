"""Prometheus metrics of the federation, exported through Ray's metrics agent.

Labels are hospital names (institutions, never patients) and nothing else: no PHI can reach
a label. Ray prefixes every name with ``ray_`` and counters with ``_total`` on export.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram

from securemed.federation.coordinator import RoundOutcome

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
        for hospital, report in outcome.reports.items():
            self.update_bytes.inc(report.update_bytes, tags={"hospital": hospital})
            if report.epsilon is not None:
                self.epsilon.set(report.epsilon, tags={"hospital": hospital})
