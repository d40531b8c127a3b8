"""`python -m securemed.hospital`: a hospital outside Ray joins over gRPC with mutual TLS (its
certificate says who it is) and trains on its own MedMNIST-layout file; bad input ends with a
message and a non-zero status."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from securemed.federation.coordinator import FederationCoordinator
from securemed.models import build_model
from securemed.transport.threaded import ThreadedFederationServer

CLASSES = 14
LIMIT = 16 * 1024 * 1024
ROUNDS = 2

pytestmark = pytest.mark.slow  # each case starts a Python that imports torch (seconds)


def _medmnist_file(path: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 48), ("val", 8), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, size=(n, CLASSES), dtype=np.uint8)
    np.savez(path, **arrays)
    return path


def _config(path: Path) -> Path:
    config = {
        "training": {"batch_size": 8},
        "privacy": {"target_epsilon": 8.0, "accountant": "rdp"},
        "federation": {"hospitals": 1, "rounds": ROUNDS, "max_message_mb": 16},
        "secure_aggregation": {"enabled": False},  # a federation of one has no sum to hide in
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _hospital(
    target: str, name: str, folder: Path, pki, data: Path | None = None
) -> subprocess.Popen[str]:
    """Start the hospital CLI with ``name``'s certificate on a fresh config (and data file
    unless ``data`` is given)."""
    data = data if data is not None else _medmnist_file(folder / "chest.npz")
    layout = pki.layout
    args = ["--aggregator", target, "--cert", str(layout.hospital_cert(name))]
    args += ["--key", str(layout.hospital_key(name)), "--ca", str(layout.ca_cert)]
    args += ["--config", str(_config(folder / "fed.yaml")), "--data", str(data)]
    args += ["--state-dir", str(folder / "state")]  # this hospital's own ledger lives here
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "securemed.hospital", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def server(pki):
    torch.manual_seed(0)
    initial = build_model("simple_cnn", num_classes=CLASSES).state_dict()
    coordinator = FederationCoordinator(
        hospitals=["hospital-1"], global_state=initial, total_rounds=ROUNDS
    )
    with ThreadedFederationServer(
        coordinator, identity=pki.aggregator, max_message_bytes=LIMIT
    ) as running:
        yield running, {name: tensor.clone() for name, tensor in initial.items()}


def test_hospital_trains_every_round_on_its_own_file(server, pki, tmp_path: Path) -> None:
    running, initial = server
    process = _hospital(running.target, "hospital-1", tmp_path, pki)
    try:
        running.call(running.server.wait_for_hospitals(1, timeout_s=120), timeout_s=130)
        outcomes = [
            running.call(running.server.run_round(deadline_s=120), timeout_s=130)
            for _ in range(ROUNDS)
        ]
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert [o.participants for o in outcomes] == [("hospital-1",)] * ROUNDS
    ledger = tmp_path / "state" / "hospital-1" / "privacy-ledger.sqlite"
    assert f"hospital-1: 56 local images; privacy ledger {ledger};" in out  # train + val
    assert ledger.exists()
    assert "round 1: update sent" in out and "round 2: update sent" in out
    assert "federation finished: 2 rounds submitted, 0 missed, 0 declined, patient-level " in out
    assert "(patient-level)" in out  # MedMNIST: each image its own patient, and says so
    final = running.server.coordinator.global_state
    assert any(not torch.equal(final[name], initial[name]) for name in initial)


def test_a_second_run_on_a_spent_data_file_is_refused_before_dialling(
    server, pki, tmp_path: Path
) -> None:
    """The first run spends the file's whole budget (epsilon 8 over its two rounds); the
    hospital's own ledger refuses the next run on the same file, naming what was spent."""
    running, _ = server
    first = _hospital(running.target, "hospital-1", tmp_path, pki)
    try:
        running.call(running.server.wait_for_hospitals(1, timeout_s=120), timeout_s=130)
        for _ in range(ROUNDS):
            running.call(running.server.run_round(deadline_s=120), timeout_s=130)
        first.communicate(timeout=120)
    finally:
        first.kill()
    again = _hospital("127.0.0.1:1", "hospital-1", tmp_path, pki, data=tmp_path / "chest.npz")
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 2, err
    assert err.startswith("error:") and "Traceback" not in err
    assert re.search(r"has spent epsilon (7\.99|8)", err), err
    assert str(tmp_path / "state" / "hospital-1" / "privacy-ledger.sqlite") in err


def test_a_certified_non_member_is_refused_with_a_message(server, pki, tmp_path: Path) -> None:
    running, _ = server
    process = _hospital(running.target, "intruder", tmp_path, pki)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err.startswith("error:") and "'intruder' is not a member" in err
    assert "Traceback" not in err


def test_unreachable_aggregator_is_a_clear_error(pki, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = _hospital(f"127.0.0.1:{port}", "hospital-1", tmp_path, pki)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "cannot reach the aggregator" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("make_data", "message"),
    [
        (lambda d: d / "missing.npz", "missing.npz"),
        (lambda d: (d / "junk.npz").write_bytes(b"not a zip") and d / "junk.npz", "junk.npz"),
    ],
)
def test_bad_data_file_exits_2_before_dialling(pki, tmp_path: Path, make_data, message) -> None:
    process = _hospital("127.0.0.1:1", "hospital-1", tmp_path, pki, data=make_data(tmp_path))
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_a_missing_certificate_exits_2_before_dialling(pki, tmp_path: Path) -> None:
    args = ["--aggregator", "127.0.0.1:1", "--cert", str(tmp_path / "nope.crt")]
    args += ["--key", str(tmp_path / "nope.key"), "--ca", str(pki.layout.ca_cert)]
    result = subprocess.run(
        [sys.executable, "-m", "securemed.hospital", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "nope.crt is missing" in result.stderr and "Traceback" not in result.stderr
