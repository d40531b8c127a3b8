"""Section parsing: required sections present, non-empty, in order."""

from __future__ import annotations

from securemed.safety import Code
from securemed.safety.sections import split_sections


def codes(report: str) -> list[str]:
    return [issue.code for issue in split_sections(report).issues]


def test_a_well_formed_report_with_indication_splits_into_its_sections() -> None:
    sections = split_sections(
        "INDICATION: SOB. FINDINGS: No pneumothorax. IMPRESSION: Normal chest radiograph."
    )
    assert sections.well_formed
    assert sections.indication == "SOB."
    assert sections.findings == "No pneumothorax."
    assert sections.impression == "Normal chest radiograph."
    assert "INDICATION" not in sections.body


def test_missing_or_empty_sections_are_issues() -> None:
    assert codes("FINDINGS: No effusion.") == [Code.SECTION_MISSING]
    assert codes("No effusion. Normal.") == [Code.SECTION_MISSING, Code.SECTION_MISSING]
    assert codes("FINDINGS: No effusion. IMPRESSION: .") == [Code.SECTION_EMPTY]


def test_repeated_misordered_or_preceded_sections_are_malformed() -> None:
    assert Code.SECTION_MALFORMED in codes("IMPRESSION: Normal. FINDINGS: No effusion.")
    assert Code.SECTION_MALFORMED in codes("FINDINGS: a. IMPRESSION: b. IMPRESSION: c.")
    assert Code.SECTION_MALFORMED in codes("Sure! FINDINGS: No effusion. IMPRESSION: Normal.")
    assert codes("FINDINGS: No effusion. IMPRESSION: Normal.") == []


def test_only_capitalised_headers_start_sections() -> None:
    sections = split_sections(
        "INDICATION: Clinical findings: crackles. FINDINGS: No effusion. IMPRESSION: Normal."
    )
    assert sections.well_formed and sections.indication == "Clinical findings: crackles."
    assert codes("Findings: No effusion. Impression: Normal.") == [
        Code.SECTION_MISSING,
        Code.SECTION_MISSING,
    ]
