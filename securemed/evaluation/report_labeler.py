"""Clinical correctness of a generated report: which findings it asserts, like CheXpert's labeler.

Rule-based, sentence by sentence: a finding is *mentioned* when one of its phrases occurs; the
mention is *negated* when a negation cue precedes it in the same sentence ("no", "without",
"free of", "negative for"), and *uncertain* when a hedge occurs in the sentence ("possible",
"cannot be excluded", "may represent"). A report is positive for a finding with any
affirmed mention, uncertain if it has only uncertain ones, negative otherwise. Clinical F1
compares these against the ground truth per finding; uncertain counts as positive by default
(CheXpert's "U-Ones" policy), since a hedge still raises the finding for the reader.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from securemed.data.synthetic import FINDINGS


class Mention(enum.IntEnum):
    NEGATIVE = 0
    POSITIVE = 1
    UNCERTAIN = 2


_PHRASES = {
    "cardiomegaly": (
        r"cardiomegaly|enlarge\w* (?:cardiac silhouette|heart)"
        r"|heart is (?:enlarged|increased in size)|enlargement of the cardiac silhouette"
    ),
    "pleural_effusion": (
        r"effusions?|costophrenic (?:angle )?blunting|blunting of the \w+ costophrenic"
    ),
    "consolidation": r"consolidation|airspace (?:opacity|disease)|pneumonia",
    "pneumothorax": r"pneumothora(?:x|ces)",
    "nodule": r"nodules?|mass(?:es)?",
}
_NEGATION = re.compile(r"\b(?:no|not|without|free of|negative for|clear of|resolved)\b")
_UNCERTAIN = re.compile(
    r"\b(?:possible|possibly|cannot be excluded|can not be excluded|not excluded|may|might"
    r"|questionable|suspicious for|suggest(?:s|ive of)?|likely|probable|could represent)\b"
)
_SENTENCE = re.compile(r"(?<=[.;:!?])\s+|\n+")


def label_report(text: str) -> tuple[Mention, ...]:
    """What the report says about each finding, in ``FINDINGS`` order."""
    result = []
    sentences = [s.lower() for s in _SENTENCE.split(text) if s.strip()]
    for name in FINDINGS:
        pattern = re.compile(_PHRASES[name])
        state = Mention.NEGATIVE
        for sentence in sentences:
            for match in pattern.finditer(sentence):
                before = sentence[: match.start()]
                if _NEGATION.search(before) and not _UNCERTAIN.search(before):
                    continue
                if not _UNCERTAIN.search(sentence):
                    state = Mention.POSITIVE
                elif state is Mention.NEGATIVE:
                    state = Mention.UNCERTAIN
        result.append(state)
    return tuple(result)


@dataclass(frozen=True)
class ClinicalScores:
    per_finding_f1: dict[str, float]
    macro_f1: float


def clinical_f1(
    generated: Sequence[str],
    truth: Sequence[Sequence[bool]],
    *,
    uncertain_as_positive: bool = True,
) -> ClinicalScores:
    """Per-finding and macro F1 of the findings the generated reports assert.

    A finding with no positives in the truth and none predicted scores 1 (nothing to find,
    nothing claimed); it still counts in the macro average.
    """
    if len(generated) != len(truth) or not generated:
        raise ValueError("clinical F1 needs one ground truth per generated report, at least one")
    per_finding = {}
    labels = [label_report(text) for text in generated]
    for k, name in enumerate(FINDINGS):
        tp = fp = fn = 0
        for said, actual in zip(labels, truth, strict=True):
            predicted = said[k] == Mention.POSITIVE or (
                uncertain_as_positive and said[k] == Mention.UNCERTAIN
            )
            tp += predicted and bool(actual[k])
            fp += predicted and not actual[k]
            fn += (not predicted) and bool(actual[k])
        per_finding[name] = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return ClinicalScores(per_finding, sum(per_finding.values()) / len(per_finding))
