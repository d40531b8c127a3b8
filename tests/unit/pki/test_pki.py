"""The federation CA: certificates chain to it, say who they are for, and keys stay private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from securemed.cli import main
from securemed.errors import ConfigError
from securemed.pki import certificate_common_name, init_pki


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_certificate_is_issued_by_the_federation_ca(tmp_path: Path) -> None:
    layout = init_pki(tmp_path / "pki", ["hospital-1", "st-marys"], server_names=["agg.local"])
    ca = _load(layout.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for path in (
        layout.aggregator_cert,
        layout.hospital_cert("hospital-1"),
        layout.hospital_cert("st-marys"),
    ):
        cert = _load(path)
        cert.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_hospital_identity_and_usages(tmp_path: Path) -> None:
    layout = init_pki(tmp_path, ["st-marys"], server_names=["agg.local", "10.0.0.5"])
    hospital = layout.hospital_cert("st-marys")
    assert certificate_common_name(hospital.read_bytes()) == "st-marys"
    usage = _load(hospital).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    server = _load(layout.aggregator_cert)
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["agg.local"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]


def test_a_foreign_ca_does_not_vouch_for_our_hospitals(tmp_path: Path) -> None:
    ours = init_pki(tmp_path / "ours", ["hospital-1"])
    theirs = init_pki(tmp_path / "theirs", ["hospital-1"])
    with pytest.raises(InvalidSignature):  # same CA name, different key
        _load(theirs.hospital_cert("hospital-1")).verify_directly_issued_by(_load(ours.ca_cert))


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    layout = init_pki(tmp_path, ["hospital-1"])
    for key in (layout.ca_key, layout.aggregator_key, layout.hospital_key("hospital-1")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_an_existing_ca_is_never_replaced(tmp_path: Path) -> None:
    layout = init_pki(tmp_path, ["hospital-1"])
    before = layout.ca_cert.read_bytes()
    with pytest.raises(ConfigError, match="already holds a federation CA"):
        init_pki(tmp_path, ["hospital-2"])
    assert layout.ca_cert.read_bytes() == before


@pytest.mark.parametrize(
    ("hospitals", "message"),
    [
        ([], "at least one hospital"),
        (["Hospital 1"], "lowercase"),
        (["a", "a"], "unique"),
        (["aggregator"], "reserved"),
    ],
)
def test_bad_hospital_names_are_refused(tmp_path: Path, hospitals, message) -> None:
    with pytest.raises(ConfigError, match=message):
        init_pki(tmp_path, hospitals)
    assert not (tmp_path / "ca.key").exists()


def test_cli_issues_the_jobs_hospital_names_and_reports_errors(tmp_path: Path, capsys) -> None:
    assert main(["pki", "init", "--out", str(tmp_path / "certs"), "--hospitals", "3"]) == 0
    issued = sorted(p.name for p in (tmp_path / "certs" / "hospitals").glob("*.crt"))
    assert issued == ["hospital-1.crt", "hospital-2.crt", "hospital-3.crt"]
    assert main(["pki", "init", "--out", str(tmp_path / "certs")]) == 2
    assert "already holds a federation CA" in capsys.readouterr().err
