"""The report service's Prometheus metrics (``ray.util.metrics``, exported with a ``ray_`` prefix).

Every label value comes from a closed vocabulary (stage names, entity types, reason codes,
outcome codes) and is checked against it here: a label can never carry request text, so no PHI
can reach Prometheus whatever a caller sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ray.util import metrics

from securemed.safety.codes import Code

REASON_CODES = tuple(code.value for code in Code)
IMAGE_ACTIONS = (
    "removed",
    "replaced",
    "uids_remapped",
    "dates_shifted",
    "private_tags_removed",
    "burned_in_regions_blanked",
)
STAGES = ("authenticate", "input_check", "anonymize", "generate", "validate", "seal", "total")
_LATENCY_BOUNDARIES_MS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4]
OTHER = "other"


def closed_label(value: str, vocabulary: Iterable[str]) -> str:
    """``value`` if it belongs to the vocabulary, else ``other``."""
    return value if value in set(vocabulary) else OTHER


class ServiceMetrics:
    """Created once per replica (Ray registers metrics in the process that records them)."""

    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "securemed_report_requests",
            description="Report requests by outcome: sealed, or the error code returned.",
            tag_keys=("outcome",),
        )
        self.stage_latency = metrics.Histogram(
            "securemed_stage_latency_ms",
            description="Time spent in each stage of a report request, in milliseconds.",
            boundaries=_LATENCY_BOUNDARIES_MS,
            tag_keys=("stage",),
        )
        self.phi_removed = metrics.Counter(
            "securemed_phi_entities_removed",
            description="PHI removed, by entity type and where it was found.",
            tag_keys=("entity_type", "source"),
        )
        self.verdicts = metrics.Counter(
            "securemed_validator_verdicts",
            description="Safety verdicts of requests: each reason by its decision; a request "
            "with no reason counts once as pass.",
            tag_keys=("decision", "reason"),
        )
        self.image_deidentification = metrics.Counter(
            "securemed_image_deidentification_actions",
            description="De-identification actions on uploaded films (DICOM attributes removed "
            "or replaced, UIDs remapped, dates shifted, burned-in text blanked), by kind.",
            tag_keys=("action", "image_kind"),
        )
        self.sealed = metrics.Counter(
            "securemed_reports_sealed",
            description="Reports sealed to a clinician, by verdict.",
            tag_keys=("verdict",),
        )

    def request(self, outcome: str, outcomes: Iterable[str]) -> None:
        self.requests.inc(tags={"outcome": closed_label(outcome, outcomes)})

    def stage(self, stage: str, milliseconds: float) -> None:
        self.stage_latency.observe(milliseconds, tags={"stage": closed_label(stage, STAGES)})

    def phi(self, counts: Mapping[str, int], *, source: str, vocabulary: Iterable[str]) -> None:
        allowed = set(vocabulary)
        for entity_type, count in counts.items():
            if count:
                tags = {"entity_type": closed_label(entity_type, allowed), "source": source}
                self.phi_removed.inc(count, tags=tags)

    def image_actions(self, actions: Mapping[str, int], *, kind: str) -> None:
        for action, count in actions.items():
            if count:
                tags = {
                    "action": closed_label(action, IMAGE_ACTIONS),
                    "image_kind": closed_label(kind, ("png", "jpeg", "dicom")),
                }
                self.image_deidentification.inc(count, tags=tags)

    def verdict(self, decision: str, reasons: Iterable[tuple[str, str]]) -> None:
        """One request's verdict: each (code, decision) reason, or one pass."""
        counted = False
        for code, reason_decision in reasons:
            tags = {"decision": reason_decision, "reason": closed_label(code, REASON_CODES)}
            self.verdicts.inc(tags=tags)
            counted = True
        if not counted:
            self.verdicts.inc(tags={"decision": decision, "reason": "none"})
