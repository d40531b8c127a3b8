"""Split a generated report into its INDICATION, FINDINGS and IMPRESSION sections.

The report model writes ``FINDINGS: ... IMPRESSION: ...`` and the service may put an
``INDICATION: ...`` in front. Headers are the capitalised words both write (and every training
report has), so "Clinical findings: crackles" in a clinician's indication is not a header; the
structure is strict: each header at most once, in that order, nothing before the first.
Structural problems come back as issues rather than exceptions, because a malformed report is
an expected outcome of generation, not a bug.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from securemed.safety.codes import Code
from securemed.safety.verdict import Issue

SECTION_ORDER = ("INDICATION", "FINDINGS", "IMPRESSION")
REQUIRED = ("FINDINGS", "IMPRESSION")
HEADER = re.compile(r"\b(INDICATION|FINDINGS|IMPRESSION)\s*:")


@dataclass(frozen=True)
class ReportSections:
    """The text of each section (``None`` if absent) and what is wrong with the structure."""

    indication: str | None
    findings: str | None
    impression: str | None
    issues: tuple[Issue, ...]

    @property
    def well_formed(self) -> bool:
        return not self.issues

    @property
    def body(self) -> str:
        """FINDINGS and IMPRESSION as the model writes them, without the service's INDICATION."""
        return f"FINDINGS: {self.findings or ''} IMPRESSION: {self.impression or ''}"


def split_sections(report: str) -> ReportSections:
    """Each section's text, and an issue for every missing, empty or misplaced section."""
    headers = list(HEADER.finditer(report))
    names = [m.group(1) for m in headers]
    texts: dict[str, str] = {}
    issues: list[Issue] = []
    for k, match in enumerate(headers):
        end = headers[k + 1].start() if k + 1 < len(headers) else len(report)
        texts.setdefault(names[k], report[match.end() : end].strip())

    duplicated = sorted({name for name in names if names.count(name) > 1})
    in_order = [name for name in SECTION_ORDER if name in names]
    first_seen = list(dict.fromkeys(names))
    leading = report[: headers[0].start()] if headers else ""
    if duplicated:
        issues.append(
            Issue(Code.SECTION_MALFORMED, f"the report repeats section(s) {', '.join(duplicated)}")
        )
    if first_seen != in_order:
        issues.append(
            Issue(
                Code.SECTION_MALFORMED,
                "the report's sections are out of order (expected INDICATION, FINDINGS, "
                "IMPRESSION)",
            )
        )
    if leading.strip():
        issues.append(Issue(Code.SECTION_MALFORMED, "the report has text before its first section"))
    for name in REQUIRED:
        if name not in texts:
            issues.append(Issue(Code.SECTION_MISSING, f"the report has no {name} section"))
        elif not re.search(r"[^\W\d_]", texts[name]):
            issues.append(Issue(Code.SECTION_EMPTY, f"the report's {name} section is empty"))
    return ReportSections(
        indication=texts.get("INDICATION"),
        findings=texts.get("FINDINGS"),
        impression=texts.get("IMPRESSION"),
        issues=tuple(issues),
    )
