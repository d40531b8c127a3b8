"""Secure aggregation over real gRPC with mutual TLS: hospitals take the four secure steps
through the same client they use in production; the aggregator applies only the mean of the
survivors, recovers a hospital that vanished after sharing, aborts a round with too few
survivors (and runs the next one), and refuses forged, replayed and misrouted messages."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from securemed.errors import ProtocolViolation, RoundAborted
from securemed.federation.coordinator import FederationCoordinator, HospitalReport
from securemed.federation.secure_round import SecureSettings
from securemed.hospital import secure_submit
from securemed.secagg import SecAggClient
from securemed.secagg.protocol import EncryptedShare
from securemed.transport.client import FederationClient
from securemed.transport.threaded import ThreadedFederationServer

LIMIT = 1 << 22
SHAPE = (50, 20)
CLIP, BITS = 1.0, 16
STEP = 2 * CLIP / (2**BITS - 1)  # one quantization level


def _report() -> HospitalReport:
    return HospitalReport(
        num_samples=10,
        epsilon=1.0,
        update_bytes=0,
    )


def _update(index: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(index)
    return {
        "w": torch.rand(SHAPE, generator=generator) - 0.5,
        "b": torch.full((5,), 0.1 * index),
    }


class Federation:
    def __init__(self, pki, names, settings: SecureSettings, *, rounds: int = 1) -> None:
        self.names = names
        coordinator = FederationCoordinator(
            hospitals=names,
            global_state={"w": torch.zeros(SHAPE), "b": torch.zeros(5)},
            total_rounds=rounds,
            secure=settings,
        )
        self.served = ThreadedFederationServer(
            coordinator, identity=pki.aggregator, max_message_bytes=LIMIT
        )
        self.clients = {
            name: FederationClient(
                self.served.target, pki.identity(name), max_message_bytes=LIMIT, timeout_s=30
            )
            for name in names
        }
        for client in self.clients.values():
            client.join(num_samples=10)

    def open_round(self, deadline_s: float = 30.0):
        after = self.served.server.coordinator.round
        pending = self.served.spawn(self.served.server.run_round(deadline_s=deadline_s))
        views = {
            name: client.round_status(after_round=after, wait_s=10)
            for name, client in self.clients.items()
        }
        return pending, views

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.served.close()


@pytest.fixture
def make_federation(pki):
    made: list[Federation] = []

    def make(count: int, settings: SecureSettings, **kwargs) -> Federation:
        federation = Federation(
            pki, [f"hospital-{i}" for i in range(1, count + 1)], settings, **kwargs
        )
        made.append(federation)
        return federation

    yield make
    for federation in made:
        federation.close()


def _expected_mean(names) -> dict[str, torch.Tensor]:
    index = {f"hospital-{i}": i for i in range(1, 9)}
    updates = [_update(index[name]) for name in names]
    return {key: torch.stack([u[key] for u in updates]).mean(0) for key in ("w", "b")}


def test_the_aggregator_applies_the_mean_of_the_masked_updates(make_federation) -> None:
    federation = make_federation(4, SecureSettings(phase_seconds=20))
    pending, views = federation.open_round()
    assert all(view.secure is not None for view in views.values())
    with ThreadPoolExecutor(4) as pool:
        sizes = list(
            pool.map(
                lambda name: secure_submit(
                    federation.clients[name], views[name], _update(int(name[-1])), _report()
                ),
                federation.names,
            )
        )
    assert sizes == [4, 4, 4, 4]
    outcome = pending.result(30)
    assert outcome.participants == tuple(federation.names) and outcome.aborted is None
    state = federation.served.server.coordinator.global_state
    expected = _expected_mean(federation.names)
    for key in ("w", "b"):
        assert torch.allclose(state[key], expected[key], atol=STEP)  # quantization only


def _abandon_after_sharing(client: FederationClient, view) -> None:
    """A hospital that advertises and shares its keys, then dies (never uploads)."""
    protocol = SecAggClient(client.hospital, view.secure.info, view.secure.params, client.identity)
    adverts = client.advertise_keys(view.round, protocol.advertise(), wait_s=30)
    client.share_keys(view.round, protocol.share(adverts), wait_s=30)
    client.close()


def test_a_hospital_killed_after_sharing_is_recovered(make_federation) -> None:
    federation = make_federation(5, SecureSettings(threshold=3, phase_seconds=3))
    pending, views = federation.open_round()
    survivors = federation.names[:4]
    with ThreadPoolExecutor(5) as pool:
        futures = [
            pool.submit(
                secure_submit,
                federation.clients[name],
                views[name],
                _update(int(name[-1])),
                _report(),
            )
            for name in survivors
        ]
        pool.submit(_abandon_after_sharing, federation.clients["hospital-5"], views["hospital-5"])
        assert [future.result(60) for future in futures] == [4, 4, 4, 4]
    outcome = pending.result(30)
    assert outcome.participants == tuple(survivors)
    assert outcome.missing == ("hospital-5",)
    state = federation.served.server.coordinator.global_state
    expected = _expected_mean(survivors)
    for key in ("w", "b"):
        assert torch.allclose(state[key], expected[key], atol=STEP)


def test_below_the_threshold_the_round_aborts_and_the_next_round_runs(make_federation) -> None:
    federation = make_federation(4, SecureSettings(min_survivors=3, phase_seconds=2), rounds=2)
    pending, views = federation.open_round()
    with ThreadPoolExecutor(4) as pool:
        honest = [
            pool.submit(
                secure_submit, federation.clients[n], views[n], _update(int(n[-1])), _report()
            )
            for n in federation.names[:2]
        ]
        for name in federation.names[2:]:
            pool.submit(_abandon_after_sharing, federation.clients[name], views[name])
        for future in honest:
            with pytest.raises(RoundAborted):
                future.result(60)
    outcome = pending.result(30)
    assert outcome.participants == () and "fewer than the 3 needed" in (outcome.aborted or "")
    state = federation.served.server.coordinator.global_state
    assert torch.equal(state["w"], torch.zeros(SHAPE))  # nothing applied
    assert federation.served.server.coordinator.round == 1


# -- refusals over the wire --------------------------------------------------------------------


def _protocol(federation, name, view):
    client = federation.clients[name]
    return SecAggClient(name, view.secure.info, view.secure.params, client.identity)


def test_keys_signed_for_another_hospital_are_refused_with_invalid_argument(
    make_federation,
) -> None:
    federation = make_federation(4, SecureSettings(phase_seconds=1))
    pending, views = federation.open_round(deadline_s=3)
    advert = _protocol(federation, "hospital-2", views["hospital-2"]).advertise()
    with pytest.raises(ProtocolViolation, match="signed for 'hospital-2'"):
        federation.clients["hospital-1"].advertise_keys(1, advert, wait_s=5)
    federation.served.call(federation.served.server.finish())
    with pytest.raises(Exception):  # noqa: B017 - the round ends either way
        pending.result(30)


def test_an_advert_replayed_from_an_old_round_is_refused(make_federation) -> None:
    federation = make_federation(2, SecureSettings(phase_seconds=2), rounds=2)
    pending, views = federation.open_round(deadline_s=3)
    old = _protocol(federation, "hospital-1", views["hospital-1"]).advertise()
    pending.result(30)  # nobody advertised: round 1 aborts
    pending, views = federation.open_round(deadline_s=3)
    with pytest.raises(ProtocolViolation, match="does not verify"):
        federation.clients["hospital-1"].advertise_keys(2, old, wait_s=5)
    pending.result(30)


def test_a_share_for_a_non_neighbour_is_refused(make_federation) -> None:
    federation = make_federation(8, SecureSettings(neighbours=4, threshold=3, phase_seconds=3))
    pending, views = federation.open_round(deadline_s=20)
    protocols = {name: _protocol(federation, name, views[name]) for name in federation.names}
    with ThreadPoolExecutor(8) as pool:
        adverts = dict(
            zip(
                federation.names,
                pool.map(
                    lambda n: federation.clients[n].advertise_keys(
                        1, protocols[n].advertise(), wait_s=30
                    ),
                    federation.names,
                ),
                strict=True,
            )
        )
    name = "hospital-1"
    neighbours = protocols[name].neighbours
    stranger = next(n for n in federation.names if n != name and n not in neighbours)
    shares = protocols[name].share(adverts[name])
    bogus = [*shares[:-1], EncryptedShare(name, stranger, shares[-1].ciphertext)]
    with pytest.raises(ProtocolViolation, match="not its neighbour"):
        federation.clients[name].share_keys(1, bogus, wait_s=5)
    federation.served.call(federation.served.server.finish())
    with pytest.raises(Exception):  # noqa: B017
        pending.result(30)


def test_a_plain_update_in_a_secure_round_is_refused(make_federation) -> None:
    federation = make_federation(2, SecureSettings(phase_seconds=1))
    pending, _ = federation.open_round(deadline_s=2)
    with pytest.raises(ProtocolViolation, match="never sent in the clear"):
        federation.clients["hospital-1"].submit_update(1, _update(1), _report())
    pending.result(30)
