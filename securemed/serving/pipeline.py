"""One report request, stage by stage: the order and the rules, with the stages injected.

input check → anonymize → generate → validate → seal. A request the input check blocks is
never anonymized; a report the validator blocks is never sealed (:class:`ReportBlockedError` carries
the verdict instead). The Serve ingress passes stages that call deployment handles; tests pass
the same core objects in-process. Each stage's milliseconds land in ``timings``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from securemed.errors import SecureMedError
from securemed.safety import Verdict
from securemed.serving.anonymization import AnonymizedRequest, served_report
from securemed.serving.model_runner import DraftReport

T = TypeVar("T")


class ReportBlockedError(SecureMedError):
    """The safety validator blocked the request (``input_blocked``) or its report
    (``report_blocked``); nothing was sealed."""

    def __init__(self, code: str, verdict: Verdict) -> None:
        super().__init__(f"the safety validator blocked this {code.split('_')[0]}")
        self.code = code
        self.verdict = verdict


class ReportStages(Protocol):
    """What a request needs done, whoever does it (deployment handles or local objects)."""

    async def check_input(self, indication: str | None, image_bytes: int) -> Verdict: ...

    async def anonymize(self, image: bytes, indication: str | None) -> AnonymizedRequest: ...

    async def write(self, pixels: np.ndarray) -> DraftReport: ...

    async def check_output(self, report: str, draft: DraftReport) -> Verdict: ...

    async def seal(self, report: str, verdict: Verdict, model_version: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ProducedReport:
    envelope: dict[str, Any]
    verdict: Verdict


class Stopwatch:
    """Awaits one stage and records its milliseconds under the stage's name."""

    def __init__(self, timings: dict[str, float]) -> None:
        self._timings = timings

    async def __call__(self, stage: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await work
        finally:
            self._timings[stage] = (time.perf_counter() - started) * 1000


async def produce_report(
    stages: ReportStages,
    image: bytes,
    indication: str | None,
    timings: dict[str, float],
) -> ProducedReport:
    """Run one request through every stage; raises :class:`ReportBlockedError` on a block."""
    timed = Stopwatch(timings)
    checked = await timed("input_check", stages.check_input(indication, len(image)))
    if checked.decision == "block":
        raise ReportBlockedError("input_blocked", checked)
    anonymized = await timed("anonymize", stages.anonymize(image, indication))
    draft = await timed("generate", stages.write(anonymized.pixels))
    report = served_report(anonymized.indication, draft.text)
    verdict = Verdict.combine(checked, await timed("validate", stages.check_output(report, draft)))
    sealed_text = verdict.apply(report)
    if sealed_text is None:
        raise ReportBlockedError("report_blocked", verdict)
    envelope = await timed("seal", stages.seal(sealed_text, verdict, draft.model_version))
    return ProducedReport(envelope, verdict)
