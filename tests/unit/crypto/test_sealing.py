"""Sealed reports: round trip, and every forgery, swap, replay and expiry told apart; the
safety verdict's messages sealed with the report, only its codes in the clear header."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ecies
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securemed.crypto import sealing
from securemed.crypto.sealing import (
    EnvelopeOpener,
    ReplayCache,
    ReportSealer,
    generate_clinician_key,
)
from securemed.data.synthetic import FINDINGS
from securemed.errors import EnvelopeRejected
from securemed.safety import Code, GenerationConfidence, SafetyValidator, Verdict

REPORT = "FINDINGS: Small left pleural effusion. IMPRESSION: Small left pleural effusion."
# the sides disagree: the validator flags it, and its message says which finding and sides
MISMATCHED = "FINDINGS: Small left pleural effusion. IMPRESSION: Small right pleural effusion."
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def parties(tmp_path: Path):
    service = Ed25519PrivateKey.generate()
    private, public = generate_clinician_key()
    sealer = ReportSealer(service)
    opener = EnvelopeOpener(private, service.public_key(), ReplayCache(tmp_path / "seen.db"))
    return sealer, opener, bytes.fromhex(public), private


def _seal(sealer, recipient, request_id="req-1"):
    return sealer.seal(
        REPORT, recipient=recipient, request_id=request_id, model_version="m1", now=NOW
    )


def _validated(report: str) -> Verdict:
    validator = SafetyValidator(profile=None, phi_finder=None)
    return validator.check_output(report, GenerationConfidence(-0.2, 0.3))


def _seal_flagged(sealer, recipient) -> tuple[dict, Verdict]:
    verdict = _validated(MISMATCHED)
    envelope = sealer.seal(
        verdict.apply(MISMATCHED), recipient=recipient, request_id="req-flag", model_version="m1",
        verdict=verdict.to_dict(), now=NOW,
    )  # fmt: skip
    return json.loads(json.dumps(envelope)), verdict  # as sent over HTTP


def test_the_clinician_opens_the_report_and_sees_the_signed_header(parties) -> None:
    sealer, opener, recipient, _ = parties
    envelope = json.loads(json.dumps(_seal(sealer, recipient)))  # as sent over HTTP
    opened = opener.open(envelope, now=NOW)
    assert opened.report == REPORT
    assert opened.header["request_id"] == "req-1" and opened.header["model_version"] == "m1"
    assert REPORT not in json.dumps(envelope)  # nothing readable travels outside the ciphertext


def test_the_ciphertext_is_eciespys_default_format(parties) -> None:
    sealer, _, recipient, private = parties
    envelope = _seal(sealer, recipient)
    inner = json.loads(ecies.decrypt(private, base64.b64decode(envelope["ciphertext"])))
    assert inner["report"] == REPORT


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda e: e["header"].update(request_id="req-2"), "bad_signature"),
        (lambda e: e["header"].update(model_version="m2"), "bad_signature"),
        (lambda e: e["header"].update(expires_at="2099-01-01T00:00:00+00:00"), "bad_signature"),
        (lambda e: e.update(ciphertext=base64.b64encode(b"x" * 99).decode()), "bad_signature"),
        (lambda e: e["header"].update(version=3), "unsupported_format"),
        (lambda e: e["header"].update(version=1), "unsupported_format"),
        (lambda e: e.pop("signature"), "malformed"),
        (lambda e: e.update(ciphertext="not base64!"), "malformed"),
    ],
)
def test_altered_envelopes_are_refused_with_a_stable_reason(parties, tamper, reason) -> None:
    sealer, opener, recipient, _ = parties
    envelope = copy.deepcopy(_seal(sealer, recipient))
    tamper(envelope)
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(envelope, now=NOW)
    assert caught.value.reason == reason
    assert REPORT not in str(caught.value)


def test_a_header_moved_onto_another_ciphertext_fails_the_signature(parties) -> None:
    sealer, opener, recipient, _ = parties
    first, second = _seal(sealer, recipient, "req-1"), _seal(sealer, recipient, "req-2")
    swapped = {**second, "header": first["header"], "signature": first["signature"]}
    with pytest.raises(EnvelopeRejected, match="forged or altered"):
        opener.open(swapped, now=NOW)


def test_a_forger_without_the_service_key_is_refused(parties) -> None:
    _, opener, recipient, _ = parties
    forged = _seal(ReportSealer(Ed25519PrivateKey.generate()), recipient)
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(forged, now=NOW)
    assert caught.value.reason == "unknown_service_key"


def test_replays_and_expired_envelopes_are_refused(parties) -> None:
    sealer, opener, recipient, _ = parties
    envelope = _seal(sealer, recipient)
    opener.open(envelope, now=NOW)
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(envelope, now=NOW + timedelta(minutes=1))
    assert caught.value.reason == "replayed"
    late = _seal(sealer, recipient, "req-late")
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(late, now=NOW + timedelta(hours=25))
    assert caught.value.reason == "expired"


def test_the_replay_cache_survives_a_restart(parties, tmp_path: Path) -> None:
    sealer, opener, recipient, private = parties
    service_key = opener._service_key
    envelope = _seal(sealer, recipient)
    opener.open(envelope, now=NOW)
    again = EnvelopeOpener(private, service_key, ReplayCache(tmp_path / "seen.db"))
    with pytest.raises(EnvelopeRejected, match="replay"):
        again.open(envelope, now=NOW)


def test_an_envelope_for_another_clinician_is_refused(parties) -> None:
    sealer, opener, _, _ = parties
    _, other_public = generate_clinician_key()
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(_seal(sealer, bytes.fromhex(other_public)), now=NOW)
    assert caught.value.reason == "wrong_recipient"


def test_the_report_hash_is_salted_so_guesses_cannot_be_checked(parties) -> None:
    import hashlib

    sealer, _, recipient, _ = parties
    a, b = _seal(sealer, recipient, "a"), _seal(sealer, recipient, "b")
    assert a["header"]["report_sha256"] != b["header"]["report_sha256"]
    assert a["header"]["report_sha256"] != hashlib.sha256(REPORT.encode()).hexdigest()


def test_an_envelope_of_an_older_version_is_refused_with_what_to_do(parties) -> None:
    sealer, opener, recipient, _ = parties
    envelope = _seal(sealer, recipient)
    envelope["header"]["version"] = 1
    with pytest.raises(EnvelopeRejected, match=r"version 1 envelope is no longer opened.*again"):
        opener.open(envelope, now=NOW)


def test_the_validators_messages_travel_only_inside_the_ciphertext(parties) -> None:
    sealer, opener, recipient, _ = parties
    envelope, verdict = _seal_flagged(sealer, recipient)
    (message,) = [reason.message for reason in verdict.reasons]
    named = [name for name in FINDINGS if name in message]
    assert named == ["pleural_effusion"] and "right in IMPRESSION" in message
    clear_text = json.dumps(envelope["header"]) + json.dumps(
        {k: v for k, v in envelope.items() if k not in ("header", "ciphertext", "signature")}
    )
    decoded = base64.b64decode(envelope["ciphertext"]) + base64.b64decode(envelope["signature"])
    for secret in (message, *named, *(name.replace("_", " ") for name in named), "effusion"):
        assert secret not in clear_text and secret.encode() not in decoded
    opened = opener.open(envelope, now=NOW)
    assert opened.verdict == verdict.to_dict()  # the clinician loses nothing
    assert [reason["message"] for reason in opened.verdict["reasons"]] == [message]


def test_the_header_names_the_verdict_by_codes_from_the_closed_vocabulary(parties) -> None:
    sealer, _, recipient, _ = parties
    envelope, verdict = _seal_flagged(sealer, recipient)
    signed = envelope["header"]["verdict"]
    assert signed == {
        "decision": "flag",
        "reasons": [{"code": "laterality_mismatch", "stage": "output", "decision": "flag"}],
    }
    assert all(reason["code"] in set(Code) for reason in signed["reasons"])
    assert [reason["code"] for reason in signed["reasons"]] == [r.code for r in verdict.reasons]


OFF_VOCABULARY = {"code": "pleural_effusion_left", "stage": "output", "decision": "flag"}


@pytest.mark.parametrize(
    "verdict",
    [
        {"decision": "flag", "reasons": [{**OFF_VOCABULARY, "message": "m"}]},
        {"decision": "flag", "reasons": [{"code": "laterality_mismatch"}]},
        {"decision": "left effusion", "reasons": []},
        {"decision": "flag", "reasons": "laterality_mismatch"},
    ],
)
def test_a_verdict_outside_the_vocabulary_is_never_sealed(parties, verdict) -> None:
    sealer, _, recipient, _ = parties
    with pytest.raises(ValueError, match=r"securemed\.safety\.Code") as caught:
        sealer.seal(REPORT, recipient=recipient, request_id="r", model_version="m",
                    verdict=verdict, now=NOW)  # fmt: skip
    assert "effusion" not in str(caught.value)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v.update(decision="pass", reasons=[]),
        lambda v: v.update(decision="pass"),
        lambda v: v["reasons"][0].update(code="confidence_low"),
        lambda v: v["reasons"][0].update(decision="block"),
        lambda v: v["reasons"].clear(),
    ],
)
def test_a_flagged_verdict_cannot_be_passed_off_as_another(parties, tamper) -> None:
    """The decision and codes are signed with the rest of the header."""
    sealer, opener, recipient, _ = parties
    envelope, _ = _seal_flagged(sealer, recipient)
    tamper(envelope["header"]["verdict"])
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(envelope, now=NOW)
    assert caught.value.reason == "bad_signature"


def test_a_header_whose_codes_are_not_the_sealed_verdicts_is_refused(tmp_path: Path) -> None:
    """Even signed by the service (a faulty one): the clear codes must be the sealed ones."""
    service = Ed25519PrivateKey.generate()
    private, public = generate_clinician_key()
    opener = EnvelopeOpener(private, service.public_key(), ReplayCache(tmp_path / "seen.db"))
    envelope, _ = _seal_flagged(ReportSealer(service), bytes.fromhex(public))
    envelope["header"]["verdict"]["reasons"][0]["code"] = "confidence_low"
    ciphertext = base64.b64decode(envelope["ciphertext"])
    signature = service.sign(sealing._signed_bytes(envelope["header"], ciphertext))
    envelope["signature"] = base64.b64encode(signature).decode()
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(envelope, now=NOW)
    assert caught.value.reason == "verdict_mismatch"


def test_an_envelope_without_a_verdict_opens_without_one(parties) -> None:
    sealer, opener, recipient, _ = parties
    envelope = _seal(sealer, recipient)
    assert "verdict" not in envelope["header"]
    assert opener.open(envelope, now=NOW).verdict is None
