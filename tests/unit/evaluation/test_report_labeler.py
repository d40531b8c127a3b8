"""The rule-based labeler on hand-written sentences, and clinical F1 on known cases."""

from __future__ import annotations

import pytest

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import FINDINGS, SyntheticChestXRays
from securemed.evaluation.report_labeler import Mention, clinical_f1, label_report

P, N, U = Mention.POSITIVE, Mention.NEGATIVE, Mention.UNCERTAIN


def _said(text: str) -> dict[str, Mention]:
    return dict(zip(FINDINGS, label_report(text), strict=True))


@pytest.mark.parametrize(
    ("sentence", "finding", "expected"),
    [
        ("There is a small left pleural effusion.", "pleural_effusion", P),
        ("No pleural effusion.", "pleural_effusion", N),
        ("Without evidence of pneumothorax.", "pneumothorax", N),
        ("A small right pneumothorax cannot be excluded.", "pneumothorax", U),
        ("Possible left lower lobe consolidation.", "consolidation", U),
        ("Moderate cardiomegaly.", "cardiomegaly", P),
        ("The heart is normal in size.", "cardiomegaly", N),
        ("A 2.5 cm nodule in the right upper lung.", "nodule", P),
        ("The lungs are clear.", "consolidation", N),
        ("No effusion. Large left pneumothorax.", "pneumothorax", P),
    ],
)
def test_sentences(sentence: str, finding: str, expected: Mention) -> None:
    assert _said(sentence)[finding] is expected


def test_an_affirmed_mention_beats_a_hedged_or_negated_one() -> None:
    said = _said("Possible effusion on the left. There is a right pleural effusion.")
    assert said["pleural_effusion"] is P


def test_the_labeler_reads_the_synthetic_reports_back() -> None:
    writer = ReportWriter(SyntheticChestXRays(seed=5))
    reports = writer.reports(range(500))
    scores = clinical_f1([r.text for r in reports], [r.labels for r in reports])
    assert scores.macro_f1 == pytest.approx(1.0)


def test_clinical_f1_on_a_hand_computed_case() -> None:
    generated = ["Moderate cardiomegaly.", "No acute process.", "Mild cardiomegaly."]
    truth = [
        (True, False, False, False, False),
        (True, False, False, False, False),
        (False, False, False, False, False),
    ]
    scores = clinical_f1(generated, truth)
    # cardiomegaly: tp 1, fn 1, fp 1 -> F1 = 2 / (2 + 1 + 1) = 0.5; the rest: nothing, 1.0
    assert scores.per_finding_f1["cardiomegaly"] == pytest.approx(0.5)
    assert scores.macro_f1 == pytest.approx((0.5 + 4) / 5)
