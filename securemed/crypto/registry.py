"""Clinicians the report service knows: their bearer-token hash and their sealing keys.

A clinician is registered with a secp256k1 public key (checked to be a point on the curve)
and receives a bearer token once; only the token's SHA-256 is stored, so a copy of the
database does not let anyone call the service. Keys can be rotated (the old key is retired and
the old token replaced; envelopes are sealed to the new key from then on) and revoked (the
clinician gets nothing until a rotation gives them a new key and token). SQLite with full
sync: an acknowledged change survives a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import ecies

from securemed.crypto.sealing import key_id
from securemed.errors import ClinicianRejected

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clinicians (
    clinician_id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    clinician_id TEXT NOT NULL REFERENCES clinicians(clinician_id),
    public_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired', 'revoked')),
    changed_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ActiveKey:
    key_id: str
    public_key: bytes


class ClinicianRegistry:
    """Register, authenticate, rotate and revoke; every change one durable transaction."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed if the block succeeds, rolled back if not; closed."""
        db = sqlite3.connect(self._path, timeout=10)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            with db:
                yield db
        finally:
            db.close()

    def register(self, clinician_id: str, public_key_hex: str) -> tuple[str, str]:
        """Add a clinician with their first key; returns (bearer token, key id).

        The token is shown this once: only its hash is kept.
        """
        public = _checked_public_key(public_key_hex)
        token = secrets.token_urlsafe(32)
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO clinicians VALUES (?, ?, ?)",
                    (clinician_id, token_hash(token), _now()),
                )
            except sqlite3.IntegrityError:
                raise ClinicianRejected(
                    "already_registered",
                    "this clinician is already registered: rotate their key instead",
                ) from None
            identifier = self._add_key(db, clinician_id, public)
        return token, identifier

    def rotate(self, clinician_id: str, public_key_hex: str) -> tuple[str, str]:
        """Retire the clinician's current key, make ``public_key_hex`` the active one and issue
        a new bearer token; returns (token, key id).

        The old token stops working too: a rotation often follows a lost device or a revoke,
        and a token that outlived it would let its holder request reports again.
        """
        public = _checked_public_key(public_key_hex)
        token = secrets.token_urlsafe(32)
        with self._connect() as db:
            self._require_known(db, clinician_id)
            db.execute(
                "UPDATE keys SET status = 'retired', changed_at = ? "
                "WHERE clinician_id = ? AND status = 'active'",
                (_now(), clinician_id),
            )
            db.execute(
                "UPDATE clinicians SET token_sha256 = ? WHERE clinician_id = ?",
                (token_hash(token), clinician_id),
            )
            return token, self._add_key(db, clinician_id, public)

    def revoke(self, clinician_id: str) -> None:
        """No key of this clinician seals anything any more."""
        with self._connect() as db:
            self._require_known(db, clinician_id)
            db.execute(
                "UPDATE keys SET status = 'revoked', changed_at = ? "
                "WHERE clinician_id = ? AND status = 'active'",
                (_now(), clinician_id),
            )

    def clinician_count(self) -> int:
        """How many clinicians are registered (a health probe reads the database with it)."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM clinicians").fetchone()[0])

    def authenticate(self, token: str) -> str:
        """The clinician a bearer token belongs to."""
        with self._connect() as db:
            row = db.execute(
                "SELECT clinician_id FROM clinicians WHERE token_sha256 = ?", (token_hash(token),)
            ).fetchone()
        if row is None:
            raise ClinicianRejected("invalid_token", "the bearer token is not valid")
        return str(row[0])

    def active_key(self, clinician_id: str) -> ActiveKey:
        """The key to seal this clinician's reports to."""
        with self._connect() as db:
            self._require_known(db, clinician_id)
            row = db.execute(
                "SELECT key_id, public_key FROM keys WHERE clinician_id = ? AND status = 'active'",
                (clinician_id,),
            ).fetchone()
        if row is None:
            raise ClinicianRejected(
                "key_revoked", "this clinician's key was revoked: register a new key first"
            )
        return ActiveKey(str(row[0]), bytes.fromhex(row[1]))

    def _require_known(self, db: sqlite3.Connection, clinician_id: str) -> None:
        known = db.execute(
            "SELECT 1 FROM clinicians WHERE clinician_id = ?", (clinician_id,)
        ).fetchone()
        if known is None:
            raise ClinicianRejected("unknown_clinician", "no clinician is registered by that id")

    def _add_key(self, db: sqlite3.Connection, clinician_id: str, public: bytes) -> str:
        identifier = key_id(public)
        try:
            db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, 'active', ?)",
                (identifier, clinician_id, public.hex(), _now()),
            )
        except sqlite3.IntegrityError:
            raise ClinicianRejected(
                "key_reused", "this public key was registered before: generate a new key pair"
            ) from None
        return identifier


def _checked_public_key(public_key_hex: str) -> bytes:
    try:
        return ecies.PublicKey.from_hex("secp256k1", public_key_hex.strip()).to_bytes()
    except (ValueError, TypeError):
        raise ClinicianRejected(
            "invalid_public_key", "the public key is not a secp256k1 point in hex"
        ) from None


def token_hash(token: str) -> str:
    """What is stored of a bearer token: enough to check one, useless to present one."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
