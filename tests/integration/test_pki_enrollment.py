"""A federation whose hospitals enrolled by CSR, over real gRPC on 127.0.0.1.

Three hospitals each make their key in a folder of their own (`securemed pki request`), the
operator signs their requests (`securemed pki sign`), and a plain federation runs. After round 1
the operator revokes one hospital (`securemed pki revoke`): the running aggregator refuses its
next call with PERMISSION_DENIED, without a restart, while the other two finish.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import torch

from securemed.cli import main
from securemed.errors import CertificateRevoked
from securemed.federation.coordinator import FederationCoordinator, HospitalReport, Phase
from securemed.pki import FederationIdentity, PkiLayout, load_identity, read_identity
from securemed.transport import tls
from securemed.transport.client import FederationClient
from securemed.transport.federation.v1 import federation_pb2 as pb
from securemed.transport.federation.v1 import federation_pb2_grpc as pb_grpc
from securemed.transport.threaded import ThreadedFederationServer

HOSPITALS = ("hospital-1", "hospital-2", "hospital-3")
REVOKED = "hospital-3"
LIMIT = 64 * 1024
ROUNDS = 3
#: a round waits this long for the revoked hospital, which is still selected but never submits
DEADLINE_S = 1.0


def _enroll(ca: Path, folder: Path, name: str) -> FederationIdentity:
    """What a hospital and the operator each run; the hospital keeps only its own folder."""
    assert main(["pki", "request", "--name", name, "--out", str(folder)]) == 0
    certificate = folder / f"{name}.crt"
    csr = folder / f"{name}.csr"  # the only file that travels to the operator
    assert (
        main(["pki", "sign", "--pki", str(ca), "--csr", str(csr), "--out", str(certificate)]) == 0
    )
    # the hospital's command line reads the same three files (--cert, --key, --ca)
    return read_identity(certificate, folder / f"{name}.key", ca / "ca.crt", name)


def _round(server: ThreadedFederationServer, clients: dict[str, FederationClient], number: int):
    pending = server.spawn(server.server.run_round(deadline_s=DEADLINE_S))
    for name, client in clients.items():
        view = client.round_status(after_round=number - 1, wait_s=5)
        assert (view.round, view.phase) == (number, Phase.OPEN), name
        update = {key: torch.ones_like(t) for key, t in client.global_model(number).items()}
        client.submit_update(number, update, HospitalReport(num_samples=10, epsilon=None))
    return pending.result(10)


def test_a_hospital_revoked_mid_federation_is_refused_while_the_others_finish(
    tmp_path: Path, capsys
) -> None:
    ca = tmp_path / "operator" / "ca"
    assert main(["pki", "ca", "--out", str(ca)]) == 0
    identities = {name: _enroll(ca, tmp_path / name, name) for name in HOSPITALS}
    for name in HOSPITALS:  # each key exists once, in its hospital's folder
        assert [p.relative_to(tmp_path) for p in tmp_path.rglob(f"{name}.key")] == [
            Path(name, f"{name}.key")
        ]
    assert sorted(p.name for p in ca.rglob("*.key")) == ["aggregator.key", "ca.key"]

    layout = PkiLayout(ca)
    coordinator = FederationCoordinator(
        hospitals=HOSPITALS, global_state={"w": torch.zeros(2, 2)}, total_rounds=ROUNDS
    )
    revocations = tls.RevocationList(layout.revocation_list, ca_pem=layout.ca_cert.read_bytes())
    with ThreadedFederationServer(
        coordinator,
        identity=load_identity(layout, "aggregator"),
        max_message_bytes=LIMIT,
        revocations=revocations,
    ) as server:
        clients = {
            name: FederationClient(server.target, identity, max_message_bytes=LIMIT, timeout_s=10)
            for name, identity in identities.items()
        }
        opened = list(clients.values())
        try:
            for client in clients.values():
                assert client.join(num_samples=10) == ROUNDS
            first = _round(server, clients, 1)
            assert first.participants == HOSPITALS

            assert main(["pki", "revoke", "--pki", str(ca), "--name", REVOKED]) == 0
            revoked = clients.pop(REVOKED)
            with pytest.raises(CertificateRevoked, match=f"'{REVOKED}'"):
                revoked.round_status(after_round=1, wait_s=1)
            channel = grpc.secure_channel(
                server.target,
                tls.channel_credentials(identities[REVOKED]),
                options=tls.channel_name_options(tls.DEFAULT_SERVER_NAME),
            )
            with channel, pytest.raises(grpc.RpcError) as refused:
                pb_grpc.FederationStub(channel).Join(pb.JoinRequest(num_samples=1), timeout=10)
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED

            for number in range(2, ROUNDS + 1):
                outcome = _round(server, clients, number)
                assert outcome.participants == ("hospital-1", "hospital-2")
                assert outcome.missing == (REVOKED,)
            server.call(server.server.finish())
            for client in clients.values():
                assert client.round_status(after_round=ROUNDS, wait_s=5).phase is Phase.FINISHED
            with pytest.raises(CertificateRevoked):
                revoked.global_model(ROUNDS)
        finally:
            for client in opened:
                client.close()
    assert torch.allclose(coordinator.global_state["w"], torch.full((2, 2), float(ROUNDS)))
    assert "-----BEGIN" not in capsys.readouterr().out  # no key or certificate on the console
