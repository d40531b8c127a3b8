"""What the safety checks concluded about one request, and what that means for its report.

A :class:`Verdict` is a set of :class:`Reason` s; its decision is the worst of theirs, so the
input and output stages combine by concatenation and no stage can soften another's block.
``apply`` is the one place that turns a decision into what gets sealed: the report, the report
behind a disclaimer, or nothing. Messages name what was found and what to do, never the text
that was checked (it may hold PHI); the reason codes are stable (:mod:`securemed.safety.codes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from securemed.safety.codes import Action

Decision = Literal["pass", "flag", "block"]
Stage = Literal["input", "output"]

_SEVERITY: dict[str, int] = {"pass": 0, "flag": 1, "block": 2}

DISCLAIMER = (
    "CAUTION: automated safety checks flagged this machine-generated report. "
    "It must be reviewed by a radiologist before any clinical use."
)


@dataclass(frozen=True)
class Issue:
    """What one check found, before the policy decides whether it flags or blocks."""

    code: str
    message: str


@dataclass(frozen=True)
class Reason:
    """One check's objection: a stable code, the stage, what it does, and a PHI-free message."""

    code: str
    stage: Stage
    decision: Action
    message: str

    def __post_init__(self) -> None:
        if self.stage not in ("input", "output"):
            raise ValueError(f"stage must be 'input' or 'output', got {self.stage!r}")
        if self.decision not in ("flag", "block"):
            raise ValueError(f"a reason flags or blocks, got {self.decision!r}")

    def to_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "stage": self.stage,
            "decision": self.decision,
            "message": self.message,
        }


@dataclass(frozen=True)
class Verdict:
    """The reasons raised about one request; no reasons means it passes.

    Example:
        >>> v = Verdict.combine(Verdict(), Verdict((Reason("x", "output", "flag", "..."),)))
        >>> v.decision
        'flag'
    """

    reasons: tuple[Reason, ...] = ()

    @classmethod
    def combine(cls, *verdicts: Verdict) -> Verdict:
        """One verdict holding every reason of ``verdicts``, in order: worst wins."""
        return cls(tuple(reason for verdict in verdicts for reason in verdict.reasons))

    @property
    def decision(self) -> Decision:
        worst: Decision = "pass"
        for reason in self.reasons:
            if _SEVERITY[reason.decision] > _SEVERITY[worst]:
                worst = reason.decision
        return worst

    @property
    def codes(self) -> tuple[str, ...]:
        """The reason codes, each once, in the order they were raised."""
        return tuple(dict.fromkeys(reason.code for reason in self.reasons))

    def disclaimer(self) -> str:
        """The notice a flagged report is sealed behind: the caution and the reason codes."""
        return f"{DISCLAIMER} Reason codes: {', '.join(self.codes)}."

    def apply(self, report: str) -> str | None:
        """What may be sealed to the clinician: the report, the report behind the
        disclaimer, or ``None`` when blocked (a blocked report is never sealed)."""
        decision = self.decision
        if decision == "block":
            return None
        if decision == "flag":
            return f"{self.disclaimer()}\n\n{report}"
        return report

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the HTTP envelope."""
        return {
            "decision": self.decision,
            "reasons": [reason.to_dict() for reason in self.reasons],
        }
