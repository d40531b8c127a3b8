"""The aggregator's transport security, tested from outside: TLS 1.3 only (checked with the
``openssl`` command line), a client certificate from the federation CA required, and the
caller's identity taken from that certificate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from securemed.errors import AggregatorUnavailable
from securemed.federation.coordinator import FederationCoordinator
from securemed.pki import FederationIdentity
from securemed.transport.client import FederationClient
from securemed.transport.threaded import ThreadedFederationServer

LIMIT = 1 << 20


@pytest.fixture
def running(pki):
    coordinator = FederationCoordinator(
        hospitals=["hospital-1", "hospital-2"],
        global_state={"w": torch.zeros(3)},
        total_rounds=1,
    )
    with ThreadedFederationServer(
        coordinator, identity=pki.aggregator, max_message_bytes=LIMIT
    ) as server:
        yield server


def _s_client(running, pki, version: str) -> subprocess.CompletedProcess[str]:
    layout = pki.layout
    return subprocess.run(
        [
            "openssl", "s_client", "-connect", running.target, version, "-alpn", "h2",
            "-CAfile", str(layout.ca_cert),
            "-cert", str(layout.hospital_cert("hospital-1")),
            "-key", str(layout.hospital_key("hospital-1")),
        ],
        input="",
        capture_output=True,
        text=True,
        errors="replace",
        timeout=30,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_aggregator_negotiates_tls13_and_refuses_tls12(running, pki) -> None:
    modern = _s_client(running, pki, "-tls1_3")
    assert modern.returncode == 0, modern.stderr[-500:]
    assert "Protocol  : TLSv1.3" in modern.stdout or "New, TLSv1.3" in modern.stdout
    assert "Verify return code: 0 (ok)" in modern.stdout  # the aggregator's chain checks out
    legacy = _s_client(running, pki, "-tls1_2")
    assert legacy.returncode != 0
    assert "Cipher is (NONE)" in legacy.stdout


def test_a_client_certified_by_another_ca_is_refused(running, pki, foreign_pki) -> None:
    ours = pki.identity("hospital-1")
    theirs = foreign_pki.identity("hospital-1")  # same name, other CA
    impostor = FederationIdentity("hospital-1", theirs.key_pem, theirs.certificate_pem, ours.ca_pem)
    with (
        FederationClient(running.target, impostor, max_message_bytes=LIMIT, timeout_s=5) as client,
        pytest.raises(AggregatorUnavailable),
    ):
        client.join(num_samples=1)
    assert running.server.coordinator.joined == ()


def test_a_client_without_any_certificate_is_refused(running, pki) -> None:
    import grpc

    from securemed.transport import tls
    from securemed.transport.federation.v1 import federation_pb2 as pb
    from securemed.transport.federation.v1 import federation_pb2_grpc as pb_grpc

    credentials = grpc.ssl_channel_credentials(root_certificates=pki.layout.ca_cert.read_bytes())
    options = tls.channel_name_options(tls.DEFAULT_SERVER_NAME)
    with (
        grpc.secure_channel(running.target, credentials, options=options) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        pb_grpc.FederationStub(channel).Join(pb.JoinRequest(num_samples=1), timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert running.server.coordinator.joined == ()


def test_the_hospital_is_the_one_its_certificate_names(running, pki) -> None:
    with FederationClient(
        running.target, pki.identity("hospital-2"), max_message_bytes=LIMIT, timeout_s=5
    ) as client:
        client.join(num_samples=3)
    assert running.server.coordinator.joined == ("hospital-2",)


def test_an_aggregator_that_would_accept_tls12_refuses_to_serve(pki, tmp_path) -> None:
    """gRPC imported before securemed.transport: the start-up probe catches it."""
    script = f"""
import grpc  # first, so the TLS 1.3-only setting comes too late
import asyncio, torch
from pathlib import Path
from securemed.errors import ConfigError
from securemed.federation.coordinator import FederationCoordinator
from securemed.pki import PkiLayout, load_identity
from securemed.transport.server import FederationServer
coordinator = FederationCoordinator(
    hospitals=["hospital-1"], global_state={{"w": torch.zeros(1)}}, total_rounds=1
)
identity = load_identity(PkiLayout(Path({str(pki.layout.root)!r})), "aggregator")
server = FederationServer(coordinator, identity=identity, max_message_bytes=1024)
try:
    asyncio.run(server.start())
except ConfigError as error:
    print("REFUSED:", error)
"""
    env = {k: v for k, v in os.environ.items() if k != "GRPC_SSL_CIPHER_SUITES"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert "REFUSED: the aggregator would accept TLS 1.2" in result.stdout, result.stderr[-800:]
