"""Sealed reports: round trip, and every forgery, swap, replay and expiry told apart."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ecies
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securemed.crypto.sealing import (
    EnvelopeOpener,
    ReplayCache,
    ReportSealer,
    generate_clinician_key,
)
from securemed.errors import EnvelopeRejected

REPORT = "FINDINGS: Small left pleural effusion. IMPRESSION: Small left pleural effusion."
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
        (lambda e: e["header"].update(version=2), "unsupported_format"),
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


def test_the_safety_verdict_is_signed_with_the_header(parties) -> None:
    """A flagged report cannot be passed off as one that passed: the verdict is signed."""
    sealer, opener, recipient, _ = parties
    verdict = {"decision": "flag", "reasons": [{"code": "low_confidence"}]}
    envelope = sealer.seal(
        REPORT, recipient=recipient, request_id="r", model_version="m", verdict=verdict, now=NOW
    )
    assert opener.open(copy.deepcopy(envelope), now=NOW).header["verdict"] == verdict
    envelope["header"]["verdict"] = {"decision": "pass", "reasons": []}
    with pytest.raises(EnvelopeRejected) as caught:
        opener.open(envelope, now=NOW)
    assert caught.value.reason == "bad_signature"
