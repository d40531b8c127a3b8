"""Synthetic reports say exactly what is drawn on their film, with varied wording."""

from __future__ import annotations

import re

import numpy as np
import pytest

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import FINDINGS, SyntheticChestXRays

# what a report must say for each finding when present (hedged or not)
MENTIONS = {
    "cardiomegaly": r"cardiomegaly|enlarge",
    "pleural_effusion": r"effusion",
    "consolidation": r"consolidation|airspace opacity",
    "pneumothorax": r"pneumothorax",
    "nodule": r"nodule",
}
NEGATIONS = {
    "cardiomegaly": r"normal in size|within normal limits|silhouette is normal|normal heart size",
    "pleural_effusion": r"no (pleural )?effusion|there is no pleural effusion",
    "consolidation": r"lungs are clear|no focal (consolidation|airspace opacity)",
    "pneumothorax": r"no pneumothorax|there is no pneumothorax",
}


@pytest.fixture(scope="module")
def writer() -> ReportWriter:
    return ReportWriter(SyntheticChestXRays(seed=3))


def test_every_report_describes_exactly_the_findings_on_its_film(writer) -> None:
    for index in range(400):
        case = writer.generator.case(index)
        report = writer.report(index)
        assert report.labels == case.present
        impression = report.impression.lower()
        findings = report.findings.lower()
        for name, present in zip(FINDINGS, case.present, strict=True):
            if present:
                assert re.search(MENTIONS[name], impression), (index, name, report.text)
            elif name in NEGATIONS:
                assert re.search(NEGATIONS[name], findings), (index, name, report.text)
                assert not re.search(MENTIONS[name], impression), (index, name, report.text)
        if not any(case.present):
            assert re.search(r"no acute|normal chest", impression)


def test_laterality_follows_the_drawing(writer) -> None:
    for index in range(400):
        case = writer.generator.case(index)
        if case.present[FINDINGS.index("pneumothorax")]:
            side = {-1: "right", 1: "left"}[case.findings.pneumothorax_side]
            assert f"{side} pneumothorax" in writer.report(index).impression.lower()


def test_reports_are_deterministic_and_varied(writer) -> None:
    assert writer.report(7) == writer.report(7)
    texts = {writer.report(i).text for i in range(300)}
    normal = [writer.report(i) for i in range(300) if not any(writer.report(i).labels)]
    assert len(texts) > 150
    assert len({r.text for r in normal}) > 5  # several ways to say a study is normal


def test_borderline_findings_are_hedged() -> None:
    writer = ReportWriter(SyntheticChestXRays(seed=0, difficulty=1.0))
    hedged = [writer.report(i).text for i in range(600)]
    assert any("cannot be excluded" in t for t in hedged)
    assert any("Possible" in t for t in hedged)


def test_report_wording_does_not_change_the_image(writer) -> None:
    before = writer.generator.images(np.arange(3))
    writer.reports(range(3))
    assert np.array_equal(writer.generator.images(np.arange(3)), before)
