"""The service state folder: created once, secrets owner-only, never overwritten."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from securemed.crypto.sealing import (
    EnvelopeOpener,
    ReplayCache,
    ReportSealer,
    generate_clinician_key,
)
from securemed.errors import ConfigError
from securemed.serving.state import (
    ADMIN_TOKEN_HASH,
    DEIDENTIFICATION_KEY,
    SIGNING_KEY,
    ServiceState,
    init_service_state,
)


def test_init_writes_owner_only_secrets_and_returns_the_admin_token_once(tmp_path: Path) -> None:
    state, token = init_service_state(tmp_path / "state")
    for name in (SIGNING_KEY, DEIDENTIFICATION_KEY, ADMIN_TOKEN_HASH):
        assert stat.S_IMODE((state.root / name).stat().st_mode) == 0o600
    assert state.is_admin(token) and not state.is_admin(token + "x")
    assert token not in "".join(p.read_text(errors="ignore") for p in state.root.iterdir())
    assert len(state.deidentification_key()) == 32
    assert state.registry().clinician_count() == 0


def test_the_signing_key_seals_what_the_published_public_key_verifies(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    state, _ = init_service_state(tmp_path / "state")
    private, public = generate_clinician_key()
    envelope = ReportSealer(state.signing_key()).seal(
        "FINDINGS: x IMPRESSION: y", recipient=bytes.fromhex(public), request_id="r",
        model_version="m",
    )  # fmt: skip
    service_key = load_pem_public_key(state.signing_public_pem())
    opener = EnvelopeOpener(private, service_key, ReplayCache(tmp_path / "seen.db"))
    assert opener.open(envelope).report == "FINDINGS: x IMPRESSION: y"


def test_an_existing_state_is_never_overwritten(tmp_path: Path) -> None:
    state, _ = init_service_state(tmp_path / "state")
    key = (state.root / SIGNING_KEY).read_bytes()
    with pytest.raises(ConfigError, match="never overwritten"):
        init_service_state(tmp_path / "state")
    assert (state.root / SIGNING_KEY).read_bytes() == key


def test_a_missing_state_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="serve-init"):
        ServiceState(tmp_path / "nowhere").signing_key()


def test_serve_init_leaves_the_admin_token_in_an_owner_only_file(tmp_path: Path, capsys) -> None:
    from securemed.cli import main
    from securemed.serving.state import ADMIN_TOKEN_FILE

    assert main(["serve-init", "--state", str(tmp_path / "state")]) == 0
    token_file = tmp_path / "state" / ADMIN_TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert ServiceState(tmp_path / "state").is_admin(token_file.read_text().strip())
    assert token_file.read_text().strip() not in capsys.readouterr().out
    assert main(["serve-init", "--state", str(tmp_path / "state")]) == 2
