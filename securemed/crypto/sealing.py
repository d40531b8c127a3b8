"""Sealed reports: ECIES to the clinician, inside a header the service signs.

ECIES (eciespy's default: secp256k1, AES-256-GCM, 16-byte nonce, the format the other eciespy
libraries read) makes the report readable by the holder of the clinician's key only, but says
nothing about who wrote it, for which request, or whether it was sent before. So the envelope
carries a header (format version, key ids, request id, model version, issued-at and expiry,
report hash) and an Ed25519 signature of the service over the header *and* the ciphertext's
digest: a forged envelope, a header moved onto another ciphertext, or an edited field all
fail the signature, and the opening side's replay cache refuses a request id seen before.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ecies
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from securemed.errors import EnvelopeRejected

FORMAT = "securemed-sealed-report"
VERSION = 1
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
    report: str
    header: dict[str, Any]


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
        verdict: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The JSON envelope of ``report`` for the holder of ``recipient``'s private key.

        ``verdict`` (the safety validator's decision and reason codes) is signed with the rest
        of the header, so a flagged report cannot be passed off as one that passed.
        """
        issued = now or datetime.now(UTC)
        salt = secrets.token_bytes(16)
        inner = json.dumps({"salt": salt.hex(), "report": report}).encode()
        ciphertext = ecies.encrypt(recipient, inner)
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
        if verdict is not None:
            header["verdict"] = verdict
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
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise EnvelopeRejected(
                "unsupported_format",
                f"this is not a {FORMAT} version {VERSION} envelope: upgrade SecureMed",
            )
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
        except (ValueError, KeyError, TypeError):
            raise EnvelopeRejected("decryption_failed", "the ciphertext does not open") from None
        if _report_hash(salt, report) != header.get("report_sha256"):
            raise EnvelopeRejected("hash_mismatch", "the report does not match its signed hash")
        if not self._replays.admit(str(header["request_id"]), str(header["expires_at"]), now):
            raise EnvelopeRejected("replayed", "this envelope was opened before: a replay")
        return OpenedReport(report, header)


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
