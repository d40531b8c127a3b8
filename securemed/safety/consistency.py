"""Do a report's FINDINGS and IMPRESSION agree, about what is there and on which side?

The impression is what a busy clinician reads; a model that writes an effusion in the findings
and "No acute cardiopulmonary process" in the impression has contradicted itself, and one of
the two is wrong. Both checks reuse the CheXpert-style labeler the evaluation uses
(:func:`~securemed.evaluation.report_labeler.label_report`), on each section separately, so
"what the report asserts" means the same thing here as in clinical F1. Laterality is read per
clause: the side words of a clause belong to the findings the labeler asserts in it.

Deliberately not checked: severity words (a "small" effusion in the findings and a "moderate"
one in the impression) and findings the labeler does not know.
"""

from __future__ import annotations

import re

from securemed.data.synthetic import FINDINGS
from securemed.evaluation.report_labeler import Mention, label_report
from securemed.safety.codes import Code
from securemed.safety.sections import ReportSections
from securemed.safety.verdict import Issue

#: findings that occur on one side at a time unless called bilateral
UNILATERAL = frozenset({"pneumothorax"})
_SIDES = {"left": "left", "right": "right", "bilateral": "bilateral", "both": "bilateral"}
_SIDE = re.compile(r"\b(left|right|bilateral|both)\b")
_SENTENCE = re.compile(r"(?<=[.;:!?])\s+|\n+")
_BARE_SIDE_WORDS = 3
_CLAUSE = re.compile(r",|\band\b|\bwith\b|\bwhile\b|\bbut\b|\bwhereas\b")


def _asserted(mention: Mention) -> bool:
    return mention is not Mention.NEGATIVE


def findings_impression_mismatch(sections: ReportSections) -> Issue | None:
    """A finding asserted (positive or hedged) in one section and negative in the other."""
    if sections.findings is None or sections.impression is None:
        return None
    in_findings = label_report(sections.findings)
    in_impression = label_report(sections.impression)
    only_findings = [
        name
        for name, f, i in zip(FINDINGS, in_findings, in_impression, strict=True)
        if _asserted(f) and not _asserted(i)
    ]
    only_impression = [
        name
        for name, f, i in zip(FINDINGS, in_findings, in_impression, strict=True)
        if _asserted(i) and not _asserted(f)
    ]
    if not only_findings and not only_impression:
        return None
    parts = []
    if only_findings:
        parts.append(f"FINDINGS asserts {', '.join(only_findings)} but IMPRESSION does not")
    if only_impression:
        parts.append(f"IMPRESSION asserts {', '.join(only_impression)} but FINDINGS does not")
    return Issue(
        Code.FINDINGS_IMPRESSION_MISMATCH,
        f"{'; '.join(parts)}; a radiologist must reconcile the two sections",
    )


def sides_by_finding(text: str) -> dict[str, set[str]]:
    """Per finding asserted in ``text``, the sides named in the clauses asserting it."""
    sides: dict[str, set[str]] = {}
    for sentence in _SENTENCE.split(text.lower()):
        carried: set[str] = set()
        for clause in _CLAUSE.split(sentence):
            named = carried | {_SIDES[word] for word in _SIDE.findall(clause)}
            carried = set()
            if not named:
                continue
            asserted = [
                name
                for name, mention in zip(FINDINGS, label_report(clause), strict=True)
                if _asserted(mention)
            ]
            for name in asserted:
                sides.setdefault(name, set()).update(named)
            # "small left and right effusions": a bare side before "and" belongs to the next
            # clause's finding; a longer clause without a finding ("left lung clear") does not
            if not asserted and len(clause.split()) <= _BARE_SIDE_WORDS:
                carried = named
    return sides


def _side_of(named: set[str]) -> str:
    """One side for a set of side words: "left and right" is bilateral."""
    if "bilateral" in named or {"left", "right"} <= named:
        return "bilateral"
    return next(iter(named))


def laterality_mismatch(sections: ReportSections) -> Issue | None:
    """A finding on different sides in the two sections, or a one-sided finding on both."""
    if sections.findings is None or sections.impression is None:
        return None
    in_findings = sides_by_finding(sections.findings)
    in_impression = sides_by_finding(sections.impression)
    problems = []
    for name in FINDINGS:
        f, i = in_findings.get(name, set()), in_impression.get(name, set())
        if name in UNILATERAL and any(
            {"left", "right"} <= named and "bilateral" not in named for named in (f, i)
        ):
            problems.append(f"{name} is placed both left and right")
        elif f and i and _side_of(f) != _side_of(i):
            problems.append(f"{name} is {_side_of(f)} in FINDINGS but {_side_of(i)} in IMPRESSION")
    if not problems:
        return None
    return Issue(
        Code.LATERALITY_MISMATCH,
        f"{'; '.join(problems)}; a radiologist must confirm the side",
    )
