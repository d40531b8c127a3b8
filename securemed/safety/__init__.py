"""The report service's IDS stage: checks on a request's input and on its generated report.

Input checks look for prompt injection and smuggled instructions in the clinician's free-text
indication and for oversized or empty images; output checks require the report's sections,
find PHI left in it, compare FINDINGS with IMPRESSION (what and which side), refuse treatment
orders, and judge the model's confidence and how unusual the report is next to the training
reports. The :class:`Verdict` says pass, flag (sealed behind :data:`DISCLAIMER`) or block
(never sealed), with stable reason codes and messages that never quote the checked text.

Pure logic: no Ray, no Serve, no I/O; the serving layer hosts a :class:`SafetyValidator`.
"""

from securemed.safety.codes import DEFAULT_ACTIONS, Code
from securemed.safety.policy import ConfidenceThresholds, GenerationConfidence, SafetyPolicy
from securemed.safety.profile import ReportProfile, ReportScore
from securemed.safety.validator import SafetyValidator
from securemed.safety.verdict import DISCLAIMER, Reason, Verdict

__all__ = [
    "DEFAULT_ACTIONS",
    "DISCLAIMER",
    "Code",
    "ConfidenceThresholds",
    "GenerationConfidence",
    "Reason",
    "ReportProfile",
    "ReportScore",
    "SafetyPolicy",
    "SafetyValidator",
    "Verdict",
]
