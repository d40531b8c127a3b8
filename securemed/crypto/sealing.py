"""Sealed reports: ECIES to the clinician, inside a header the service signs.

ECIES (eciespy's default: secp256k1, AES-256-GCM, 16-byte nonce, the format the other eciespy
libraries read) makes the report readable by the holder of the clinician's key only, but says
nothing about who wrote it, for which request, or whether it was sent before. So the envelope
carries a header (format version, key ids, request id, model version, issued-at and expiry,
report hash, the safety verdict's decision and reason codes) and an Ed25519 signature of the
service over the header *and* the ciphertext's digest: a forged envelope, a header moved onto
another ciphertext, an edited field or a flagged verdict passed off as a pass all fail the
signature, and the opening side's replay cache refuses a request id seen before.

The header is readable by anyone who holds the envelope, so it holds no clinical content: of
the verdict only the decision and each reason's code, stage and decision go there, all from the
closed vocabularies of :mod:`securemed.safety` (checked when sealing). The reasons' messages
("pleural_effusion is left in FINDINGS but right in IMPRESSION") are sealed with the report,
and the opener checks that the header's codes are those of the sealed verdict.

The report hash is SHA-256 over a random salt and the report, and the salt travels inside the
ciphertext: a plain hash would let anyone holding the envelope test guesses such as the common
"No acute cardiopulmonary process" report. Nothing here logs or raises report text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import ecies
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from securemed.errors import EnvelopeRejected

FORMAT = "securemed-sealed-report"
# 2: the validator's reason messages moved from the header into the ciphertext
VERSION = 2
DEFAULT_VALIDITY = timedelta(hours=24)


def key_id(public_key: bytes) -> str:
    """A short, stable name for a public key: the first 16 bytes of its SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:32]


def service_key_id(public_key: Ed25519PublicKey) -> str:
    return key_id(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def generate_clinician_key() -> tuple[str, str]:
    """A clinician's key pair as hex: (private, compressed public)."""
    private = ecies.PrivateKey("secp256k1")
    return private.to_hex(), private.public_key.to_bytes().hex()


@dataclass(frozen=True)
class OpenedReport:
    """What the clinician gets from an envelope.

    ``verdict`` is the safety verdict as the service sealed it (``Verdict.to_dict()``: the
    decision and every reason with its message), or ``None`` when none was sealed; ``header``
    holds only its decision and reason codes.
    """

    report: str
    header: dict[str, Any]
    verdict: dict[str, Any] | None = None


class ReportSealer:
    """The service side: encrypts a report to a clinician and signs the envelope."""

    def __init__(
        self, signing_key: Ed25519PrivateKey, *, validity: timedelta = DEFAULT_VALIDITY
    ) -> None:
        if validity <= timedelta(0):
            raise ValueError("an envelope's validity must be positive")
        self._signing_key = signing_key
        self._validity = validity
        self.key_id = service_key_id(signing_key.public_key())

    def seal(
        self,
        report: str,
        *,
        recipient: bytes,
        request_id: str,
        model_version: str,
        verdict: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The JSON envelope of ``report`` for the holder of ``recipient``'s private key.

        ``verdict`` is the safety validator's, as ``Verdict.to_dict()`` gives it. Its decision
        and reason codes are signed in the header, so a flagged report cannot be passed off as
        one that passed; the whole verdict, messages included, is sealed with the report.
        Raises ``ValueError`` if the verdict's decision, a stage or a code is not one
        :mod:`securemed.safety` defines: nothing else may travel in the clear.
        """
        issued = now or datetime.now(UTC)
        salt = secrets.token_bytes(16)
        payload: dict[str, Any] = {"salt": salt.hex(), "report": report}
        public_verdict = None
        if verdict is not None:
            public_verdict = _public_verdict_to_sign(verdict)
            payload["verdict"] = dict(verdict)
        ciphertext = ecies.encrypt(recipient, json.dumps(payload).encode())
        header = {
            "format": FORMAT,
            "version": VERSION,
            "recipient_key_id": key_id(recipient),
            "service_key_id": self.key_id,
            "request_id": request_id,
            "model_version": model_version,
            "issued_at": _timestamp(issued),
            "expires_at": _timestamp(issued + self._validity),
            "report_sha256": _report_hash(salt, report),
        }
        if public_verdict is not None:
            header["verdict"] = public_verdict
        signature = self._signing_key.sign(_signed_bytes(header, ciphertext))
        return {
            "header": header,
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "signature": base64.b64encode(signature).decode(),
        }


class ReplayCache:
    """Request ids already opened, kept until their envelope expires (SQLite, durable)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS opened (request_id TEXT PRIMARY KEY, expires_at TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=10, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        return db

    def admit(self, request_id: str, expires_at: str, now: datetime) -> bool:
        """Record ``request_id``; False if it was already there (a replay)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM opened WHERE expires_at < ?", (_timestamp(now),))
            inserted = db.execute(
                "INSERT OR IGNORE INTO opened VALUES (?, ?)", (request_id, expires_at)
            ).rowcount
            db.execute("COMMIT")
        finally:
            db.close()
        return inserted == 1


class EnvelopeOpener:
    """The clinician side: verifies the service's signature, then decrypts, once."""

    def __init__(
        self,
        private_key_hex: str,
        service_key: Ed25519PublicKey,
        replay_cache: ReplayCache,
    ) -> None:
        self._private = ecies.PrivateKey.from_hex("secp256k1", private_key_hex)
        self._key_id = key_id(self._private.public_key.to_bytes())
        self._service_key = service_key
        self._service_key_id = service_key_id(service_key)
        self._replays = replay_cache

    def open(self, envelope: Any, *, now: datetime | None = None) -> OpenedReport:
        """The report inside ``envelope``; :class:`EnvelopeRejected` names what failed."""
        now = now or datetime.now(UTC)
        header, ciphertext, signature = _parts(envelope)
        _check_format(header)
        if header.get("service_key_id") != self._service_key_id:
            raise EnvelopeRejected(
                "unknown_service_key", "the envelope names another service key than the trusted one"
            )
        try:
            self._service_key.verify(signature, _signed_bytes(header, ciphertext))
        except InvalidSignature:
            raise EnvelopeRejected(
                "bad_signature", "the service's signature does not match: forged or altered"
            ) from None
        if header.get("recipient_key_id") != self._key_id:
            raise EnvelopeRejected("wrong_recipient", "this envelope is sealed to another key")
        if _parse_time(header.get("expires_at")) < now:
            raise EnvelopeRejected("expired", "the envelope has expired: request the report again")
        try:
            inner = json.loads(ecies.decrypt(self._private.secret, ciphertext))
            salt, report = bytes.fromhex(inner["salt"]), str(inner["report"])
            verdict = inner.get("verdict")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EnvelopeRejected("decryption_failed", "the ciphertext does not open") from None
        if _report_hash(salt, report) != header.get("report_sha256"):
            raise EnvelopeRejected("hash_mismatch", "the report does not match its signed hash")
        if not _sealed_verdict_matches(verdict, header.get("verdict")):
            raise EnvelopeRejected(
                "verdict_mismatch",
                "the sealed safety verdict does not match the signed header's decision and codes",
            )
        if not self._replays.admit(str(header["request_id"]), str(header["expires_at"]), now):
            raise EnvelopeRejected("replayed", "this envelope was opened before: a replay")
        return OpenedReport(report, header, verdict)


def _check_format(header: dict[str, Any]) -> None:
    if header.get("format") != FORMAT:
        raise EnvelopeRejected("unsupported_format", f"this is not a {FORMAT} envelope")
    version = header.get("version")
    if version == VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version < VERSION:
        # older versions are refused, not read: version 1 put the validator's messages in the
        # clear header, and an envelope expires within a day, so a new request loses nothing
        raise EnvelopeRejected(
            "unsupported_format",
            f"a version {version} envelope is no longer opened (this SecureMed opens version "
            f"{VERSION}): request the report again",
        )
    raise EnvelopeRejected(
        "unsupported_format",
        f"this SecureMed opens {FORMAT} version {VERSION} envelopes only: upgrade SecureMed",
    )


#: of a reason, what the header may carry: names of a kind of problem, never what was found
_PUBLIC_REASON_FIELDS = ("code", "stage", "decision")


def _public_verdict(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The header's part of a verdict: its decision and each reason's code, stage and decision.

    Fields are picked, not removed, so a field added to reasons later stays sealed.
    """
    return {
        "decision": verdict["decision"],
        "reasons": [
            {field: reason[field] for field in _PUBLIC_REASON_FIELDS}
            for reason in verdict["reasons"]
        ],
    }


def _sealed_verdict_matches(sealed: Any, signed: Any) -> bool:
    """Whether the header's verdict is the public part of the sealed one (or both are absent)."""
    if sealed is None or signed is None:
        return sealed is None and signed is None
    try:
        return _public_verdict(sealed) == signed
    except (KeyError, TypeError, AttributeError):
        return False


def _public_verdict_to_sign(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """``_public_verdict``, once every value in it is checked against the safety vocabulary."""
    # imported here, not at the top: the clinician's side (``securemed decrypt``) only opens,
    # and the safety package loads the report labeler and its dependencies
    from securemed.safety.codes import Action, Code
    from securemed.safety.verdict import Decision, Stage

    codes = {code.value for code in Code}
    try:
        public = _public_verdict(verdict)
        allowed = _member(public["decision"], get_args(Decision)) and all(
            _member(reason["code"], codes)
            and _member(reason["stage"], get_args(Stage))
            and _member(reason["decision"], get_args(Action))
            for reason in public["reasons"]
        )
    except (KeyError, TypeError, AttributeError):
        allowed = False
    if not allowed:
        raise ValueError(
            "a sealed verdict must be Verdict.to_dict() with codes from securemed.safety.Code: "
            "its decision and codes travel in the clear header, so they may name nothing else"
        )
    return public


def _member(value: Any, allowed: Any) -> bool:
    return isinstance(value, str) and value in allowed


def _parts(envelope: Any) -> tuple[dict[str, Any], bytes, bytes]:
    try:
        header = envelope["header"]
        ciphertext = base64.b64decode(envelope["ciphertext"], validate=True)
        signature = base64.b64decode(envelope["signature"], validate=True)
    except (TypeError, KeyError, ValueError):
        raise EnvelopeRejected(
            "malformed", "the envelope needs header, ciphertext and signature (base64)"
        ) from None
    if not isinstance(header, dict):
        raise EnvelopeRejected("malformed", "the envelope's header must be an object")
    return header, ciphertext, signature


def _signed_bytes(header: dict[str, Any], ciphertext: bytes) -> bytes:
    """What the signature covers: the canonical header and the ciphertext's digest."""
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return canonical.encode() + b"\n" + hashlib.sha256(ciphertext).digest()


def _report_hash(salt: bytes, report: str) -> str:
    return hashlib.sha256(salt + report.encode()).hexdigest()


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _parse_time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise EnvelopeRejected("malformed", "the envelope's expiry is not a timestamp") from None
