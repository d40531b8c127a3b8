"""The aggregator's transport security, tested from outside: TLS 1.3 only (checked with the
``openssl`` command line), a client certificate from the federation CA required, and the
caller's identity taken from that certificate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

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


#: gRPC's handshake-failure line, which the start-up probe used to cause at every start
GRPC_HANDSHAKE_ERROR = "Handshake failed"
#: TLS 1.2 suites the aggregator's ECDSA certificate can serve; the second is one Python's
#: default client context does not offer
HOSTILE_SUITES = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA"


def _start_aggregator_in_a_child(
    pki, *, first_import: str, after_start: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Start a FederationServer on 127.0.0.1 in a fresh Python, ``first_import`` first; run
    ``after_start`` (with ``server`` in scope) while it serves; stop it. Logs go to stderr."""
    script = f"""
import {first_import}
import logging, sys, torch
from pathlib import Path
from securemed.errors import ConfigError
from securemed.federation.coordinator import FederationCoordinator
from securemed.pki import PkiLayout, load_identity
from securemed.transport.threaded import ThreadedFederationServer
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s", force=True
)
coordinator = FederationCoordinator(
    hospitals=["hospital-1"], global_state={{"w": torch.zeros(1)}}, total_rounds=1
)
identity = load_identity(PkiLayout(Path({str(pki.layout.root)!r})), "aggregator")
try:
    server = ThreadedFederationServer(coordinator, identity=identity, max_message_bytes=1024)
except ConfigError as error:
    print("REFUSED:", error)
    sys.exit()
with server:
{textwrap.indent(after_start or "pass", "    ")}
"""
    base = {
        k: v for k, v in os.environ.items() if k not in ("GRPC_SSL_CIPHER_SUITES", "GRPC_VERBOSITY")
    }
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "inherited",
    [None, "ECDHE-ECDSA-AES128-SHA"],
    ids=["grpc-default-suites", "a-suite-python-does-not-offer-by-default"],
)
def test_an_aggregator_that_would_accept_tls12_refuses_to_serve(pki, inherited) -> None:
    """gRPC imported before securemed.transport: the start-up probe catches it, whichever
    TLS 1.2 suite gRPC was left to accept."""
    env = {} if inherited is None else {"GRPC_SSL_CIPHER_SUITES": inherited}
    result = _start_aggregator_in_a_child(pki, first_import="grpc", env=env)
    assert "REFUSED: the aggregator would accept TLS 1.2" in result.stdout, result.stderr[-800:]


@pytest.mark.slow
def test_an_inherited_tls12_cipher_list_does_not_bring_tls12_back(pki) -> None:
    """The process inherits TLS 1.2 suites gRPC would serve; securemed.transport overrides them
    before gRPC reads them, and a TLS 1.2 client offering exactly those suites is refused."""
    handshake = f"""
import socket, ssl
client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_2
client.check_hostname = False
client.verify_mode = ssl.CERT_NONE
client.set_ciphers({HOSTILE_SUITES!r})
try:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with client.wrap_socket(raw) as connection:
            print("TLS 1.2 ACCEPTED:", connection.version(), connection.cipher())
except ssl.SSLError as error:
    print("TLS 1.2 REFUSED:", error.reason)
"""
    result = _start_aggregator_in_a_child(
        pki,
        first_import="securemed.transport, grpc",
        after_start=handshake,
        env={"GRPC_SSL_CIPHER_SUITES": HOSTILE_SUITES},
    )
    assert "TLS 1.2 REFUSED:" in result.stdout, result.stdout + result.stderr[-800:]


@pytest.mark.slow
def test_the_start_up_output_says_tls12_was_refused_without_grpcs_handshake_error(pki) -> None:
    result = _start_aggregator_in_a_child(pki, first_import="securemed.transport")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-800:]
    assert GRPC_HANDSHAKE_ERROR not in output
    lines = [line for line in output.splitlines() if "TLS 1.2 checked and refused" in line]
    assert len(lines) == 1, output[-800:]
    assert "federation server listening" in output
