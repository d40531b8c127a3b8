"""The clinician registry: tokens, key registration, rotation and revocation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from securemed.crypto.registry import ClinicianRegistry
from securemed.crypto.sealing import generate_clinician_key, key_id
from securemed.errors import ClinicianRejected


def _reason(call) -> str:
    with pytest.raises(ClinicianRejected) as caught:
        call()
    return caught.value.reason


def test_registration_gives_a_token_that_authenticates_and_an_active_key(tmp_path: Path) -> None:
    registry = ClinicianRegistry(tmp_path / "clinicians.db")
    _, public = generate_clinician_key()
    token, identifier = registry.register("dr-a", public)
    assert registry.authenticate(token) == "dr-a"
    key = registry.active_key("dr-a")
    assert key.key_id == identifier == key_id(bytes.fromhex(public))
    # only the token's hash is stored
    with sqlite3.connect(tmp_path / "clinicians.db") as db:
        dump = "\n".join(db.iterdump())
    assert token not in dump


def test_rotation_retires_the_old_key_and_revocation_leaves_none(tmp_path: Path) -> None:
    registry = ClinicianRegistry(tmp_path / "clinicians.db")
    old_token, _ = registry.register("dr-a", generate_clinician_key()[1])
    _, newer = generate_clinician_key()
    new_token, rotated = registry.rotate("dr-a", newer)
    assert registry.active_key("dr-a").key_id == rotated
    # the rotation replaces the bearer token: the old one no longer authenticates
    assert registry.authenticate(new_token) == "dr-a"
    assert _reason(lambda: registry.authenticate(old_token)) == "invalid_token"
    assert registry.active_key("dr-a").public_key == bytes.fromhex(newer)
    registry.revoke("dr-a")
    assert _reason(lambda: registry.active_key("dr-a")) == "key_revoked"
    # the state survives reopening the database
    assert _reason(lambda: ClinicianRegistry(tmp_path / "clinicians.db").active_key("dr-a")) == (
        "key_revoked"
    )


def test_bad_input_is_refused_with_a_stable_reason(tmp_path: Path) -> None:
    registry = ClinicianRegistry(tmp_path / "clinicians.db")
    _, public = generate_clinician_key()
    registry.register("dr-a", public)
    assert _reason(lambda: registry.authenticate("not-a-token")) == "invalid_token"
    assert _reason(lambda: registry.active_key("dr-b")) == "unknown_clinician"
    assert _reason(lambda: registry.rotate("dr-b", public)) == "unknown_clinician"
    assert _reason(lambda: registry.register("dr-a", generate_clinician_key()[1])) == (
        "already_registered"
    )
    assert _reason(lambda: registry.register("dr-c", public)) == "key_reused"
    assert _reason(lambda: registry.register("dr-d", "02" + "00" * 32)) == "invalid_public_key"
    assert _reason(lambda: registry.register("dr-e", "zz")) == "invalid_public_key"


def test_refusals_cross_process_boundaries_with_their_reason() -> None:
    """Serve replicas pickle exceptions: the stable reason must survive the trip."""
    import pickle

    error = pickle.loads(pickle.dumps(ClinicianRejected("key_revoked", "revoked")))
    assert isinstance(error, ClinicianRejected)
    assert (error.reason, str(error)) == ("key_revoked", "revoked")
