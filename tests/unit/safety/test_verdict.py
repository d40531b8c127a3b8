"""Verdicts: the worst reason wins, and only passed or flagged reports are sealed."""

from __future__ import annotations

import json

import pytest

from securemed.safety import DISCLAIMER, Reason, Verdict

FLAG = Reason("confidence_low", "output", "flag", "the model was unsure")
BLOCK = Reason("prompt_injection", "input", "block", "instructions in the indication")
REPORT = "FINDINGS: Normal heart size. IMPRESSION: Normal chest radiograph."


def test_no_reasons_pass_and_the_report_is_sealed_unchanged() -> None:
    assert Verdict().decision == "pass"
    assert Verdict().apply(REPORT) == REPORT


def test_a_flagged_report_is_sealed_behind_the_disclaimer_with_its_codes() -> None:
    sealed = Verdict((FLAG,)).apply(REPORT)
    assert sealed is not None
    assert sealed.startswith(DISCLAIMER)
    assert "confidence_low" in sealed and sealed.endswith(REPORT)
    assert "radiologist" in DISCLAIMER and "automated" in DISCLAIMER


def test_a_blocked_report_is_never_sealed() -> None:
    assert Verdict((FLAG, BLOCK)).apply(REPORT) is None


def test_combine_keeps_every_reason_and_the_worst_wins() -> None:
    combined = Verdict.combine(Verdict((BLOCK,)), Verdict(), Verdict((FLAG,)))
    assert combined.decision == "block"
    assert combined.reasons == (BLOCK, FLAG)
    assert Verdict.combine(Verdict(), Verdict((FLAG,))).decision == "flag"


def test_to_dict_is_json_able() -> None:
    payload = json.loads(json.dumps(Verdict((FLAG,)).to_dict()))
    assert payload == {
        "decision": "flag",
        "reasons": [
            {
                "code": "confidence_low",
                "stage": "output",
                "decision": "flag",
                "message": "the model was unsure",
            }
        ],
    }


def test_a_reason_must_flag_or_block() -> None:
    with pytest.raises(ValueError, match="flags or blocks"):
        Reason("x", "output", "pass", "...")  # type: ignore[arg-type]
