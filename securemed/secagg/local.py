"""Every party of a secure round in one process: the benchmark's and the tests' harness.

It drives real :class:`SecAggClient` and :class:`SecAggServer` objects through the four steps
exactly as the transport does, minus the network, and times each side separately so the cost
of the protocol (not of gRPC) can be measured. Hospitals listed in ``drop_after_sharing`` stop
after step 2, as if killed; ``drop_before_unmask`` upload but never answer step 4.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from securemed.pki import FederationIdentity
from securemed.secagg.client import SecAggClient
from securemed.secagg.params import SecAggParams
from securemed.secagg.protocol import RoundInfo
from securemed.secagg.server import Observer, SecAggServer, UnmaskedSum


@dataclass
class LocalRoundCost:
    """Seconds spent and bytes sent, per client and on the server."""

    client_seconds: dict[str, float] = field(default_factory=dict)
    client_bytes_sent: dict[str, int] = field(default_factory=dict)
    server_seconds: float = 0.0
    unmask_seconds: float = 0.0


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

    def client_step(name: str, step):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        result = step()
        cost.client_seconds[name] += time.perf_counter() - started
        return result

    def server_step(step):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        result = step()
        cost.server_seconds += time.perf_counter() - started
        return result

    clients = {
        name: client_step(
            name,
            lambda name=name: SecAggClient(
                name,
                info,
                params,
                identities[name],
            ),
        )
        for name in names
    }
    for name, client in clients.items():
        advert = client_step(name, client.advertise)
        cost.client_bytes_sent[name] += (
            len(advert.c_public) + len(advert.s_public) + len(advert.signature)
        )
        server_step(
            lambda name=name, advert=advert: server.receive_advert(
                name, advert, caller_certificate=identities[name].certificate_pem
            )
        )
    server_step(server.close_advertising)
    for name, client in clients.items():
        adverts = server_step(lambda name=name: server.adverts_for(name))
        shares = client_step(name, lambda client=client, adverts=adverts: client.share(adverts))
        cost.client_bytes_sent[name] += sum(len(share.ciphertext) for share in shares)
        server_step(lambda name=name, shares=shares: server.receive_shares(name, shares))
    server_step(server.close_sharing)
    for name, client in clients.items():
        if name in drop_after_sharing:
            continue
        routed = server_step(lambda name=name: server.shares_for(name))
        masked = client_step(
            name, lambda client=client, name=name, routed=routed: client.mask(levels[name], routed)
        )
        cost.client_bytes_sent[name] += masked.nbytes
        server_step(lambda name=name, masked=masked: server.receive_masked(name, masked))
    survivors, dropped = server_step(server.close_masking)
    for name in survivors:
        if name in drop_before_unmask:
            continue
        answers = client_step(name, lambda name=name: clients[name].unmask(survivors, dropped))
        cost.client_bytes_sent[name] += sum(len(answer.share) for answer in answers)
        server_step(lambda name=name, answers=answers: server.receive_unmask(name, answers))
    started = time.perf_counter()
    total = server.finish()
    cost.unmask_seconds = time.perf_counter() - started
    cost.server_seconds += cost.unmask_seconds
    return total, cost
