"""FINDINGS and IMPRESSION must agree on what is there and on which side."""

from __future__ import annotations

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.safety.consistency import (
    findings_impression_mismatch,
    laterality_mismatch,
    sides_by_finding,
)
from securemed.safety.sections import split_sections


def mismatch(report: str) -> str | None:
    issue = findings_impression_mismatch(split_sections(report))
    return None if issue is None else issue.message


def sides(report: str) -> str | None:
    issue = laterality_mismatch(split_sections(report))
    return None if issue is None else issue.message


def test_training_reports_are_consistent() -> None:
    reports = ReportWriter(SyntheticChestXRays(seed=3)).reports(range(400))
    assert all(mismatch(r.text) is None and sides(r.text) is None for r in reports)


def test_an_effusion_under_a_normal_impression_is_a_mismatch() -> None:
    message = mismatch(
        "FINDINGS: There is a small left pleural effusion. No pneumothorax. "
        "IMPRESSION: No acute cardiopulmonary process."
    )
    assert message is not None and "pleural_effusion" in message


def test_an_impression_finding_absent_from_the_findings_is_a_mismatch() -> None:
    message = mismatch("FINDINGS: The lungs are clear. IMPRESSION: Right pneumothorax.")
    assert message is not None and "IMPRESSION asserts pneumothorax" in message


def test_hedged_and_affirmed_mentions_agree() -> None:
    assert (
        mismatch(
            "FINDINGS: Blunting of the right costophrenic angle; a small right pleural effusion "
            "cannot be excluded. IMPRESSION: Small right pleural effusion."
        )
        is None
    )


def test_a_finding_on_opposite_sides_is_a_laterality_mismatch() -> None:
    message = sides(
        "FINDINGS: There is a small right pneumothorax. IMPRESSION: Small left pneumothorax."
    )
    assert message is not None and "right in FINDINGS but left in IMPRESSION" in message


def test_a_one_sided_finding_placed_left_and_right_is_a_laterality_mismatch() -> None:
    message = sides(
        "FINDINGS: Small left pneumothorax. There is a right pneumothorax. "
        "IMPRESSION: Pneumothorax."
    )
    assert message is not None and "both left and right" in message


def test_sides_belong_to_the_clause_of_their_finding() -> None:
    found = sides_by_finding("Small right pleural effusion and left pneumothorax. No left nodule.")
    assert found == {"pleural_effusion": {"right"}, "pneumothorax": {"left"}}
    assert (
        sides(
            "FINDINGS: Small left and right pleural effusions. "
            "IMPRESSION: Small bilateral pleural effusions."
        )
        is None
    )
