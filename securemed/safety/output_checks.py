"""Checks on the generated report: PHI, treatment orders, confidence, and how unusual it is.

Structure (:mod:`securemed.safety.sections`) and agreement between sections
(:mod:`securemed.safety.consistency`) have their own modules; these are the rest. Each is a
small function with a stable code returning an :class:`~securemed.safety.verdict.Issue` or
``None``; graded checks (confidence, anomaly) return the code of the grade reached and the
policy decides what each code does. Messages name what was found (entity types, categories,
numbers) and never quote the report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from securemed.safety.codes import Code
from securemed.safety.policy import GenerationConfidence, SafetyPolicy
from securemed.safety.profile import ReportProfile
from securemed.safety.verdict import Issue

logger = logging.getLogger(__name__)

PhiFinder = Callable[[str], Sequence[str]]
_ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")


def phi_left(report: str, phi_finder: PhiFinder) -> Issue | None:
    """PHI the anonymizer's detector still finds in the report; fails closed if it errors."""
    try:
        found = list(phi_finder(report))
    except Exception as error:  # any failure means the report was not checked
        logger.warning("phi finder failed", extra={"error_type": type(error).__name__})
        return Issue(
            Code.PHI_CHECK_FAILED,
            "the PHI detector failed on the report, so it cannot be released; "
            "check the detector's health and resubmit",
        )
    if not found:
        return None
    # only well-formed type names reach the message, so a detector that returns the matched
    # values by mistake cannot leak them through it
    types = sorted({t if _ENTITY_TYPE.fullmatch(str(t)) else "UNKNOWN" for t in found})
    return Issue(
        Code.PHI_IN_REPORT,
        f"the report contains PHI of type(s) {', '.join(types)}; it is not released; "
        "check the anonymizer on this request's indication and regenerate",
    )


_DOSE_UNIT = (
    r"(?:mg|mcg|µg|μg|ug|g|grams?|milligrams?|micrograms?|ml|millilit(?:er|re)s?|l|units?|iu"
    r"|meq|mmol|puffs?|tablets?|tabs?|capsules?|caps?|drops?)"
)
_DOSAGE = (
    re.compile(rf"\b\d+(?:[.,]\d+)?\s*{_DOSE_UNIT}(?:\s*/\s*(?:kg|h|hr|hour|min|day|d))?\b", re.I),
    re.compile(r"\b(?:mg|mcg|ml|iu|units)\s*/\s*(?:kg|h|hr|hour|min|day|d)\b", re.I),
    re.compile(r"\b(?:mg|mcg)\b", re.I),
    re.compile(
        r"\b(?:bid|tid|qid|qds|tds|prn|q\d+h|stat dose|iv push|po daily|once daily)\b", re.I
    ),
)
_TREATMENT = (
    r"(?:antibiotics?|antimicrobials?|antivirals?|antifungals?|diuretics?|diuresis|furosemide"
    r"|lasix|bumetanide|heparin|enoxaparin|warfarin|apixaban|rivaroxaban|anticoagula\w*"
    r"|thromboly\w*|alteplase|steroids?|corticosteroids?|prednis\w*|methylprednisolone"
    r"|dexamethasone|hydrocortisone|insulin|morphine|opioids?|analgesi\w*|ceftriaxone"
    r"|azithromycin|vancomycin|piperacillin|tazobactam|amoxicillin|augmentin|levofloxacin"
    r"|doxycycline|oseltamivir|nebuli[sz]\w*|bronchodilators?|salbutamol|albuterol"
    r"|supplemental oxygen|oxygen therapy|iv fluids|intravenous fluids|transfusion"
    r"|chest (?:tube|drain)|thoracostomy|pleurodesis|intubat\w*|chemotherapy|radiotherapy)"
)
#: generic words that are an order only right after the verb ("start treatment"), not in
#: "recommend follow-up imaging after treatment"
_GENERIC_TREATMENT = r"(?:medications?|drugs?|doses?|dosage|therapy|treatment)"
_ORDER_VERB = (
    r"(?:start|starting|begin|initiate|initiating|commence|give|giving|continue|resume|stop"
    r"|discontinue|hold|increase|decrease|titrate|wean|treat|treating|switch|add|insert"
    r"|place|recommend|recommended|suggest|advise|advised|consider|requires?|needs?"
    r"|should (?:be given|receive|be started|be treated)|prescribe)"
)
_ORDERS = (
    re.compile(r"\b(?:administer|prescrib|dispens|infus|inject|titrat)\w*", re.I),
    re.compile(rf"\b{_ORDER_VERB}\b(?:\s+\w+){{0,4}}?\s+{_TREATMENT}\b", re.I),
    re.compile(rf"\b{_ORDER_VERB}\s+(?:\w+\s+)?{_GENERIC_TREATMENT}\b", re.I),
    re.compile(
        rf"\b(?:{_TREATMENT}|{_GENERIC_TREATMENT})(?:\s+\w+)?\s+(?:is|are)\s+"
        r"(?:recommended|advised|indicated|required)\b",
        re.I,
    ),
)


def treatment_order(text: str) -> Issue | None:
    """Orders and dosages: a report describes images and may advise imaging, never treatment."""
    dosage = any(p.search(text) for p in _DOSAGE)
    order = any(p.search(text) for p in _ORDERS)
    if not (dosage or order):
        return None
    found = " and ".join(
        kind for kind, hit in (("a treatment order", order), ("a drug dosage", dosage)) if hit
    )
    return Issue(
        Code.TREATMENT_ORDER,
        f"the report contains {found}; treatment is the treating clinician's decision, so "
        "remove it or have a radiologist review the report",
    )


def generation_confidence(confidence: GenerationConfidence, policy: SafetyPolicy) -> Issue | None:
    """Below the block thresholds on either score: very low; below the flag ones: low."""
    mean, low = confidence.mean_token_logprob, confidence.min_token_prob
    below_block = (
        mean < policy.mean_token_logprob.block_below or low < policy.min_token_prob.block_below
    )
    below_flag = (
        mean < policy.mean_token_logprob.flag_below or low < policy.min_token_prob.flag_below
    )
    if not (below_block or below_flag):
        return None
    scores = f"mean token log-probability {mean:.3f}, least likely token {low:.4f}"
    if below_block:
        return Issue(
            Code.CONFIDENCE_VERY_LOW,
            f"the model was far from sure of this report ({scores}); it is not released; "
            "check the image quality and the model",
        )
    return Issue(
        Code.CONFIDENCE_LOW,
        f"the model was unsure of parts of this report ({scores}); a radiologist should "
        "check it against the image",
    )


def anomaly(body: str, profile: ReportProfile, policy: SafetyPolicy) -> Issue | None:
    """A report worded unlike the training reports: beyond their held-out score quantile."""
    score = profile.score(body)
    flag_above = profile.flag_threshold(policy.anomaly_flag_quantile)
    block_above = max(profile.block_threshold(policy.anomaly_block_margin), flag_above)
    facts = (
        f"anomaly score {score.nll:.2f} against flag {flag_above:.2f} / block {block_above:.2f}, "
        f"{score.oov_rate:.0%} unknown words"
    )
    if score.nll > block_above or score.oov_rate > policy.max_oov_rate:
        return Issue(
            Code.REPORT_OUT_OF_DISTRIBUTION,
            f"the report reads nothing like the reports the model was trained on ({facts}); "
            "it is not released; check the model and the request",
        )
    if score.nll > flag_above:
        return Issue(
            Code.REPORT_ATYPICAL,
            f"the report is worded unlike the training reports ({facts}); a radiologist "
            "should review it",
        )
    return None
