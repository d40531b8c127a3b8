"""The certificates `securemed pki init` issues work for mutual TLS in gRPC's own TLS stack:
a CA-signed hospital gets through and is identified by its certificate; a hospital whose
certificate comes from another CA, or that has none, is refused in the handshake."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
import pytest

from securemed.pki import init_pki

METHOD = "/securemed.test.Echo/WhoAmI"


def _who_am_i(request: bytes, context: grpc.ServicerContext) -> bytes:
    names = context.auth_context().get("x509_common_name", [b""])
    return names[0]


@pytest.fixture
def pki_server(tmp_path: Path):
    layout = init_pki(tmp_path / "ours", ["hospital-1"])
    credentials = grpc.ssl_server_credentials(
        [(layout.aggregator_key.read_bytes(), layout.aggregator_cert.read_bytes())],
        root_certificates=layout.ca_cert.read_bytes(),
        require_client_auth=True,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(_who_am_i)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("securemed.test.Echo", {"WhoAmI": handler})]
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield layout, f"localhost:{port}", tmp_path
    server.stop(grace=None)


def _call(target: str, ca: bytes, key: bytes | None, cert: bytes | None) -> bytes:
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    with grpc.secure_channel(target, credentials) as channel:
        return channel.unary_unary(METHOD)(b"", timeout=10)


def test_ca_signed_hospital_is_identified_by_its_certificate(pki_server) -> None:
    layout, target, _ = pki_server
    answer = _call(
        target,
        layout.ca_cert.read_bytes(),
        layout.hospital_key("hospital-1").read_bytes(),
        layout.hospital_cert("hospital-1").read_bytes(),
    )
    assert answer == b"hospital-1"


def test_foreign_or_missing_client_certificate_is_refused(pki_server) -> None:
    layout, target, folder = pki_server
    foreign = init_pki(folder / "theirs", ["hospital-1"])
    for key, cert in (
        (foreign.hospital_key("hospital-1"), foreign.hospital_cert("hospital-1")),
        (None, None),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            _call(
                target,
                layout.ca_cert.read_bytes(),
                key.read_bytes() if key else None,
                cert.read_bytes() if cert else None,
            )
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
