"""The TLS 1.2 start-up probe and the TLS 1.3-only setting, without gRPC: the probe is pointed at
a bare socket that records its ClientHello and answers with a chosen first byte."""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

import securemed.transport
from securemed.transport import (
    CIPHER_SUITES_VARIABLE,
    QUIET_VERBOSITY,
    TLS12_DISABLED_SUITES,
    VERBOSITY_VARIABLE,
    tls,
)

ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])  # fatal handshake_failure
HANDSHAKE = bytes([0x16, 0x03, 0x03, 0x00, 0x00])  # the start of a ServerHello record


@contextlib.contextmanager
def answering(first_record: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """A one-connection server on 127.0.0.1 that keeps the ClientHello and answers it."""
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                header = connection.recv(5, socket.MSG_WAITALL)
                length = int.from_bytes(header[3:5], "big")
                received.append(header + connection.recv(length, socket.MSG_WAITALL))
                connection.sendall(first_record)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield listener.getsockname()[1], received
        thread.join(5)


def offered_suites(client_hello: bytes) -> set[int]:
    """The cipher suite codes a TLS 1.2 ClientHello record offers."""
    # record header (5), handshake header (4), version (2), random (32), then the session id
    at = 5 + 4 + 2 + 32
    at += 1 + client_hello[at]
    length = int.from_bytes(client_hello[at : at + 2], "big")
    at += 2
    return {int.from_bytes(client_hello[i : i + 2], "big") for i in range(at, at + length, 2)}


def default_client_hello() -> bytes:
    """What a TLS 1.2-only probe built on Python's default context would send."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    with contextlib.suppress(ssl.SSLWantReadError):
        context.wrap_bio(ssl.MemoryBIO(), outgoing).do_handshake()
    return outgoing.read()


def suite_code(name: str) -> int:
    by_name = {c["name"]: c["id"] & 0xFFFF for c in tls.tls12_probe_context().get_ciphers()}
    return by_name[name]


def test_the_probe_offers_tls12_suites_pythons_default_context_leaves_out() -> None:
    with answering(ALERT) as (port, received):
        tls.refuses_tls12("127.0.0.1", port)
    probe, default = offered_suites(received[0]), offered_suites(default_client_hello())
    assert default < probe
    # SHA-1 CBC suites: a server allowed only one of these passed the old, default-suite probe
    for name in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES256-SHA", "AES128-SHA"):
        assert suite_code(name) in probe - default, name


def test_the_probe_offers_no_tls13() -> None:
    context = tls.tls12_probe_context()
    assert context.maximum_version is ssl.TLSVersion.TLSv1_2
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(("answer", "refused"), [(ALERT, True), (b"", True), (HANDSHAKE, False)])
def test_an_alert_or_a_hang_up_is_a_refusal_and_a_server_hello_is_not(
    answer: bytes, refused: bool
) -> None:
    with answering(answer) as (port, _):
        assert tls.refuses_tls12("127.0.0.1", port) is refused


def test_an_inherited_cipher_list_does_not_survive_importing_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CIPHER_SUITES_VARIABLE, "ECDHE-ECDSA-AES128-GCM-SHA256")
    importlib.reload(securemed.transport)
    assert os.environ[CIPHER_SUITES_VARIABLE] == TLS12_DISABLED_SUITES


def test_grpc_is_quiet_unless_the_operator_chose_a_verbosity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(VERBOSITY_VARIABLE, raising=False)
    importlib.reload(securemed.transport)
    assert os.environ[VERBOSITY_VARIABLE] == QUIET_VERBOSITY
    monkeypatch.setenv(VERBOSITY_VARIABLE, "DEBUG")
    importlib.reload(securemed.transport)
    assert os.environ[VERBOSITY_VARIABLE] == "DEBUG"
