"""Thresholds and actions of the safety checks, as one validated config object.

The defaults are set for the shipped report model (a small image-to-text model greedy-decoding
a byte-level BPE vocabulary of about 1,000 tokens, trained on templated radiology reports) and
for the image sizes the service accepts. They are config, not constants: a deployment with
another model or other reports calibrates its own, starting from the rates its normal traffic
produces. The anomaly thresholds are quantiles of the training reports' own scores, so they
follow whatever reports the :class:`~securemed.safety.profile.ReportProfile` was fitted on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from securemed.safety.codes import DEFAULT_ACTIONS, Action, Code


class ConfidenceThresholds(BaseModel):
    """Pass at or above ``flag_below``, flag between, block below ``block_below``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flag_below: float
    block_below: float

    @model_validator(mode="after")
    def _ordered(self) -> ConfidenceThresholds:
        if not (math.isfinite(self.flag_below) and math.isfinite(self.block_below)):
            raise ValueError("confidence thresholds must be finite numbers")
        if self.block_below > self.flag_below:
            raise ValueError(
                f"block_below ({self.block_below}) must not exceed flag_below ({self.flag_below})"
                ": blocking is for confidence lower than flagging"
            )
        return self


class SafetyPolicy(BaseModel):
    """What the :class:`~securemed.safety.validator.SafetyValidator` tolerates.

    Args:
        max_indication_chars: longest free-text indication accepted; real ones are a line or
            two, and a long one is where instructions get smuggled.
        max_image_bytes: largest upload accepted (a DICOM chest film is a few MiB).
        mean_token_logprob: thresholds on the mean log-probability (nats) of the generated
            tokens. The shipped model writes its normal reports at about -0.1 to -0.4 (most
            tokens are near-certain, a few pick a synonym or a size); -1.0 is a per-token
            perplexity of e, which a model that has read the film does not reach; -2.5 is
            a model guessing among a dozen tokens at every step.
        min_token_prob: thresholds on the probability of the least likely generated token.
            Greedy decoding picks each step's most likely token, so a minimum below 0.02 means
            a step where the model spread its belief over dozens of tokens (a side, a size, a
            negation); below 0.002 it was close to uniform over the vocabulary.
        anomaly_flag_quantile: flag a report whose anomaly score exceeds this quantile of the
            held-out training reports' scores (0.995: about one normal report in 200).
        anomaly_block_margin: block above the held-out maximum plus this many times the gap
            between that maximum and the median: far beyond anything the training reports do.
            Measured on the synthetic reports with a profile of 8,000: the most unusual of
            20,000 unseen in-distribution reports lies 2.2 gaps above the maximum, reports with
            their sentences reordered about 2, shuffled words about 16, another reporting
            style 11 to 18; 4 leaves room on both sides.
        max_oov_rate: block a report with a larger share of words the training reports never
            use; it is not a report of the kind the model was trained to write.
        actions: per reason code, ``"flag"`` or ``"block"``, overriding
            :data:`~securemed.safety.codes.DEFAULT_ACTIONS`.

    Example:
        >>> SafetyPolicy(actions={"treatment_order": "block"}).action("treatment_order")
        'block'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_indication_chars: int = Field(default=1000, ge=1)
    max_image_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    mean_token_logprob: ConfidenceThresholds = ConfidenceThresholds(
        flag_below=-1.0, block_below=-2.5
    )
    min_token_prob: ConfidenceThresholds = ConfidenceThresholds(flag_below=0.02, block_below=0.002)
    anomaly_flag_quantile: float = Field(default=0.995, gt=0.5, lt=1.0)
    anomaly_block_margin: float = Field(default=4.0, ge=0.0)
    max_oov_rate: float = Field(default=0.25, gt=0.0, le=1.0)
    actions: dict[str, Action] = Field(default_factory=dict)

    @field_validator("mean_token_logprob")
    @classmethod
    def _logprobs_not_positive(cls, value: ConfidenceThresholds) -> ConfidenceThresholds:
        if value.flag_below > 0:
            raise ValueError("log-probability thresholds must be at most 0")
        return value

    @field_validator("min_token_prob")
    @classmethod
    def _probabilities(cls, value: ConfidenceThresholds) -> ConfidenceThresholds:
        if value.block_below < 0.0 or value.flag_below > 1.0:
            raise ValueError("probability thresholds must lie in [0, 1]")
        return value

    @field_validator("actions")
    @classmethod
    def _known_codes(cls, value: dict[str, Action]) -> dict[str, Action]:
        unknown = sorted(set(value) - {code.value for code in Code})
        if unknown:
            raise ValueError(
                f"unknown reason codes in actions: {unknown}; "
                "see securemed.safety.codes.Code for the codes"
            )
        return value

    def action(self, code: str) -> Action:
        """Whether ``code`` flags or blocks under this policy."""
        if code in self.actions:
            return self.actions[code]
        return DEFAULT_ACTIONS[Code(code)]


@dataclass(frozen=True)
class GenerationConfidence:
    """How sure the model was of the report it generated, from its beam/greedy scores.

    Args:
        mean_token_logprob: mean natural-log probability of the generated tokens (<= 0).
        min_token_prob: probability of the least likely generated token, in [0, 1].
    """

    mean_token_logprob: float
    min_token_prob: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_token_logprob) and self.mean_token_logprob <= 0):
            raise ValueError(
                f"mean_token_logprob must be a finite log-probability <= 0, got "
                f"{self.mean_token_logprob}; pass the mean of the log-softmax scores"
            )
        if not (0.0 <= self.min_token_prob <= 1.0):  # NaN fails this too
            raise ValueError(
                f"min_token_prob must be a probability in [0, 1], got {self.min_token_prob}; "
                "pass exp of the smallest token log-probability"
            )
