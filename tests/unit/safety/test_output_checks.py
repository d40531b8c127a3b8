"""Report checks: PHI, treatment orders and generation confidence."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.safety import Code, GenerationConfidence, SafetyPolicy
from securemed.safety.output_checks import generation_confidence, phi_left, treatment_order

POLICY = SafetyPolicy()
REPORT = "FINDINGS: Normal heart size. No effusion. IMPRESSION: Normal chest radiograph."


def test_phi_found_blocks_with_entity_types_and_never_the_values() -> None:
    def finder(text: str) -> Sequence[str]:
        return ["PERSON", "DATE_TIME", "PERSON"]

    issue = phi_left(REPORT + " John Smith", finder)
    assert issue is not None and issue.code == Code.PHI_IN_REPORT
    assert "DATE_TIME, PERSON" in issue.message and "John" not in issue.message


def test_a_finder_that_returns_values_cannot_leak_them_through_the_message() -> None:
    issue = phi_left(REPORT, lambda text: ["John Smith"])
    assert issue is not None and "John" not in issue.message and "UNKNOWN" in issue.message


def test_no_phi_passes_and_a_failing_finder_fails_closed() -> None:
    assert phi_left(REPORT, lambda text: []) is None

    def broken(text: str) -> Sequence[str]:
        raise RuntimeError("model not loaded")

    issue = phi_left(REPORT, broken)
    assert issue is not None and issue.code == Code.PHI_CHECK_FAILED


@pytest.mark.parametrize(
    "text",
    [
        "IMPRESSION: Right lower lobe pneumonia. Start antibiotics.",
        "IMPRESSION: Pulmonary edema. Give 40 mg furosemide IV.",
        "IMPRESSION: Effusion. Administer diuretics.",
        "IMPRESSION: Consolidation. Recommend antibiotics.",
        "IMPRESSION: Pneumonia. Prescribe amoxicillin.",
        "IMPRESSION: Large pneumothorax; recommend chest tube placement.",
        "IMPRESSION: Edema. Infuse at 100 mL/h.",
        "IMPRESSION: PE suspected. Heparin 5000 units.",
        "IMPRESSION: Pneumonia. Antibiotic therapy is recommended.",
        "IMPRESSION: Infection. Consider starting treatment.",
    ],
)
def test_treatment_orders_and_dosages_are_found(text: str) -> None:
    issue = treatment_order(text)
    assert issue is not None and issue.code == Code.TREATMENT_ORDER


@pytest.mark.parametrize(
    "text",
    [
        "IMPRESSION: Left upper lung nodule; recommend follow-up CT.",
        "IMPRESSION: Right lung nodule; CT is advised.",
        "IMPRESSION: Possible pneumonia; recommend follow-up radiograph after treatment.",
        "FINDINGS: Right chest tube in place. A 2.4 cm nodule. IMPRESSION: Stable.",
        "IMPRESSION: Consider comparison with prior studies and clinical correlation.",
        "IMPRESSION: Suggest ultrasound to characterize the effusion.",
    ],
)
def test_imaging_recommendations_and_device_descriptions_pass(text: str) -> None:
    assert treatment_order(text) is None


def test_training_reports_hold_no_treatment_orders() -> None:
    reports = ReportWriter(SyntheticChestXRays(seed=5)).reports(range(300))
    assert all(treatment_order(r.text) is None for r in reports)


@pytest.mark.parametrize(
    ("mean", "lowest", "code"),
    [
        (-0.2, 0.3, None),
        (-1.0, 0.02, None),  # on the flag thresholds: pass
        (-1.5, 0.3, Code.CONFIDENCE_LOW),
        (-0.2, 0.01, Code.CONFIDENCE_LOW),
        (-3.0, 0.3, Code.CONFIDENCE_VERY_LOW),
        (-0.2, 0.0005, Code.CONFIDENCE_VERY_LOW),
    ],
)
def test_confidence_passes_flags_or_blocks_by_threshold(
    mean: float, lowest: float, code: Code | None
) -> None:
    issue = generation_confidence(GenerationConfidence(mean, lowest), POLICY)
    assert (issue.code if issue else None) == code
