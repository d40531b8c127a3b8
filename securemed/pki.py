"""The federation's own certificate authority: the CA, enrollment by CSR, and revocation.

Mutual TLS needs every party to hold a certificate the others trust. A federation of a few
hospitals has no use for a public CA (its names are not public) and must not depend on one, so
the operator runs a private CA. In a real federation each hospital makes its own key and a
certificate signing request (``securemed pki request``, on the hospital's machine); the
operator checks the request and signs it (``securemed pki sign``), so no hospital's key ever
leaves its machine. ``securemed pki init`` is for local simulation only: it makes the CA and
every key in one folder, so whoever holds that folder holds every hospital's identity. The CA
folder holds:

* ``ca.crt`` / ``ca.key``: the federation CA (keep ``ca.key`` offline once certificates exist);
* ``aggregator.crt`` / ``aggregator.key``: a server certificate for the aggregator's host names;
* ``issued.json``: every certificate the CA issued (name, serial, expiry, revocation), so a
  certificate can be revoked by its hospital's name and a live name is never issued twice;
* ``revoked.crl.pem``: the X.509 revocation list, signed by the CA, that the aggregator checks
  on every call (``securemed pki revoke`` adds to it);
* after ``init`` only, ``hospitals/<name>.crt`` / ``.key``.

A hospital certificate is a client certificate whose subject common name is the hospital's
name in the federation. The aggregator takes a hospital's identity from this certificate, never
from a field the hospital sends. Keys are ECDSA P-256 (what every TLS 1.3 stack, gRPC's
BoringSSL included, accepts), written owner-only (0600). Keys and CAs are never overwritten: a
second ``init`` into the same folder is refused, because replacing a CA silently would lock
every hospital out. This module does not distribute files: moving a CSR to the operator and a
certificate back is the parties' business (neither is secret).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securemed.errors import ConfigError

HOSPITAL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class PkiLayout:
    """Where ``init_pki`` puts each file under ``root``."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def aggregator_cert(self) -> Path:
        return self.root / "aggregator.crt"

    @property
    def aggregator_key(self) -> Path:
        return self.root / "aggregator.key"

    def hospital_cert(self, name: str) -> Path:
        return self.root / "hospitals" / f"{name}.crt"

    def hospital_key(self, name: str) -> Path:
        return self.root / "hospitals" / f"{name}.key"


@dataclass(frozen=True)
class FederationIdentity:
    """One party's key and certificate plus the federation CA: all that mutual TLS and the
    signed secure-aggregation messages need. ``name`` is the certificate's common name."""

    name: str
    key_pem: bytes = field(repr=False)
    certificate_pem: bytes
    ca_pem: bytes


def load_identity(layout: PkiLayout, name: str) -> FederationIdentity:
    """Read ``name``'s identity ("aggregator" or a hospital) from a PKI folder."""
    if name == "aggregator":
        return read_identity(layout.aggregator_cert, layout.aggregator_key, layout.ca_cert, name)
    return read_identity(
        layout.hospital_cert(name), layout.hospital_key(name), layout.ca_cert, name
    )


def read_identity(
    cert: Path, key: Path, ca: Path, expected_name: str | None = None
) -> FederationIdentity:
    """Read an identity from its three PEM files; its name is the certificate's common name.

    Raises:
        ConfigError: a file is missing, or the certificate was issued to someone else than
            ``expected_name``.
    """
    try:
        certificate_pem = cert.read_bytes()
        key_pem = key.read_bytes()
        ca_pem = ca.read_bytes()
    except FileNotFoundError as error:
        raise ConfigError(
            f"{error.filename} is missing (make the federation's certificates with "
            "`securemed pki init`)"
        ) from None
    name = certificate_common_name(certificate_pem)
    if expected_name is not None and name != expected_name:
        raise ConfigError(f"{cert} was issued to {name!r}, not {expected_name!r}")
    return FederationIdentity(
        name=name, key_pem=key_pem, certificate_pem=certificate_pem, ca_pem=ca_pem
    )


def init_pki(
    root: str | Path,
    hospitals: Sequence[str],
    *,
    server_names: Sequence[str] = DEFAULT_SERVER_NAMES,
    valid_days: int = 365,
) -> PkiLayout:
    """Create the CA and issue the aggregator's and every hospital's certificate under ``root``.

    Raises:
        ConfigError: a hospital name is not a lowercase DNS-style label, names repeat, no
            hospital or server name is given, the validity is not positive, or ``root``
            already holds a CA.
    """
    _check_names(hospitals, server_names, valid_days)
    layout = PkiLayout(Path(root))
    if layout.ca_cert.exists() or layout.ca_key.exists():
        raise ConfigError(
            f"{layout.root} already holds a federation CA; use another folder (replacing the "
            "CA would invalidate every certificate it issued)"
        )
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SecureMed federation CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, valid_days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_pair(layout.ca_cert, layout.ca_key, ca_cert, ca_key)

    _issue(
        layout.aggregator_cert,
        layout.aggregator_key,
        "aggregator",
        server_names,
        ExtendedKeyUsageOID.SERVER_AUTH,
        ca_cert,
        ca_key,
        now,
        valid_days,
    )
    for name in hospitals:
        _issue(
            layout.hospital_cert(name),
            layout.hospital_key(name),
            name,
            (),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ca_cert,
            ca_key,
            now,
            valid_days,
        )
    return layout


def certificate_common_name(pem: bytes) -> str:
    """The subject common name of a PEM certificate (a hospital's name in the federation)."""
    cert = x509.load_pem_x509_certificate(pem)
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(values) != 1:
        raise ConfigError("a federation certificate must carry exactly one common name")
    return str(values[0].value)


def _check_names(hospitals: Sequence[str], server_names: Sequence[str], valid_days: int) -> None:
    if not hospitals:
        raise ConfigError("give at least one hospital name")
    bad = [name for name in hospitals if not HOSPITAL_NAME.match(name)]
    if bad:
        raise ConfigError(
            f"hospital names must be lowercase letters, digits and '-' (at most 63), got {bad}"
        )
    if len(set(hospitals)) != len(hospitals):
        raise ConfigError("hospital names must be unique")
    if "aggregator" in hospitals:
        raise ConfigError("'aggregator' is reserved for the aggregator's certificate")
    if not server_names:
        raise ConfigError("give at least one host name or IP address for the aggregator")
    if valid_days < 1:
        raise ConfigError(f"certificates must be valid for at least a day, got {valid_days}")


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    valid_days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )


def _issue(
    cert_path: Path,
    key_path: Path,
    common_name: str,
    server_names: Sequence[str],
    usage: x509.ObjectIdentifier,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    valid_days: int,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now, valid_days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if server_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in server_names]),
            critical=False,
        )
    _write_pair(cert_path, key_path, builder.sign(ca_key, hashes.SHA256()), key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_pair(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Create the key owner-only from the start: a chmod after writing leaves a window.
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
