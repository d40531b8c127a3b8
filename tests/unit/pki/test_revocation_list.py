"""The aggregator's view of revocation (:class:`securemed.transport.tls.RevocationList`): only a
list the federation CA signed is used, a new one takes effect at the next check, and nothing
put in its place (a foreign list, an older one, no file) brings a revoked hospital back."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from securemed.errors import CertificateRevoked, ConfigError, UnknownHospital
from securemed.pki import (
    PkiLayout,
    create_ca,
    request_certificate,
    revoke_certificate,
    sign_request,
)
from securemed.transport.status import code_for
from securemed.transport.tls import RevocationList, caller_identity


class _Context:
    """The part of a gRPC servicer context that :func:`caller_identity` reads."""

    def __init__(self, name: str, certificate_pem: bytes) -> None:
        self._auth = {"x509_common_name": [name.encode()], "x509_pem_cert": [certificate_pem]}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def _enroll(ca: PkiLayout, folder: Path, name: str) -> x509.Certificate:
    files = request_certificate(folder, name)
    sign_request(ca.root, files.csr.read_bytes(), folder / f"{name}.crt")
    return x509.load_pem_x509_certificate((folder / f"{name}.crt").read_bytes())


def _replace(path: Path, data: bytes) -> None:
    """Put ``data`` in place the way ``pki revoke`` does: a new file renamed over the old."""
    temporary = path.with_name("incoming.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@pytest.fixture
def ca(tmp_path: Path) -> PkiLayout:
    return create_ca(tmp_path / "ca")


@pytest.fixture
def hospital(ca: PkiLayout, tmp_path: Path) -> x509.Certificate:
    return _enroll(ca, tmp_path / "hospital-3", "hospital-3")


def test_a_revocation_takes_effect_at_the_next_check(ca: PkiLayout, hospital) -> None:
    revocations = RevocationList(ca.revocation_list, ca_pem=ca.ca_cert.read_bytes())
    assert not revocations.is_revoked(hospital)
    revoke_certificate(ca.root, name="hospital-3")
    assert revocations.is_revoked(hospital)


def test_a_list_from_another_ca_is_refused_at_load(ca: PkiLayout, tmp_path: Path) -> None:
    theirs = create_ca(tmp_path / "theirs")
    with pytest.raises(ConfigError, match="not signed by the federation CA"):
        RevocationList(theirs.revocation_list, ca_pem=ca.ca_cert.read_bytes())


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "is missing"), (b"-----BEGIN X509 CRL-----\nAAAA\n", "not a PEM X.509")],
    ids=["missing", "garbage"],
)
def test_a_missing_or_unreadable_list_is_refused_at_load(ca: PkiLayout, content, message) -> None:
    path = ca.root / "other.crl.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        RevocationList(path, ca_pem=ca.ca_cert.read_bytes())


@pytest.mark.parametrize("replacement", ["foreign", "older", "removed"])
def test_nothing_put_in_its_place_undoes_a_revocation(
    ca: PkiLayout, hospital, tmp_path: Path, replacement: str
) -> None:
    older = ca.revocation_list.read_bytes()
    revoke_certificate(ca.root, name="hospital-3")
    revocations = RevocationList(ca.revocation_list, ca_pem=ca.ca_cert.read_bytes())
    if replacement == "foreign":
        _replace(ca.revocation_list, create_ca(tmp_path / "theirs").revocation_list.read_bytes())
    elif replacement == "older":
        _replace(ca.revocation_list, older)
    else:
        ca.revocation_list.unlink()
    assert revocations.is_revoked(hospital)


def test_a_newer_list_replaces_one_that_was_ignored(ca: PkiLayout, hospital, tmp_path) -> None:
    revocations = RevocationList(ca.revocation_list, ca_pem=ca.ca_cert.read_bytes())
    ca.revocation_list.unlink()
    assert not revocations.is_revoked(hospital)
    revoke_certificate(ca.root, name="hospital-3")  # writes the list again, signed and newer
    assert revocations.is_revoked(hospital)


def test_a_revoked_caller_is_refused_by_name(ca: PkiLayout, hospital, tmp_path: Path) -> None:
    other = _enroll(ca, tmp_path / "hospital-1", "hospital-1")
    revocations = RevocationList(ca.revocation_list, ca_pem=ca.ca_cert.read_bytes())
    revoke_certificate(ca.root, name="hospital-3")
    pem = (tmp_path / "hospital-3" / "hospital-3.crt").read_bytes()
    with pytest.raises(CertificateRevoked, match="'hospital-3'") as refused:
        caller_identity(_Context("hospital-3", pem), revocations)
    assert isinstance(refused.value, UnknownHospital)  # refused as a non-member is
    assert code_for(refused.value) is grpc.StatusCode.PERMISSION_DENIED
    assert f"{hospital.serial_number:x}" in str(refused.value)
    other_pem = (tmp_path / "hospital-1" / "hospital-1.crt").read_bytes()
    assert caller_identity(_Context("hospital-1", other_pem), revocations) == (
        "hospital-1",
        other_pem,
    )
    assert not revocations.is_revoked(other)
