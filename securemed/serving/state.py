"""The report service's secrets and registry, in one folder an operator creates once.

``init_service_state`` writes, each readable by its owner only and never overwritten:

- ``service_signing.key``: the Ed25519 key that signs every envelope (``service_signing.pub``
  beside it is what clinicians verify with, also served at ``GET /v1/service-key``);
- ``deidentification.key``: 32 random bytes keying UID remapping, date shifts and pseudonyms,
  so the same patient maps to the same pseudonyms across requests and restarts;
- ``admin_token.sha256``: the hash of the administrator's bearer token (the token itself is
  returned once; ``securemed serve-init`` and ``make serve`` leave it in ``admin.token``,
  0600, for the operator to move to a secret store);
- ``clinicians.sqlite``: the clinician registry.

Every replica of every deployment opens the same folder, so on a multi-node cluster it must be
shared storage (or a secret store mounted at the same path).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from securemed.crypto.registry import ClinicianRegistry, token_hash
from securemed.durable import write_private_file
from securemed.errors import ConfigError

SIGNING_KEY = "service_signing.key"
SIGNING_PUBLIC_KEY = "service_signing.pub"
DEIDENTIFICATION_KEY = "deidentification.key"
ADMIN_TOKEN_HASH = "admin_token.sha256"
#: where `securemed serve-init` and `make serve` leave the admin token for the operator
ADMIN_TOKEN_FILE = "admin.token"
REGISTRY = "clinicians.sqlite"


@dataclass(frozen=True)
class ServiceState:
    """Where a running service finds its keys and registry."""

    root: Path

    def signing_key(self) -> Ed25519PrivateKey:
        key = load_pem_private_key(self._read(SIGNING_KEY), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{self.root / SIGNING_KEY} is not an Ed25519 private key")
        return key

    def signing_public_pem(self) -> bytes:
        return self._read(SIGNING_PUBLIC_KEY)

    def deidentification_key(self) -> bytes:
        key = self._read(DEIDENTIFICATION_KEY)
        if len(key) != 32:
            raise ConfigError(f"{self.root / DEIDENTIFICATION_KEY} must hold 32 bytes")
        return key

    def registry(self) -> ClinicianRegistry:
        return ClinicianRegistry(self.root / REGISTRY)

    def is_admin(self, token: str) -> bool:
        """Whether ``token`` is the administrator's (compared in constant time)."""
        expected = self._read(ADMIN_TOKEN_HASH).decode().strip()
        return hmac.compare_digest(token_hash(token), expected)

    def _read(self, name: str) -> bytes:
        path = self.root / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"{path} does not exist: create the service state with `securemed serve-init "
                f"--state {self.root}`"
            ) from None


def init_service_state(root: Path) -> tuple[ServiceState, str]:
    """Create the folder's keys and registry; returns the state and the admin token (once).

    Refuses a folder that already holds a signing key: re-initialising would orphan every
    envelope and pseudonym made so far.
    """
    root = Path(root)
    if (root / SIGNING_KEY).exists():
        raise ConfigError(f"{root} already holds a service state: it is never overwritten")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    signing = Ed25519PrivateKey.generate()
    write_private_file(
        root / SIGNING_KEY,
        signing.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
    )
    (root / SIGNING_PUBLIC_KEY).write_bytes(
        signing.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    write_private_file(root / DEIDENTIFICATION_KEY, secrets.token_bytes(32))
    token = secrets.token_urlsafe(32)
    write_private_file(root / ADMIN_TOKEN_HASH, (token_hash(token) + "\n").encode())
    state = ServiceState(root)
    state.registry()  # creates the schema now, not under the first request
    return state, token


def init_serving_state_with_token_file(root: Path) -> Path:
    """Create the state and write the admin token to ``root/admin.token`` (0600), for an
    operator's first start; returns that file. Move it to a secret store and delete it."""
    state, token = init_service_state(root)
    path = state.root / ADMIN_TOKEN_FILE
    write_private_file(path, (token + "\n").encode())
    return path
