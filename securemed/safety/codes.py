"""The stable reason codes of the safety checks, and what each does by default.

Codes are part of the service's contract: clients branch on them, dashboards count them, the
flagged-report disclaimer lists them. Renaming one is a breaking change; add a new one instead.
Whether a code flags or blocks is policy (:class:`~securemed.safety.policy.SafetyPolicy`), so
the defaults live here beside the codes and a deployment overrides them in config.
"""

from __future__ import annotations

import enum
from typing import Literal

Action = Literal["flag", "block"]


class Code(enum.StrEnum):
    # input: the clinician's request
    INDICATION_TOO_LONG = "indication_too_long"
    CONTROL_CHARACTERS = "control_characters"
    INVISIBLE_CHARACTERS = "invisible_characters"
    UNICODE_TAG_CHARACTERS = "unicode_tag_characters"
    BIDI_CONTROLS = "bidi_controls"
    PROMPT_INJECTION = "prompt_injection"
    ROLE_MARKER = "role_marker"
    SECRET_REQUEST = "secret_request"
    OUTPUT_STEERING = "output_steering"
    MARKUP = "markup"
    ENCODED_PAYLOAD = "encoded_payload"
    SECTION_HEADER_IN_INDICATION = "section_header_in_indication"
    NOT_TEXT = "not_text"
    IMAGE_EMPTY = "image_empty"
    IMAGE_TOO_LARGE = "image_too_large"
    # output: the generated report
    SECTION_MISSING = "section_missing"
    SECTION_EMPTY = "section_empty"
    SECTION_MALFORMED = "section_malformed"
    PHI_IN_REPORT = "phi_in_report"
    PHI_CHECK_FAILED = "phi_check_failed"
    FINDINGS_IMPRESSION_MISMATCH = "findings_impression_mismatch"
    LATERALITY_MISMATCH = "laterality_mismatch"
    TREATMENT_ORDER = "treatment_order"
    CONFIDENCE_LOW = "confidence_low"
    CONFIDENCE_VERY_LOW = "confidence_very_low"
    REPORT_ATYPICAL = "report_atypical"
    REPORT_OUT_OF_DISTRIBUTION = "report_out_of_distribution"


# Blocking is for what must never reach a clinician (PHI, a report without its sections,
# an attack on the model) or what is not a report at all; flagging is for what a radiologist
# can judge when told to look (disagreeing sections, low confidence, unusual wording).
# Zero-width characters flag rather than block: they arrive in text pasted from records
# systems, and the injection checks already run on the text with them removed.
DEFAULT_ACTIONS: dict[Code, Action] = {
    Code.INDICATION_TOO_LONG: "block",
    Code.CONTROL_CHARACTERS: "block",
    Code.INVISIBLE_CHARACTERS: "flag",
    Code.UNICODE_TAG_CHARACTERS: "block",
    Code.BIDI_CONTROLS: "block",
    Code.PROMPT_INJECTION: "block",
    Code.ROLE_MARKER: "block",
    Code.SECRET_REQUEST: "block",
    Code.OUTPUT_STEERING: "block",
    Code.MARKUP: "block",
    Code.ENCODED_PAYLOAD: "block",
    Code.SECTION_HEADER_IN_INDICATION: "block",
    Code.NOT_TEXT: "block",
    Code.IMAGE_EMPTY: "block",
    Code.IMAGE_TOO_LARGE: "block",
    Code.SECTION_MISSING: "block",
    Code.SECTION_EMPTY: "block",
    Code.SECTION_MALFORMED: "block",
    Code.PHI_IN_REPORT: "block",
    Code.PHI_CHECK_FAILED: "block",
    Code.FINDINGS_IMPRESSION_MISMATCH: "flag",
    Code.LATERALITY_MISMATCH: "flag",
    Code.TREATMENT_ORDER: "flag",
    Code.CONFIDENCE_LOW: "flag",
    Code.CONFIDENCE_VERY_LOW: "block",
    Code.REPORT_ATYPICAL: "flag",
    Code.REPORT_OUT_OF_DISTRIBUTION: "block",
}
