"""Every party of a secure round in one process: the benchmark's and the tests' harness.

It drives real :class:`SecAggClient` and :class:`SecAggServer` objects through the five steps
exactly as the transport does, minus the network, and times each side separately so the cost
of the protocol (not of gRPC), and of its consistency check alone, can be measured. Hospitals
listed in ``drop_after_sharing`` stop after step 2, as if killed; ``drop_before_unmask``
upload and confirm but never answer the unmask step.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import numpy as np

from securemed.pki import FederationIdentity
from securemed.secagg.client import SecAggClient
from securemed.secagg.params import SecAggParams
from securemed.secagg.protocol import RoundInfo
from securemed.secagg.server import Observer, SecAggServer, UnmaskedSum

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class LocalRoundCost:
    """Seconds spent and bytes sent, per client and on the server."""

    client_seconds: dict[str, float] = field(default_factory=dict)
    client_bytes_sent: dict[str, int] = field(default_factory=dict)
    server_seconds: float = 0.0
    unmask_seconds: float = 0.0
    #: the consistency check's share of the above (signing, checking, its bytes)
    consistency_client_seconds: dict[str, float] = field(default_factory=dict)
    consistency_server_seconds: float = 0.0


def run_local_round(
    levels: Mapping[str, np.ndarray],
    params: SecAggParams,
    identities: Mapping[str, FederationIdentity],
    *,
    round_number: int = 1,
    drop_after_sharing: Collection[str] = (),
    drop_before_unmask: Collection[str] = (),
    observer: Observer | None = None,
) -> tuple[UnmaskedSum, LocalRoundCost]:
    """Run one secure sum of ``levels`` (uint32 vectors) and return it with its cost."""
    names = tuple(sorted(levels))
    info = RoundInfo(round=round_number, round_id=secrets.token_bytes(16), participants=names)
    length = len(next(iter(levels.values())))
    cost = LocalRoundCost(
        client_seconds=dict.fromkeys(names, 0.0), client_bytes_sent=dict.fromkeys(names, 0)
    )
    server = SecAggServer(info, params, length=length, observer=observer)

    def on_client(name: str, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        result = call(*args, **kwargs)
        cost.client_seconds[name] += time.perf_counter() - started
        return result

    def on_server(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        result = call(*args, **kwargs)
        cost.server_seconds += time.perf_counter() - started
        return result

    clients = {
        name: on_client(name, SecAggClient, name, info, params, identities[name]) for name in names
    }
    for name, client in clients.items():
        advert = on_client(name, client.advertise)
        cost.client_bytes_sent[name] += (
            len(advert.c_public) + len(advert.s_public) + len(advert.signature)
        )
        certificate = identities[name].certificate_pem
        on_server(server.receive_advert, name, advert, caller_certificate=certificate)
    on_server(server.close_advertising)
    for name, client in clients.items():
        shares = on_client(name, client.share, on_server(server.adverts_for, name))
        cost.client_bytes_sent[name] += sum(len(share.ciphertext) for share in shares)
        on_server(server.receive_shares, name, shares)
    on_server(server.close_sharing)
    for name, client in clients.items():
        if name in drop_after_sharing:
            continue
        routed = on_server(server.shares_for, name)
        masked = on_client(name, client.mask, levels[name], routed)
        cost.client_bytes_sent[name] += masked.nbytes
        on_server(server.receive_masked, name, masked, client.complaints)
    survivors, dropped = on_server(server.close_masking)
    client_before, server_before = dict(cost.client_seconds), cost.server_seconds
    for name in survivors:
        confirmation = on_client(name, clients[name].confirm, survivors, dropped)
        cost.client_bytes_sent[name] += len(confirmation.signature)
        on_server(server.receive_confirmation, name, confirmation)
    on_server(server.close_consistency)
    answers = {
        name: on_client(name, clients[name].unmask, on_server(server.signatures_for, name))
        for name in survivors
    }
    # unmask() is the check of the neighbours' signatures plus picking shares already held
    cost.consistency_client_seconds = {
        name: cost.client_seconds[name] - client_before[name] for name in survivors
    }
    cost.consistency_server_seconds = cost.server_seconds - server_before
    for name in survivors:
        if name in drop_before_unmask:
            continue
        cost.client_bytes_sent[name] += sum(len(answer.share) for answer in answers[name])
        on_server(server.receive_unmask, name, answers[name])
    started = time.perf_counter()
    total = server.finish()
    cost.unmask_seconds = time.perf_counter() - started
    cost.server_seconds += cost.unmask_seconds
    return total, cost
