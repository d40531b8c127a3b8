"""The secure-aggregation round end to end, in one process: masks cancel, dropouts are
recovered, too few survivors abort, the aggregator never holds an individual update, and
every protocol violation is refused."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from scipy import stats

from securemed.errors import DuplicateSubmission, ProtocolViolation, RoundAborted
from securemed.pki import load_identity
from securemed.secagg import SecAggClient, SecAggParams, SecAggServer
from securemed.secagg.local import run_local_round
from securemed.secagg.protocol import EncryptedShare, RoundInfo

HOSPITALS = tuple(
    f"hospital-{i:02d}" for i in range(1, 25)
)  # what the federation fixture certifies


def _levels(names: tuple[str, ...], length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 2**16, size=length, dtype=np.uint32) for name in names}


def _plain_sum(levels: dict[str, np.ndarray], names) -> np.ndarray:
    return np.sum([levels[name] for name in names], axis=0, dtype=np.uint32)


@pytest.mark.parametrize(("count", "neighbours"), [(5, None), (20, 6)])
def test_masks_cancel_exactly_in_the_sum(federation, count: int, neighbours: int | None) -> None:
    names = HOSPITALS[:count]
    levels = _levels(names, 5000)
    params = SecAggParams.for_round(count, neighbours=neighbours)
    result, _ = run_local_round(levels, params, federation.identities)
    assert result.survivors == names and result.dropped == ()
    assert np.array_equal(result.levels, _plain_sum(levels, names))


def test_hospitals_that_drop_after_sharing_are_recovered(federation) -> None:
    names = HOSPITALS[:12]
    levels = _levels(names, 3000, seed=1)
    params = SecAggParams.for_round(12, neighbours=6, threshold=4)
    gone = {"hospital-02", "hospital-07"}
    result, _ = run_local_round(levels, params, federation.identities, drop_after_sharing=gone)
    survivors = tuple(name for name in names if name not in gone)
    assert result.survivors == survivors and set(result.dropped) == gone
    assert np.array_equal(result.levels, _plain_sum(levels, survivors))


def test_survivors_that_stop_answering_before_unmasking_still_count_if_enough_shares(
    federation,
) -> None:
    names = HOSPITALS[:8]
    levels = _levels(names, 1000, seed=2)
    params = SecAggParams.for_round(8, threshold=4)  # complete graph, k = 7
    result, _ = run_local_round(
        levels,
        params,
        federation.identities,
        drop_before_unmask={"hospital-01", "hospital-03"},
    )
    assert np.array_equal(result.levels, _plain_sum(levels, names))


def test_below_the_threshold_the_round_aborts(federation) -> None:
    names = HOSPITALS[:6]
    params = SecAggParams.for_round(6, threshold=3, min_survivors=4)
    with pytest.raises(RoundAborted, match="only 3 hospitals completed the masked upload"):
        run_local_round(
            _levels(names, 100),
            params,
            federation.identities,
            drop_after_sharing=set(names[:3]),
        )


def test_too_few_unmask_answers_abort_instead_of_guessing(federation) -> None:
    names = HOSPITALS[:5]
    params = SecAggParams.for_round(5, threshold=3, min_survivors=3)
    with pytest.raises(RoundAborted, match="only 2 hospitals completed the unmask step"):
        run_local_round(
            _levels(names, 100),
            params,
            federation.identities,
            drop_before_unmask=set(names[:3]),
        )


def test_a_masked_upload_is_indistinguishable_from_uniform(federation) -> None:
    names = HOSPITALS[:4]
    # the most structured input there is: every hospital uploads zeros
    levels = {name: np.zeros(100_000, dtype=np.uint32) for name in names}
    uploads: list[np.ndarray] = []
    run_local_round(
        levels,
        SecAggParams.for_round(4),
        federation.identities,
        observer=lambda label, v: uploads.append(v.copy()) if label == "masked upload" else None,
    )
    assert len(uploads) == 4
    for upload in uploads:
        assert stats.chisquare(np.bincount(upload >> 24, minlength=256)).pvalue > 1e-4
        assert stats.chisquare(np.bincount(upload & 0xFF, minlength=256)).pvalue > 1e-4
        assert stats.kstest(upload / 2.0**32, "uniform").pvalue > 1e-4


def test_the_aggregator_never_holds_an_individual_update(federation) -> None:
    names = HOSPITALS[:6]
    levels = _levels(names, 20_000, seed=3)
    held: list[tuple[str, np.ndarray]] = []
    result, _ = run_local_round(
        levels,
        SecAggParams.for_round(6, threshold=3),
        federation.identities,
        drop_after_sharing={"hospital-04"},
        observer=lambda label, v: held.append((label, v.copy())),
    )
    assert {label for label, _ in held} == {"masked upload", "running total", "unmasked sum"}
    survivors = result.survivors
    for label, vector in held:
        for name in names:
            # a coordinate matches by chance with probability 2^-32; a leak matches them all
            assert np.mean(vector == levels[name]) < 0.01, (label, name)
        if label != "unmasked sum":
            assert not np.array_equal(vector, _plain_sum(levels, survivors))
    assert np.array_equal(held[-1][1], _plain_sum(levels, survivors))


# -- protocol violations -------------------------------------------------------------------


def _round(federation, count: int = 4, **kwargs):
    names = HOSPITALS[:count]
    info = RoundInfo(round=3, round_id=os.urandom(16), participants=names)
    params = SecAggParams.for_round(count, **kwargs)
    server = SecAggServer(info, params, length=10)
    clients = {
        name: SecAggClient(
            name,
            info,
            params,
            federation.identities[name],
        )
        for name in names
    }
    return info, params, server, clients


def test_keys_signed_for_another_hospital_are_refused(federation) -> None:
    _, _, server, clients = _round(federation)
    advert = clients["hospital-02"].advertise()
    with pytest.raises(ProtocolViolation, match="signed for 'hospital-02'"):
        server.receive_advert(
            "hospital-01",
            advert,
            caller_certificate=federation.identities["hospital-01"].certificate_pem,
        )
    forged = dataclasses.replace(
        advert,
        hospital="hospital-01",
        certificate_pem=federation.identities["hospital-01"].certificate_pem,
    )
    with pytest.raises(ProtocolViolation, match="does not verify"):
        server.receive_advert(
            "hospital-01",
            forged,
            caller_certificate=federation.identities["hospital-01"].certificate_pem,
        )


def test_an_advert_replayed_from_an_old_round_is_refused(federation) -> None:
    _, _, _, old_clients = _round(federation)
    old_advert = old_clients["hospital-01"].advertise()
    _, _, server, _ = _round(federation)
    with pytest.raises(ProtocolViolation, match="does not verify"):
        server.receive_advert(
            "hospital-01",
            old_advert,
            caller_certificate=federation.identities["hospital-01"].certificate_pem,
        )


def _advertise_all(federation, server, clients) -> None:
    for name, client in clients.items():
        server.receive_advert(
            name,
            client.advertise(),
            caller_certificate=federation.identities[name].certificate_pem,
        )
    server.close_advertising()


def test_a_share_for_a_hospital_that_is_not_a_neighbour_is_refused(federation) -> None:
    _, _, server, clients = _round(federation, 10, neighbours=4)
    _advertise_all(federation, server, clients)
    name = "hospital-01"
    stranger = next(n for n in clients if n != name and n not in server.graph[name])
    shares = clients[name].share(server.adverts_for(name))
    bogus = [*shares[:-1], EncryptedShare(name, stranger, shares[-1].ciphertext)]
    with pytest.raises(ProtocolViolation, match="not its neighbour"):
        server.receive_shares(name, bogus)
    server.receive_shares(name, shares)  # the refused message changed nothing
    with pytest.raises(DuplicateSubmission):
        server.receive_shares(name, shares)


def test_a_client_refuses_keys_of_a_non_neighbour(federation) -> None:
    _, _, server, clients = _round(federation, 10, neighbours=4)
    _advertise_all(federation, server, clients)
    name = "hospital-01"
    stranger = next(n for n in clients if n != name and n not in server.graph[name])
    adverts = [*server.adverts_for(name), server.adverts[stranger]]
    with pytest.raises(ProtocolViolation, match="not a neighbour"):
        clients[name].share(adverts)


def test_a_client_refuses_a_neighbour_certified_by_another_ca(
    federation, foreign_federation
) -> None:
    info, params, _, clients = _round(federation)
    impostor = SecAggClient(
        "hospital-02",
        info,
        params,
        foreign_federation.identities["hospital-02"],
    )
    adverts = [impostor.advertise()]
    adverts += [clients[n].advertise() for n in ("hospital-03", "hospital-04")]
    clients["hospital-01"].advertise()
    with pytest.raises(ProtocolViolation, match="not issued by the federation CA"):
        clients["hospital-01"].share(adverts)


def test_a_tampered_share_is_not_kept_and_is_reported_unproven(federation) -> None:
    """A ciphertext that fails authentication cannot be pinned on its dealer or on the router:
    the holder keeps going without it, and the complaint is on record as unproven."""
    _, _, server, clients = _round(federation)
    _advertise_all(federation, server, clients)
    for name, client in clients.items():
        server.receive_shares(name, client.share(server.adverts_for(name)))
    server.close_sharing()
    routed = server.shares_for("hospital-01")
    flipped = bytearray(routed[0].ciphertext)
    flipped[-1] ^= 1
    tampered = [dataclasses.replace(routed[0], ciphertext=bytes(flipped)), *routed[1:]]
    holder = clients["hospital-01"]
    holder.mask(np.zeros(10, dtype=np.uint32), tampered)
    assert [c.dealer for c in holder.complaints] == [routed[0].sender]
    assert holder.complaints[0].signature == b""


def test_a_misrouted_share_is_refused(federation) -> None:
    _, _, server, clients = _round(federation)
    _advertise_all(federation, server, clients)
    for name, client in clients.items():
        server.receive_shares(name, client.share(server.adverts_for(name)))
    server.close_sharing()
    routed = server.shares_for("hospital-02")
    with pytest.raises(ProtocolViolation, match="was routed to 'hospital-01'"):
        clients["hospital-01"].mask(np.zeros(10, dtype=np.uint32), routed)


def _through_masking(federation):
    """A round of four whose every hospital advertised, shared and uploaded zeros."""
    _, _, server, clients = _round(federation)
    _advertise_all(federation, server, clients)
    for name, client in clients.items():
        server.receive_shares(name, client.share(server.adverts_for(name)))
    server.close_sharing()
    for name, client in clients.items():
        masked = client.mask(np.zeros(10, np.uint32), server.shares_for(name))
        server.receive_masked(name, masked, client.complaints)
    return server, clients


def test_a_survivor_confirms_and_answers_the_unmask_step_only_once(federation) -> None:
    server, clients = _through_masking(federation)
    survivors, dropped = server.close_masking()
    for name, client in clients.items():
        server.receive_confirmation(name, client.confirm(survivors, dropped))
    server.close_consistency()
    holder = clients["hospital-01"]
    # a second view (say, naming hospital-02 dropped to get its key) is not even signed
    with pytest.raises(ProtocolViolation, match="expected step 'unmask', got 'confirm'"):
        holder.confirm(tuple(n for n in survivors if n != "hospital-02"), ("hospital-02",))
    holder.unmask(server.signatures_for("hospital-01"))
    with pytest.raises(ProtocolViolation, match="expected step 'done'"):
        holder.unmask(server.signatures_for("hospital-01"))


def test_the_aggregator_cannot_take_part_with_its_own_certificate(federation) -> None:
    """The aggregator's certificate comes from the same CA, but for server authentication: an
    aggregator that lists itself as a participant has its keys refused by every hospital."""
    info = RoundInfo(round=1, round_id=os.urandom(16), participants=("aggregator", "hospital-01"))
    params = SecAggParams.for_round(2)
    aggregator = load_identity(federation.layout, "aggregator")
    posing = SecAggClient("aggregator", info, params, aggregator)
    victim = SecAggClient("hospital-01", info, params, federation.identities["hospital-01"])
    victim.advertise()
    with pytest.raises(ProtocolViolation, match="not a hospital's"):
        victim.share([posing.advertise()])


@pytest.mark.parametrize(
    ("survivors", "message"),
    [
        (("hospital-01", "hospital-02", "ghost"), "not participants"),
        (("hospital-01", "hospital-02", "hospital-02"), "twice"),
    ],
)
def test_a_padded_or_repeated_survivor_set_is_refused(federation, survivors, message) -> None:
    """An aggregator that pads the survivor set (a name that is not a participant, or one name
    twice) to pass the survivor count gets no unmask shares."""
    _, clients = _through_masking(federation)
    with pytest.raises(ProtocolViolation, match=message):
        clients["hospital-01"].confirm(survivors, ())
