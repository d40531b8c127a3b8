"""`securemed keygen` and `securemed decrypt`: a clinician's side of sealed reports."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from securemed.cli import main
from securemed.crypto.sealing import ReportSealer

REPORT = "FINDINGS: No pneumothorax. IMPRESSION: No acute cardiopulmonary process."


def _setup(tmp_path: Path, capsys) -> tuple[Path, Path, ReportSealer]:
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    capsys.readouterr()
    service = Ed25519PrivateKey.generate()
    service_pem = tmp_path / "service.pub.pem"
    service_pem.write_bytes(
        service.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return tmp_path / "keys", service_pem, ReportSealer(service)


def _envelope(tmp_path: Path, keys: Path, sealer: ReportSealer) -> Path:
    public = bytes.fromhex((keys / "clinician.pub").read_text().strip())
    path = tmp_path / "envelope.json"
    sealed = sealer.seal(REPORT, recipient=public, request_id="r1", model_version="m1")
    path.write_text(json.dumps(sealed))
    return path


def test_keygen_then_decrypt_prints_the_report_once(tmp_path: Path, capsys) -> None:
    keys, service_pem, sealer = _setup(tmp_path, capsys)
    assert stat.S_IMODE((keys / "clinician.key").stat().st_mode) == 0o600
    envelope = _envelope(tmp_path, keys, sealer)
    args = ["decrypt", "--key", str(keys / "clinician.key"), "--service-key", str(service_pem)]
    assert main([*args, str(envelope)]) == 0
    assert capsys.readouterr().out.strip() == REPORT
    assert main([*args, str(envelope)]) == 2  # the second opening is a replay
    err = capsys.readouterr().err
    assert "envelope refused (replayed)" in err and REPORT not in err


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys) -> None:
    _setup(tmp_path, capsys)
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_decrypt_explains_unreadable_inputs(tmp_path: Path, capsys) -> None:
    keys, service_pem, sealer = _setup(tmp_path, capsys)
    args = ["decrypt", "--key", str(keys / "clinician.key")]
    assert main([*args, "--service-key", str(service_pem), str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    envelope = _envelope(tmp_path, keys, sealer)
    assert main([*args, "--service-key", str(keys / "clinician.pub"), str(envelope)]) == 2
    assert "cannot be read" in capsys.readouterr().err
