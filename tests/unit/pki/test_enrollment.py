"""Enrollment by CSR and revocation: a hospital's key never leaves its folder, the operator
signs only a request that proves its key and asks for a hospital name alone, a live name is
never issued twice, and a revocation lands in a CRL the federation CA signed."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securemed.cli import main
from securemed.errors import ConfigError
from securemed.pki import (
    PkiLayout,
    create_ca,
    init_pki,
    read_identity,
    request_certificate,
    revoke_certificate,
    sign_request,
)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _crl(layout: PkiLayout) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(layout.revocation_list.read_bytes())


def _enroll(ca: PkiLayout, folder: Path, name: str) -> Path:
    files = request_certificate(folder, name)
    certificate = folder / f"{name}.crt"
    sign_request(ca.root, files.csr.read_bytes(), certificate)
    return certificate


def _csr(
    name: x509.Name, key: ec.EllipticCurvePrivateKey, *extensions: x509.ExtensionType
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def ca(tmp_path: Path) -> PkiLayout:
    return create_ca(tmp_path / "ca")


def test_an_enrolled_hospital_holds_the_only_copy_of_its_key(ca: PkiLayout, tmp_path: Path) -> None:
    folder = tmp_path / "hospital-3"
    files = request_certificate(folder, "hospital-3")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    request = x509.load_pem_x509_csr(files.csr.read_bytes())
    assert request.subject.rfc4514_string() == "CN=hospital-3"
    assert b"PRIVATE KEY" not in files.csr.read_bytes()

    issued = sign_request(ca.root, files.csr.read_bytes(), folder / "hospital-3.crt")
    certificate = _load(folder / "hospital-3.crt")
    certificate.verify_directly_issued_by(_load(ca.ca_cert))
    assert (issued.name, issued.serial) == ("hospital-3", certificate.serial_number)
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # as init_pki issues hospitals
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    identity = read_identity(folder / "hospital-3.crt", files.key, ca.ca_cert)
    assert identity.name == "hospital-3"
    assert sorted(p.name for p in ca.root.rglob("*.key")) == ["aggregator.key", "ca.key"]


@pytest.mark.parametrize("name", ["Hospital-3", "hospital 3", "-x", "a" * 64, "aggregator"])
def test_a_bad_name_is_refused_before_any_key_is_made(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"lowercase|reserved"):
        request_certificate(tmp_path / "out", name)
    assert not list(tmp_path.rglob("*.key"))


def test_an_existing_key_is_never_replaced(tmp_path: Path) -> None:
    files = request_certificate(tmp_path, "hospital-3")
    before = files.key.read_bytes()
    with pytest.raises(ConfigError, match="never overwritten"):
        request_certificate(tmp_path, "hospital-3")
    assert files.key.read_bytes() == before


def test_a_request_altered_in_transit_is_refused(ca: PkiLayout, tmp_path: Path) -> None:
    files = request_certificate(tmp_path, "hospital-3")
    der = x509.load_pem_x509_csr(files.csr.read_bytes()).public_bytes(serialization.Encoding.DER)
    renamed = der.replace(b"hospital-3", b"hospital-4")  # same length: still parses
    forged = x509.load_der_x509_csr(renamed).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ConfigError, match="signature does not verify"):
        sign_request(ca.root, forged, tmp_path / "hospital-4.crt")
    assert not (tmp_path / "hospital-4.crt").exists()


HOSPITAL_3 = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hospital-3")])
CA_RIGHTS = x509.BasicConstraints(ca=True, path_length=None)


@pytest.mark.parametrize(
    ("subject", "curve", "extensions", "message"),
    [
        (HOSPITAL_3, ec.SECP256R1(), [CA_RIGHTS], "more than a hospital name"),
        (
            x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SecureMed"), *HOSPITAL_3]),
            ec.SECP256R1(),
            [],
            "more than a hospital name",
        ),
        (
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aggregator")]),
            ec.SECP256R1(),
            [],
            "reserved",
        ),
        (HOSPITAL_3, ec.SECP384R1(), [], "not ECDSA P-256"),
    ],
    ids=["asks-for-ca-rights", "extra-subject-field", "reserved-name", "p384-key"],
)
def test_a_request_for_more_than_a_hospital_name_is_refused(
    ca: PkiLayout, tmp_path: Path, subject, curve, extensions, message
) -> None:
    pem = _csr(subject, ec.generate_private_key(curve), *extensions)
    with pytest.raises(ConfigError, match=message):
        sign_request(ca.root, pem, tmp_path / "issued.crt")
    assert not (tmp_path / "issued.crt").exists()


def test_a_file_that_is_no_request_is_refused(ca: PkiLayout, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a PEM certificate signing request"):
        sign_request(ca.root, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", tmp_path / "x")


def test_a_live_name_is_issued_again_only_after_revocation(ca: PkiLayout, tmp_path: Path) -> None:
    first = _enroll(ca, tmp_path / "first", "hospital-3")
    again = request_certificate(tmp_path / "again", "hospital-3")
    with pytest.raises(ConfigError, match="already holds a live certificate"):
        sign_request(ca.root, again.csr.read_bytes(), tmp_path / "again" / "hospital-3.crt")
    revoked = revoke_certificate(ca.root, name="hospital-3")
    assert [record.serial for record in revoked] == [_load(first).serial_number]
    issued = sign_request(ca.root, again.csr.read_bytes(), tmp_path / "again" / "hospital-3.crt")
    assert issued.serial != revoked[0].serial


def test_names_issued_by_init_are_on_record(tmp_path: Path) -> None:
    layout = init_pki(tmp_path / "ca", ["hospital-1"])
    files = request_certificate(tmp_path / "h", "hospital-1")
    with pytest.raises(ConfigError, match="already holds a live certificate"):
        sign_request(layout.root, files.csr.read_bytes(), tmp_path / "h" / "hospital-1.crt")
    serial = _load(layout.hospital_cert("hospital-1")).serial_number
    assert [r.serial for r in revoke_certificate(layout.root, name="hospital-1")] == [serial]


def test_revocation_is_a_crl_signed_by_the_ca(ca: PkiLayout, tmp_path: Path) -> None:
    kept = _load(_enroll(ca, tmp_path / "a", "hospital-1"))
    gone = _load(_enroll(ca, tmp_path / "b", "hospital-2"))
    before = _crl(ca).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    revoke_certificate(ca.root, serial=gone.serial_number)
    crl = _crl(ca)
    ca_key = _load(ca.ca_cert).public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey) and crl.is_signature_valid(ca_key)
    assert crl.get_revoked_certificate_by_serial_number(gone.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(kept.serial_number) is None
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > datetime.datetime.now(datetime.UTC)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > before
    assert not list(ca.root.glob(".*.tmp"))  # replaced whole, nothing left half-written


@pytest.mark.parametrize(
    ("which", "message"),
    [({"name": "hospital-9"}, "no unrevoked certificate issued to 'hospital-9'"), ({}, "one of")],
)
def test_revoking_what_was_never_issued_is_refused(ca: PkiLayout, which, message) -> None:
    before = ca.revocation_list.read_bytes()
    with pytest.raises(ConfigError, match=message):
        revoke_certificate(ca.root, **which)
    assert ca.revocation_list.read_bytes() == before


def test_a_certificate_is_revoked_once(ca: PkiLayout, tmp_path: Path) -> None:
    _enroll(ca, tmp_path, "hospital-3")
    revoke_certificate(ca.root, name="hospital-3")
    with pytest.raises(ConfigError, match="no unrevoked certificate"):
        revoke_certificate(ca.root, name="hospital-3")


def test_a_folder_without_a_ca_cannot_sign(tmp_path: Path) -> None:
    files = request_certificate(tmp_path / "h", "hospital-3")
    with pytest.raises(ConfigError, match=r"ca\.crt is missing"):
        sign_request(tmp_path / "nowhere", files.csr.read_bytes(), tmp_path / "h.crt")


def test_a_key_that_is_not_the_certificates_is_refused_on_load(
    ca: PkiLayout, tmp_path: Path
) -> None:
    certificate = _enroll(ca, tmp_path / "a", "hospital-1")
    other = request_certificate(tmp_path / "b", "hospital-2")
    with pytest.raises(ConfigError, match="is not the key of"):
        read_identity(certificate, other.key, ca.ca_cert)


def test_cli_enrolls_and_revokes_a_hospital(tmp_path: Path, capsys) -> None:
    ca, hospital = tmp_path / "ca", tmp_path / "st-marys"
    assert main(["pki", "ca", "--out", str(ca), "--server-name", "agg.example.org"]) == 0
    assert main(["pki", "request", "--name", "st-marys", "--out", str(hospital)]) == 0
    csr, cert = hospital / "st-marys.csr", hospital / "st-marys.crt"
    assert main(["pki", "sign", "--pki", str(ca), "--csr", str(csr), "--out", str(cert)]) == 0
    serial = f"{_load(cert).serial_number:x}"
    assert f"serial {serial}" in capsys.readouterr().out
    assert main(["pki", "sign", "--pki", str(ca), "--csr", str(csr), "--out", str(cert)]) == 2
    assert "exists: certificates are never overwritten" in capsys.readouterr().err
    assert main(["pki", "revoke", "--pki", str(ca), "--serial", f"0x{serial}"]) == 0
    assert f"revoked 'st-marys' serial {serial}" in capsys.readouterr().out
    assert main(["pki", "revoke", "--pki", str(ca), "--name", "st-marys"]) == 2
    assert "no unrevoked certificate issued to 'st-marys'" in capsys.readouterr().err


def test_cli_refuses_a_bad_name_with_the_rule(tmp_path: Path, capsys) -> None:
    assert main(["pki", "request", "--name", "St Marys", "--out", str(tmp_path / "h")]) == 2
    assert "hospital names must be lowercase" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_cli_sign_names_a_missing_request(ca: PkiLayout, tmp_path: Path, capsys) -> None:
    argv = ["pki", "sign", "--pki", str(ca.root), "--csr", str(tmp_path / "missing.csr")]
    assert main([*argv, "--out", str(tmp_path / "x.crt")]) == 2
    assert "missing.csr does not exist" in capsys.readouterr().err


def test_cli_init_says_it_is_for_simulation(tmp_path: Path, capsys) -> None:
    assert main(["pki", "init", "--out", str(tmp_path / "certs"), "--hospitals", "1"]) == 0
    assert "local simulation" in capsys.readouterr().out
