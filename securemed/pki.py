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
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securemed.durable import atomic_write, write_private_file
from securemed.errors import ConfigError

HOSPITAL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")
#: days a revocation list stays current; every ``pki revoke`` signs a fresh one
CRL_VALID_DAYS = 30


@dataclass(frozen=True)
class PkiLayout:
    """Where the CA's files live under ``root`` (and, after ``init_pki``, the hospitals')."""

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

    @property
    def issued_index(self) -> Path:
        return self.root / "issued.json"

    @property
    def revocation_list(self) -> Path:
        return self.root / "revoked.crl.pem"

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


@dataclass(frozen=True)
class IssuedCertificate:
    """One entry of the CA's record (``issued.json``): enough to revoke a certificate by its
    hospital's name and to refuse issuing a name twice. No key material."""

    name: str
    serial: int
    not_after: datetime.datetime
    revoked_at: datetime.datetime | None = None

    def live(self, now: datetime.datetime) -> bool:
        """Whether the certificate still opens the federation's door at ``now``."""
        return self.revoked_at is None and now < self.not_after


@dataclass(frozen=True)
class EnrollmentRequest:
    """What :func:`request_certificate` wrote: the key stays, the CSR goes to the operator."""

    key: Path
    csr: Path


@dataclass(frozen=True)
class Revocations:
    """A revocation list that the federation CA is known to have signed.

    ``number`` is its CRL number, which grows with every list the CA signs, so that an older
    list can be told from a newer one.
    """

    number: int
    serials: frozenset[int]


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

    An enrolled hospital passes the certificate the operator signed, the key that
    ``securemed pki request`` left in its folder, and the CA's ``ca.crt``.

    Raises:
        ConfigError: a file is missing, the key is not the certificate's (it would only fail
            later, in the TLS handshake, with a vaguer message), or the certificate was issued
            to someone else than ``expected_name``.
    """
    try:
        certificate_pem = cert.read_bytes()
        key_pem = key.read_bytes()
        ca_pem = ca.read_bytes()
    except FileNotFoundError as error:
        raise ConfigError(
            f"{error.filename} is missing (a hospital enrolls with `securemed pki request` and "
            "`securemed pki sign`; a local simulation can use `securemed pki init`)"
        ) from None
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{key} is not an unencrypted PEM private key") from None
    if private_key.public_key() != x509.load_pem_x509_certificate(certificate_pem).public_key():
        raise ConfigError(
            f"{key} is not the key of {cert}: use the key that made the signing request "
            "the operator signed"
        )
    name = certificate_common_name(certificate_pem)
    if expected_name is not None and name != expected_name:
        raise ConfigError(f"{cert} was issued to {name!r}, not {expected_name!r}")
    return FederationIdentity(
        name=name, key_pem=key_pem, certificate_pem=certificate_pem, ca_pem=ca_pem
    )


def create_ca(
    root: str | Path,
    *,
    server_names: Sequence[str] = DEFAULT_SERVER_NAMES,
    valid_days: int = 365,
) -> PkiLayout:
    """Create the federation CA and the aggregator's certificate under ``root``.

    The start of a real federation: hospitals then enroll by :func:`request_certificate` and
    :func:`sign_request`, so their keys never pass through this folder. An empty revocation
    list is published at once, so an aggregator started now already watches the file that a
    later :func:`revoke_certificate` changes.

    Raises:
        ConfigError: no server name is given, the validity is not positive, or ``root``
            already holds a CA.
    """
    _check_ca_settings(server_names, valid_days)
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

    aggregator = _issue(
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
    records = [_record("aggregator", aggregator)]
    _publish_revocations(layout, ca_cert, ca_key, records, 1, now, CRL_VALID_DAYS)
    _write_index(layout, 1, records)
    return layout


def init_pki(
    root: str | Path,
    hospitals: Sequence[str],
    *,
    server_names: Sequence[str] = DEFAULT_SERVER_NAMES,
    valid_days: int = 365,
) -> PkiLayout:
    """For local simulation only: the CA and every hospital's key and certificate in one folder.

    Whoever holds this folder holds every hospital's identity, which a real federation must
    not allow; there, use :func:`create_ca` and let each hospital enroll with
    :func:`request_certificate`. Tests, benchmarks and the Ray job, whose hospitals all run on
    one machine anyway, use this.

    Raises:
        ConfigError: a hospital name is not a lowercase DNS-style label, names repeat, no
            hospital or server name is given, the validity is not positive, or ``root``
            already holds a CA.
    """
    if not hospitals:
        raise ConfigError("give at least one hospital name")
    _check_hospital_names(hospitals)
    if len(set(hospitals)) != len(hospitals):
        raise ConfigError("hospital names must be unique")
    layout = create_ca(root, server_names=server_names, valid_days=valid_days)
    ca_cert, ca_key = _load_ca(layout)
    number, records = _read_index(layout)
    now = datetime.datetime.now(datetime.UTC)
    for name in hospitals:
        issued = _issue(
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
        records.append(_record(name, issued))
    _write_index(layout, number, records)
    return layout


def request_certificate(out: str | Path, name: str) -> EnrollmentRequest:
    """On the hospital's machine: a new key and a certificate signing request for ``name``.

    The key is written owner-only into ``out`` and never leaves it; only the CSR (public key
    and name, signed with the key to prove the requester holds it) goes to the operator.

    Raises:
        ConfigError: ``name`` is not a lowercase DNS-style label or is reserved, or ``out``
            already holds a key for it (a key is never replaced: a certificate may be
            issued for it already).
    """
    _check_hospital_names([name])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = EnrollmentRequest(key=folder / f"{name}.key", csr=folder / f"{name}.csr")
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        write_private_file(files.key, _private_bytes(key))
    except FileExistsError:
        raise ConfigError(
            f"{files.key} exists: keys are never overwritten; use another folder to enroll again"
        ) from None
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject(name))
        .sign(key, hashes.SHA256())
    )
    files.csr.write_bytes(request.public_bytes(serialization.Encoding.PEM))
    return files


def sign_request(
    root: str | Path, csr_pem: bytes, out: str | Path, *, valid_days: int = 365
) -> IssuedCertificate:
    """On the operator's machine: issue a hospital certificate for a verified CSR.

    The CSR only names the hospital; the CA decides the rest, so the certificate is the same
    client-authentication-only certificate :func:`init_pki` issues to hospitals. The issue is
    recorded in the CA folder before the certificate is written, so nothing issued is ever off
    the record.

    Raises:
        ConfigError: the CSR is not PEM, its signature does not verify, its key is not P-256,
            it asks for anything but a hospital name (other subject fields, extensions,
            attributes), the name breaks the naming rule, the name holds a live certificate
            already, ``out`` exists, or ``root`` holds no CA.
    """
    layout, target = PkiLayout(Path(root)), Path(out)
    if valid_days < 1:
        raise ConfigError(f"certificates must be valid for at least a day, got {valid_days}")
    name, public_key = _verified_request(csr_pem)
    if target.exists():
        raise ConfigError(f"{target} exists: certificates are never overwritten")
    ca_cert, ca_key = _load_ca(layout)
    number, records = _read_index(layout)
    now = datetime.datetime.now(datetime.UTC)
    live = [record for record in records if record.name == name and record.live(now)]
    if live:
        raise ConfigError(
            f"{name!r} already holds a live certificate (serial {live[0].serial:x}); if the "
            f"hospital must enroll again, first run `securemed pki revoke --name {name}`"
        )
    certificate = _certificate(
        name, public_key, (), ExtendedKeyUsageOID.CLIENT_AUTH, ca_cert, ca_key, now, valid_days
    )
    issued = _record(name, certificate)
    if not layout.revocation_list.exists():  # a CA made before revocation existed
        number += 1
        _publish_revocations(layout, ca_cert, ca_key, records, number, now, CRL_VALID_DAYS)
    _write_index(layout, number, [*records, issued])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return issued


def revoke_certificate(
    root: str | Path,
    *,
    name: str | None = None,
    serial: int | None = None,
    crl_days: int = CRL_VALID_DAYS,
) -> list[IssuedCertificate]:
    """Revoke every unrevoked certificate issued to ``name``, or the one with ``serial``.

    The CA signs a new revocation list holding every certificate it has revoked and replaces
    the CA folder's list in one rename; an aggregator watching that file refuses the holder
    from its next call. The list is published before the record is updated: a crash between
    the two leaves the certificate revoked, and revoking it again is harmless.

    Returns:
        The records revoked now.

    Raises:
        ConfigError: both or neither of ``name`` and ``serial`` are given, ``crl_days`` is
            not positive, no unrevoked certificate matches, or ``root`` holds no CA.
    """
    if (name is None) == (serial is None):
        raise ConfigError("revoke by a hospital's name or by a serial number (one of the two)")
    if crl_days < 1:
        raise ConfigError(f"the revocation list must be current for at least a day, got {crl_days}")
    layout = PkiLayout(Path(root))
    ca_cert, ca_key = _load_ca(layout)
    number, records = _read_index(layout)
    chosen = {
        record.serial
        for record in records
        if record.revoked_at is None and (record.name == name or record.serial == serial)
    }
    if not chosen:
        which = f"to {name!r}" if name is not None else f"with serial {serial:x}"
        raise ConfigError(
            f"no unrevoked certificate issued {which} is on record in {layout.issued_index}"
        )
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)  # a CRL keeps seconds
    records = [
        replace(record, revoked_at=now) if record.serial in chosen else record for record in records
    ]
    _publish_revocations(layout, ca_cert, ca_key, records, number + 1, now, crl_days)
    _write_index(layout, number + 1, records)
    return [record for record in records if record.serial in chosen]


def verify_revocation_list(crl_pem: bytes, ca_pem: bytes) -> Revocations:
    """The serials a CRL revokes, once its signature is checked against the federation CA.

    The list decides who is refused: one that anyone could write would let them lock
    hospitals out, or, put in place of ours, let revoked hospitals back in.

    Raises:
        ConfigError: the bytes are not a PEM CRL, or the federation CA did not sign it.
    """
    try:
        crl = x509.load_pem_x509_crl(crl_pem)
    except ValueError:
        raise ConfigError("not a PEM X.509 revocation list") from None
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = ca.public_key()
    if (
        crl.issuer != ca.subject
        or not isinstance(ca_key, ec.EllipticCurvePublicKey)
        or not crl.is_signature_valid(ca_key)
    ):
        raise ConfigError(
            "the revocation list is not signed by the federation CA (use the revoked.crl.pem "
            "that `securemed pki revoke` writes in the CA folder)"
        )
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = 0
    return Revocations(number=number, serials=frozenset(entry.serial_number for entry in crl))


def certificate_common_name(pem: bytes) -> str:
    """The subject common name of a PEM certificate (a hospital's name in the federation)."""
    return _common_name(x509.load_pem_x509_certificate(pem).subject)


def _common_name(subject: x509.Name) -> str:
    values = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(values) != 1:
        raise ConfigError("a federation certificate must carry exactly one common name")
    return str(values[0].value)


def _check_hospital_names(hospitals: Sequence[str]) -> None:
    bad = [name for name in hospitals if not HOSPITAL_NAME.match(name)]
    if bad:
        raise ConfigError(
            f"hospital names must be lowercase letters, digits and '-' (at most 63), got {bad}"
        )
    if "aggregator" in hospitals:
        raise ConfigError("'aggregator' is reserved for the aggregator's certificate")


def _check_ca_settings(server_names: Sequence[str], valid_days: int) -> None:
    if not server_names:
        raise ConfigError("give at least one host name or IP address for the aggregator")
    if valid_days < 1:
        raise ConfigError(f"certificates must be valid for at least a day, got {valid_days}")


def _verified_request(csr_pem: bytes) -> tuple[str, ec.EllipticCurvePublicKey]:
    """The hospital name and key of a CSR that proves its key and asks for a name only."""
    try:
        request = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise ConfigError(
            "not a PEM certificate signing request (make one with `securemed pki request`)"
        ) from None
    if not request.is_signature_valid:
        raise ConfigError(
            "the signing request's signature does not verify: it was altered, or not signed by "
            "the key it carries; ask the hospital for a new request"
        )
    key = request.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("the signing request's key is not ECDSA P-256, the federation's kind")
    extensions = [type(extension.value).__name__ for extension in request.extensions]
    attributes = [attribute.oid.dotted_string for attribute in request.attributes]
    if len(request.subject) != 1 or extensions or attributes:
        asked = [request.subject.rfc4514_string(), *extensions, *attributes]
        raise ConfigError(
            f"the signing request asks for more than a hospital name ({', '.join(asked)}); the "
            "CA decides what a hospital certificate allows, so make the request with "
            "`securemed pki request`"
        )
    name = _common_name(request.subject)
    _check_hospital_names([name])
    return name, key


def _load_ca(layout: PkiLayout) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        ca_cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    except FileNotFoundError as error:
        raise ConfigError(
            f"{error.filename} is missing: name the CA folder that `securemed pki ca` made"
        ) from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{layout.ca_key} is not the federation CA's ECDSA key")
    return ca_cert, ca_key


def _record(name: str, certificate: x509.Certificate) -> IssuedCertificate:
    return IssuedCertificate(
        name=name, serial=certificate.serial_number, not_after=certificate.not_valid_after_utc
    )


def _read_index(layout: PkiLayout) -> tuple[int, list[IssuedCertificate]]:
    """The CA's last CRL number and its issued certificates (none yet: 0 and empty)."""
    try:
        data = json.loads(layout.issued_index.read_text())
        return int(data["crl_number"]), [
            IssuedCertificate(
                name=str(item["name"]),
                serial=int(item["serial"], 16),
                not_after=datetime.datetime.fromisoformat(item["not_after"]),
                revoked_at=None
                if item["revoked_at"] is None
                else datetime.datetime.fromisoformat(item["revoked_at"]),
            )
            for item in data["issued"]
        ]
    except FileNotFoundError:
        return 0, []
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{layout.issued_index} is not the CA's record of issued certificates; restore it "
            "from a backup"
        ) from None


def _write_index(layout: PkiLayout, crl_number: int, records: Sequence[IssuedCertificate]) -> None:
    data: dict[str, Any] = {
        "crl_number": crl_number,
        "issued": [
            {
                "name": record.name,
                "serial": f"{record.serial:x}",
                "not_after": record.not_after.isoformat(),
                "revoked_at": None if record.revoked_at is None else record.revoked_at.isoformat(),
            }
            for record in records
        ],
    }
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(layout.issued_index, lambda path: path.write_text(text))


def _publish_revocations(
    layout: PkiLayout,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    records: Sequence[IssuedCertificate],
    number: int,
    now: datetime.datetime,
    valid_days: int,
) -> None:
    """Sign a CRL of every revoked record and put it in place whole (readers never see half)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    for record in records:
        if record.revoked_at is not None:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(record.serial)
                .revocation_date(record.revoked_at)
                .build()
            )
    pem = builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    atomic_write(layout.revocation_list, lambda path: path.write_bytes(pem))


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


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


def _certificate(
    common_name: str,
    public_key: ec.EllipticCurvePublicKey,
    server_names: Sequence[str],
    usage: x509.ObjectIdentifier,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    valid_days: int,
) -> x509.Certificate:
    """An end-entity certificate for ``public_key``: one usage, no CA rights."""
    builder = (
        _builder(_subject(common_name), ca_cert.subject, public_key, now, valid_days)
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
    return builder.sign(ca_key, hashes.SHA256())


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
) -> x509.Certificate:
    """A new key and its certificate, both written; for parties whose key the CA may make."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _certificate(
        common_name, key.public_key(), server_names, usage, ca_cert, ca_key, now, valid_days
    )
    _write_pair(cert_path, key_path, certificate, key)
    return certificate


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _private_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_pair(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    # Created owner-only from the start (a chmod after writing leaves a window), never replaced.
    write_private_file(key_path, _private_bytes(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
