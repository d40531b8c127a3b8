"""The policy validates its thresholds and maps each code to flag or block."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from securemed.safety import Code, ConfidenceThresholds, GenerationConfidence, SafetyPolicy
from securemed.safety.codes import DEFAULT_ACTIONS


def test_every_code_has_a_default_action() -> None:
    assert set(DEFAULT_ACTIONS) == set(Code)
    assert SafetyPolicy().action("phi_in_report") == "block"
    assert SafetyPolicy().action("laterality_mismatch") == "flag"


def test_actions_can_be_overridden_per_code() -> None:
    policy = SafetyPolicy(actions={"treatment_order": "block"})
    assert policy.action("treatment_order") == "block"


def test_unknown_codes_and_inverted_thresholds_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown reason codes"):
        SafetyPolicy(actions={"no_such_check": "flag"})
    with pytest.raises(ValidationError, match="must not exceed"):
        ConfidenceThresholds(flag_below=-2.0, block_below=-1.0)
    with pytest.raises(ValidationError, match="at most 0"):
        SafetyPolicy(mean_token_logprob=ConfidenceThresholds(flag_below=0.5, block_below=-1.0))
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        SafetyPolicy(min_token_prob=ConfidenceThresholds(flag_below=1.5, block_below=0.1))
    with pytest.raises(ValidationError):
        SafetyPolicy(max_indication_chars=0)


def test_generation_confidence_refuses_values_that_are_not_scores() -> None:
    GenerationConfidence(mean_token_logprob=-0.2, min_token_prob=0.3)
    with pytest.raises(ValueError, match="mean_token_logprob"):
        GenerationConfidence(mean_token_logprob=float("nan"), min_token_prob=0.3)
    with pytest.raises(ValueError, match="min_token_prob"):
        GenerationConfidence(mean_token_logprob=-0.2, min_token_prob=1.2)
