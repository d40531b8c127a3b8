"""The SafetyValidator: every check of the report service's IDS stage, in the order they run.

The serving layer calls :meth:`SafetyValidator.check_input` before generation and
:meth:`SafetyValidator.check_output` after it, combines the two verdicts and lets the result
decide what is sealed (:meth:`~securemed.safety.verdict.Verdict.apply`). The validator holds no
state between requests and does no I/O; Ray/Serve only hosts it.

It does not anonymize (the PHI detector is injected as ``phi_finder`` so this package does not
depend on the anonymizer) and does not decode images (only their size is checked here).
"""

from __future__ import annotations

import logging

from securemed.safety import consistency, input_checks, output_checks
from securemed.safety.input_checks import Indication
from securemed.safety.output_checks import PhiFinder
from securemed.safety.policy import GenerationConfidence, SafetyPolicy
from securemed.safety.profile import ReportProfile
from securemed.safety.sections import split_sections
from securemed.safety.verdict import Issue, Reason, Stage, Verdict

logger = logging.getLogger(__name__)


class SafetyValidator:
    """Checks a request's input and its generated report against one :class:`SafetyPolicy`.

    Args:
        policy: thresholds and, per reason code, whether it flags or blocks.
        profile: the training reports' anomaly model; without one the anomaly check is skipped.
        phi_finder: returns the entity types of the PHI found in a text (the anonymizer's
            detector); without one the report's PHI check is skipped.

    Example:
        >>> validator = SafetyValidator(policy=SafetyPolicy(), profile=None, phi_finder=None)
        >>> verdict = Verdict.combine(
        ...     validator.check_input("SOB, ? PTX after line placement", image_bytes=120_000),
        ...     validator.check_output(
        ...         "FINDINGS: There is no pneumothorax. IMPRESSION: No pneumothorax.",
        ...         GenerationConfidence(mean_token_logprob=-0.2, min_token_prob=0.3),
        ...     ),
        ... )
        >>> verdict.decision
        'pass'
    """

    def __init__(
        self,
        *,
        policy: SafetyPolicy | None = None,
        profile: ReportProfile | None = None,
        phi_finder: PhiFinder | None = None,
    ) -> None:
        self.policy = policy if policy is not None else SafetyPolicy()
        self.profile = profile
        self.phi_finder = phi_finder
        if profile is None:
            logger.warning("safety validator without a report profile: anomaly check off")
        if phi_finder is None:
            logger.warning("safety validator without a PHI finder: report PHI check off")

    def check_input(self, indication: str | None, *, image_bytes: int) -> Verdict:
        """The request before generation: the image's size and the indication's content."""
        if isinstance(image_bytes, bool) or not isinstance(image_bytes, int):
            raise TypeError(f"image_bytes must be an int (the upload's size), got {image_bytes!r}")
        issues = [input_checks.image_size(image_bytes, self.policy)]
        if indication is not None and indication.strip():
            folded = Indication.of(indication)
            issues.extend(check(folded, self.policy) for check in input_checks.INDICATION_CHECKS)
        return self._verdict("input", issues)

    def check_output(self, report: str, confidence: GenerationConfidence) -> Verdict:
        """The generated report: structure, PHI, consistency, orders, confidence, anomaly."""
        sections = split_sections(report)
        issues: list[Issue | None] = list(sections.issues)
        if self.phi_finder is not None:
            issues.append(output_checks.phi_left(report, self.phi_finder))
        if sections.well_formed:
            issues.append(consistency.findings_impression_mismatch(sections))
            issues.append(consistency.laterality_mismatch(sections))
        # the indication is the clinician's text (it may name their patient's medication):
        # only what the model wrote is held to the report's rules
        issues.append(output_checks.treatment_order(sections.body))
        issues.append(output_checks.generation_confidence(confidence, self.policy))
        if self.profile is not None:
            issues.append(output_checks.anomaly(sections.body, self.profile, self.policy))
        return self._verdict("output", issues)

    def _verdict(self, stage: Stage, issues: list[Issue | None]) -> Verdict:
        reasons = tuple(
            Reason(issue.code, stage, self.policy.action(issue.code), issue.message)
            for issue in issues
            if issue is not None
        )
        if reasons:
            logger.info(
                "safety checks raised reasons",
                extra={"stage": stage, "codes": [r.code for r in reasons]},
            )
        return Verdict(reasons)
