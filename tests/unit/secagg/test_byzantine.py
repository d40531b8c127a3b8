"""The actively secure round against the attacks it is built for, played in one process with
real keys, certificates and signatures: an aggregator that tells hospitals different survivor
sets (helped by one colluding hospital), a holder that returns garbage, a dealer that hands out
inconsistent shares, a hospital that files a false complaint. Each test asserts on what the
aggregator can compute, and that the round either finishes with the exact sum or aborts
cleanly with the culprit named."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from securemed.errors import ProtocolViolation, RoundAborted
from securemed.secagg import SecAggClient, SecAggParams, SecAggServer, crypto, shamir
from securemed.secagg.prg import MaskGenerator
from securemed.secagg.protocol import (
    EncryptedShare,
    RoundInfo,
    ShareComplaint,
    SurvivorSignature,
    UnmaskShare,
    mask_sign,
    pack_shares,
    pair_context,
    share_context,
    share_message,
    unpack_shares,
    view_message,
)

LENGTH = 50


class _Round:
    """Four (or more) hospitals through masking, each upload kept as the attacker would."""

    def __init__(self, federation, count: int = 4, dealer_class=SecAggClient) -> None:
        self.names = tuple(f"hospital-{i:02d}" for i in range(1, count + 1))
        self.info = RoundInfo(round=5, round_id=os.urandom(16), participants=self.names)
        self.params = SecAggParams.for_round(count)
        self.server = SecAggServer(self.info, self.params, length=LENGTH)
        self.clients = {
            name: (dealer_class if name == self.names[0] else SecAggClient)(
                name, self.info, self.params, federation.identities[name]
            )
            for name in self.names
        }
        rng = np.random.default_rng(7)
        self.levels = {n: rng.integers(0, 2**16, LENGTH, dtype=np.uint32) for n in self.names}
        self.uploads: dict[str, np.ndarray] = {}
        for name, client in self.clients.items():
            certificate = federation.identities[name].certificate_pem
            self.server.receive_advert(name, client.advertise(), caller_certificate=certificate)
        self.server.close_advertising()
        for name, client in self.clients.items():
            self.server.receive_shares(name, client.share(self.server.adverts_for(name)))
        self.server.close_sharing()

    def mask_all(self) -> None:
        for name, client in self.clients.items():
            self.uploads[name] = client.mask(self.levels[name], self.server.shares_for(name))
            self.server.receive_masked(name, self.uploads[name], client.complaints)

    def confirm_all(self) -> dict[str, list[UnmaskShare]]:
        survivors, dropped = self.server.close_masking()
        for name in survivors:
            confirmation = self.clients[name].confirm(survivors, dropped)
            self.server.receive_confirmation(name, confirmation)
        self.server.close_consistency()
        return {
            name: self.clients[name].unmask(self.server.signatures_for(name)) for name in survivors
        }

    def total(self) -> np.ndarray:
        return np.sum(list(self.levels.values()), axis=0, dtype=np.uint32)


def _unmask_with(round_: _Round, name: str, seed: bytes, key: bytes) -> np.ndarray:
    """What the aggregator computes from ``name``'s upload once it holds both its secrets."""
    recovered = round_.uploads[name].copy()
    generator = MaskGenerator(LENGTH)
    generator.add(recovered, seed, sign=-1)
    for neighbour in round_.server.graph[name]:
        pair = crypto.agree(
            key,
            round_.server.adverts[neighbour].s_public,
            purpose=b"mask",
            context=pair_context(round_.info, name, neighbour),
        )
        generator.add(recovered, pair, sign=-mask_sign(name, neighbour))
    return recovered


def test_split_survivor_views_are_caught_before_any_share_is_revealed(federation) -> None:
    """The aggregator, with hospital-04 colluding, wants hospital-02's update: it tells
    hospital-01 that hospital-02 dropped (for a key share) and the others that it survived (for
    seed shares). Without the consistency check hospital-01's key share plus the colluder's
    make t = 2 and the update is recovered exactly; with it, hospital-01 sees that its
    neighbours signed another view and reveals nothing."""
    round_ = _Round(federation)
    round_.mask_all()
    fooled, victim, honest, colluder = round_.names
    survivors, dropped = round_.server.close_masking()
    lie = (tuple(n for n in survivors if n != victim), (victim,))
    signed = {fooled: round_.clients[fooled].confirm(*lie)}
    for name in (victim, honest, colluder):
        signed[name] = round_.clients[name].confirm(survivors, dropped)
    # the colluder also signs the lie for the fooled hospital, as a corrupted hospital would
    colluder_key = federation.identities[colluder].key_pem
    forged = SurvivorSignature(colluder, crypto.sign(colluder_key, view_message(round_.info, *lie)))
    with pytest.raises(ProtocolViolation, match="did not sign the survivor set"):
        round_.clients[fooled].unmask([forged, signed[honest]])
    # the fooled hospital is finished with this round: it will not answer a second time
    with pytest.raises(ProtocolViolation, match="expected step 'done'"):
        round_.clients[fooled].unmask([forged])

    # what the aggregator holds: seed shares of the victim from the honest and the colluder,
    # key shares only from the colluder (t = 2 are needed)
    seed_answers = round_.clients[honest].unmask([signed[victim], signed[colluder]])
    assert all(answer.kind == "seed" for answer in seed_answers)
    colluder_held = round_.clients[colluder]._held[victim]
    victim_points = {
        n: round_.server.graph[victim].index(n) + 1 for n in round_.server.graph[victim]
    }
    seed = shamir.combine(
        {
            victim_points[honest]: next(a.share for a in seed_answers if a.owner == victim),
            victim_points[colluder]: colluder_held[0],
        },
        threshold=2,
    )
    with pytest.raises(ProtocolViolation, match="1 shares cannot recover"):
        shamir.combine({victim_points[colluder]: colluder_held[1]}, threshold=2)

    # had the fooled hospital answered the lie (no consistency check), the attack succeeds:
    fooled_key_share = round_.clients[fooled]._held[victim][1]
    key = shamir.combine(
        {victim_points[fooled]: fooled_key_share, victim_points[colluder]: colluder_held[1]},
        threshold=2,
    )
    assert np.array_equal(_unmask_with(round_, victim, seed, key), round_.levels[victim])


def test_garbage_unmask_shares_are_dropped_and_the_holder_named(federation) -> None:
    """A Byzantine holder answers the unmask step with random bytes: its shares fail the
    dealers' commitments, are dropped, the holder is named, and the round still returns the
    exact sum from the honest holders' shares (k = 3, t = 2: two honest holders remain)."""
    round_ = _Round(federation)
    round_.mask_all()
    answers = round_.confirm_all()
    byzantine = round_.names[2]
    for name, shares in answers.items():
        if name == byzantine:
            shares = [dataclasses.replace(s, share=os.urandom(32)) for s in shares]
        round_.server.receive_unmask(name, shares)
    result = round_.server.finish()
    assert np.array_equal(result.levels, round_.total())
    assert {c.hospital for c in round_.server.culprits} == {byzantine}
    assert all("not the one dealt" in c.fault for c in round_.server.culprits)


class _InconsistentDealer(SecAggClient):
    """Deals every holder in ``bad`` a signed seed share that is not on its polynomial."""

    bad: tuple[str, ...] = ()

    def share(self, adverts):
        honest = super().share(adverts)
        out = []
        for item in honest:
            if item.recipient not in self.bad:
                out.append(item)
                continue
            point = self.neighbours.index(item.recipient) + 1
            seed_share = shamir.Polynomial.for_secret(shamir.random_secret(), threshold=2).share(
                point
            )
            key_share = self._polynomials["key"].share(point)
            message = share_message(self.info, self.hospital, item.recipient, seed_share, key_share)
            signature = crypto.sign(self._identity.key_pem, message)
            plaintext = pack_shares(self.hospital, item.recipient, seed_share, key_share, signature)
            sealed = crypto.seal(
                self._channel_key(item.recipient),
                plaintext,
                share_context(self.info, self.hospital, item.recipient),
            )
            out.append(EncryptedShare(self.hospital, item.recipient, sealed))
        return out


def test_a_dealer_caught_handing_out_a_bad_share_is_named_and_the_round_completes(
    federation,
) -> None:
    class Dealer(_InconsistentDealer):
        bad = ("hospital-03",)

    round_ = _Round(federation, dealer_class=Dealer)
    round_.mask_all()
    complaint = round_.clients["hospital-03"].complaints
    assert [c.dealer for c in complaint] == ["hospital-01"] and complaint[0].signature
    assert round_.server.culprits[0].hospital == "hospital-01"
    assert "miss its own commitments" in round_.server.culprits[0].fault
    answers = round_.confirm_all()
    for name, shares in answers.items():
        round_.server.receive_unmask(name, shares)
    result = round_.server.finish()  # the dealer's seed comes from its two other holders
    assert np.array_equal(result.levels, round_.total())


def test_a_dealer_whose_secret_cannot_be_rebuilt_aborts_the_round_cleanly(federation) -> None:
    class Dealer(_InconsistentDealer):
        bad = ("hospital-02", "hospital-03")

    round_ = _Round(federation, dealer_class=Dealer)
    round_.mask_all()
    assert {c.hospital for c in round_.server.culprits} == {"hospital-01"}
    answers = round_.confirm_all()
    for name, shares in answers.items():
        round_.server.receive_unmask(name, shares)
    with pytest.raises(RoundAborted, match="1 valid shares of a seed of 'hospital-01'"):
        round_.server.finish()
    assert round_.server.phase.value == "aborted"


@pytest.mark.parametrize("forge", [False, True])
def test_a_false_complaint_names_the_complainer(federation, forge: bool) -> None:
    """A hospital that complains about a dealer's valid shares (to frame it) is the one named,
    and so is one that shows shares the dealer never signed."""
    round_ = _Round(federation)
    liar, dealer = round_.names[1], round_.names[0]
    routed = round_.server.shares_for(liar)
    upload = round_.clients[liar].mask(round_.levels[liar], routed)
    sealed = next(item for item in routed if item.sender == dealer)
    plaintext = crypto.open_sealed(
        round_.clients[liar]._channel_key(dealer),
        sealed.ciphertext,
        share_context(round_.info, dealer, liar),
    )
    _, _, seed_share, key_share, signature = unpack_shares(plaintext)
    if forge:
        seed_share = shamir.random_secret()
        message = share_message(round_.info, dealer, liar, seed_share, key_share)
        signature = crypto.sign(federation.identities[liar].key_pem, message)
    complaint = ShareComplaint(dealer, seed_share, key_share, signature)
    round_.server.receive_masked(liar, upload, [complaint])
    [culprit] = round_.server.culprits
    assert culprit.hospital == liar
    assert ("never signed" if forge else "valid shares") in culprit.fault
