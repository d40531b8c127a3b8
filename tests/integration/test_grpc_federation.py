"""The aggregator's gRPC server and the hospital's client over real gRPC on 127.0.0.1.

No Ray here: the server runs on an asyncio loop in a thread, as it does inside the actor.
Every connection is mutual TLS with the session's test PKI. Every refusal must carry a clear
status, change nothing, and leave the server serving others.
"""

import asyncio
import threading

import grpc
import numpy as np
import pytest
import torch

from securemed.errors import (
    FederationFinished,
    InvalidUpdate,
    NotSelected,
    StaleRound,
    UnknownHospital,
)
from securemed.federation.coordinator import FederationCoordinator, HospitalReport, Phase
from securemed.transport import tls
from securemed.transport.client import FederationClient
from securemed.transport.federation.v1 import federation_pb2 as pb
from securemed.transport.federation.v1 import federation_pb2_grpc as pb_grpc
from securemed.transport.threaded import ThreadedFederationServer

HOSPITALS = ["hospital-1", "hospital-2"]
LIMIT = 64 * 1024


def _server(pki, **coordinator_args):
    coordinator = FederationCoordinator(
        hospitals=HOSPITALS,
        global_state={"w": torch.zeros(4, 4), "b": torch.zeros(4)},
        total_rounds=3,
        **coordinator_args,
    )
    return ThreadedFederationServer(coordinator, identity=pki.aggregator, max_message_bytes=LIMIT)


def _client(running, pki, name, *, limit=LIMIT, timeout_s=10):
    return FederationClient(
        running.target, pki.identity(name), max_message_bytes=limit, timeout_s=timeout_s
    )


@pytest.fixture
def running(pki):
    with _server(pki) as server:
        yield server


@pytest.fixture
def clients(running, pki):
    made = [_client(running, pki, name) for name in HOSPITALS]
    for client in made:
        client.join(num_samples=10)
    yield made
    for client in made:
        client.close()


def _update(value, shape=(4, 4)):
    return {"w": torch.full(shape, value), "b": torch.full((4,), value)}


def _submit(client, round_number, update, num_samples=10):
    report = HospitalReport(
        num_samples=num_samples,
        epsilon=0.5,
        update_bytes=0,
    )
    return client.submit_update(round_number, update, report)


def _raw_stub(running, identity):
    channel = grpc.secure_channel(
        running.target,
        tls.channel_credentials(identity),
        options=tls.channel_name_options(tls.DEFAULT_SERVER_NAME),
    )
    return channel, pb_grpc.FederationStub(channel)


def test_two_hospitals_complete_a_round_over_grpc(running, clients):
    pending = running.spawn(running.server.run_round(deadline_s=20))
    view = clients[0].round_status(after_round=0, wait_s=5)
    assert view.phase is Phase.OPEN and view.round == 1 and view.selected
    assert torch.equal(clients[0].global_model(1)["w"], torch.zeros(4, 4))
    timing = _submit(clients[0], 1, _update(1.0), num_samples=10)
    assert (timing.received, timing.expected) == (1, 2)
    assert timing.update_bytes == (16 + 4) * 4
    _submit(clients[1], 1, _update(4.0), num_samples=30)
    outcome = pending.result(20)
    assert outcome.participants == tuple(HOSPITALS)
    assert outcome.reports["hospital-1"].epsilon == 0.5
    expected = (1.0 * 10 + 4.0 * 30) / 40
    assert torch.allclose(
        running.server.coordinator.global_state["w"], torch.full((4, 4), expected)
    )


def test_long_poll_returns_when_a_round_opens(running, clients):
    waiting = running.spawn(asyncio.sleep(0.3))
    pending = None

    def open_later():
        nonlocal pending
        waiting.result(5)
        pending = running.spawn(running.server.run_round(deadline_s=0.5))

    opener = threading.Thread(target=open_later)
    opener.start()
    view = clients[0].round_status(after_round=0, wait_s=20)
    opener.join()
    assert view.phase is Phase.OPEN and view.round == 1
    pending.result(10)


def test_late_hospital_is_left_out_and_told_the_round_is_stale(running, clients):
    pending = running.spawn(running.server.run_round(deadline_s=0.5))
    clients[0].round_status(after_round=0, wait_s=5)
    _submit(clients[0], 1, _update(2.0))
    outcome = pending.result(10)
    assert outcome.participants == ("hospital-1",) and outcome.missing == ("hospital-2",)
    with pytest.raises(StaleRound):
        _submit(clients[1], 1, _update(9.0))
    assert torch.allclose(running.server.coordinator.global_state["w"], torch.full((4, 4), 2.0))


GOOD_WEIGHT = {"name": "w", "dtype": "float32", "shape": [4, 4], "data": bytes(64)}


@pytest.mark.parametrize(
    "override",
    [
        {"shape": [8, 2]},
        {"shape": [4, 4, 1]},
        {"dtype": "float64", "data": bytes(128)},
        {"data": bytes(60)},
        {"data": np.full(16, np.nan, dtype="<f4").tobytes()},
        {"data": np.full(16, np.inf, dtype="<f4").tobytes()},
    ],
    ids=["wrong-shape", "wrong-rank", "wrong-dtype", "truncated", "nan", "inf"],
)
def test_malformed_update_gets_invalid_argument_and_others_still_count(
    running, clients, pki, override
):
    pending = running.spawn(running.server.run_round(deadline_s=20))
    clients[0].round_status(after_round=0, wait_s=5)
    weight = pb.Tensor(**{**GOOD_WEIGHT, **override})
    bias = pb.Tensor(name="b", dtype="float32", shape=[4], data=bytes(16))
    request = pb.UpdateRequest(
        round=1, tensors=[weight, bias], report=pb.UpdateReport(num_samples=10)
    )
    channel, stub = _raw_stub(running, pki.identity("hospital-1"))
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.SubmitUpdate(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'w'" in raised.value.details()
    _submit(clients[0], 1, _update(1.0))  # the refused hospital may still send a good update
    _submit(clients[1], 1, _update(3.0))
    outcome = pending.result(20)
    assert outcome.participants == tuple(HOSPITALS)
    assert torch.allclose(running.server.coordinator.global_state["w"], torch.full((4, 4), 2.0))


def test_stale_round_number_gets_failed_precondition(running, clients, pki):
    pending = running.spawn(running.server.run_round(deadline_s=20))
    clients[0].round_status(after_round=0, wait_s=5)
    channel, stub = _raw_stub(running, pki.identity("hospital-1"))
    request = pb.GlobalModelRequest(round=7)
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.GetGlobalModel(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(StaleRound, match="round 7 is not open"):
        _submit(clients[0], 7, _update(1.0))
    for client in clients:
        _submit(client, 1, _update(1.0))
    assert pending.result(10).participants == tuple(HOSPITALS)


def test_a_certified_non_member_gets_permission_denied(running, clients, pki):
    intruder = _client(running, pki, "intruder", timeout_s=5)
    with intruder, pytest.raises(UnknownHospital, match="not a member"):
        intruder.join(num_samples=10)
    channel, stub = _raw_stub(running, pki.identity("intruder"))
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.Join(pb.JoinRequest(num_samples=1), timeout=5)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_oversized_message_gets_resource_exhausted_and_server_keeps_serving(running, clients, pki):
    pending = running.spawn(running.server.run_round(deadline_s=20))
    clients[0].round_status(after_round=0, wait_s=5)
    big = _client(running, pki, "hospital-1", limit=4 * LIMIT, timeout_s=5)
    with big, pytest.raises(grpc.RpcError) as raised:
        _submit(big, 1, {"w": torch.zeros(128, 128), "b": torch.zeros(4)})
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for client in clients:
        _submit(client, 1, _update(1.0))
    assert pending.result(10).participants == tuple(HOSPITALS)


def test_client_raises_domain_errors_for_refusals(running, clients):
    pending = running.spawn(running.server.run_round(deadline_s=20))
    clients[0].round_status(after_round=0, wait_s=5)
    with pytest.raises(InvalidUpdate, match="shape"):
        _submit(clients[0], 1, _update(1.0, shape=(2, 8)))
    running.call(running.server.finish())
    with pytest.raises(FederationFinished):
        pending.result(10)
    assert clients[1].round_status(after_round=1, wait_s=5).phase is Phase.FINISHED


def test_participation_fraction_tells_unselected_hospitals(pki):
    with _server(pki, participation=0.5, seed=3) as running:
        made = [_client(running, pki, n, timeout_s=5) for n in HOSPITALS]
        for client in made:
            client.join(num_samples=5)
        pending = running.spawn(running.server.run_round(deadline_s=20))
        views = [client.round_status(after_round=0, wait_s=5) for client in made]
        assert sorted(view.selected for view in views) == [False, True]
        outsider = made[[view.selected for view in views].index(False)]
        with pytest.raises(NotSelected):
            outsider.global_model(1)
        insider = made[[view.selected for view in views].index(True)]
        _submit(insider, 1, _update(1.0))
        assert pending.result(10).participants == (insider.hospital,)
        for client in made:
            client.close()
