"""A malicious aggregator and a Byzantine hospital over real gRPC with mutual TLS.

The aggregator is the production server with one step rewritten per attack: it strips the
secure parameters (downgrade to plain), announces t = 1, lists itself as a participant, or
tells one hospital that another dropped (split survivor views). The hospitals run the
production loop (:func:`securemed.hospital.run_hospital`) with a trainer that hands back fixed
weights (training is not what is attacked). Every attack fails with no honest update
recoverable: the test asserts on every request the aggregator received. A Byzantine hospital
that deals garbage ciphertexts and returns garbage unmask shares is named, and the round
still completes with the exact sum.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from google.protobuf.message import Message

import securemed.transport.threaded as threaded
from securemed.federation.coordinator import FederationCoordinator
from securemed.federation.secure_round import SecureSettings, SecureStep
from securemed.hospital import HospitalPolicy, HospitalSummary, run_hospital
from securemed.privacy.local_training import LocalResult
from securemed.secagg import SecAggClient
from securemed.secagg.protocol import EncryptedShare, UnmaskShare
from securemed.transport import secure_codec
from securemed.transport.client import FederationClient
from securemed.transport.federation.v1 import federation_pb2 as pb
from securemed.transport.server import FederationServer

pytestmark = pytest.mark.slow  # four hospitals over real gRPC, some steps wait out their time

LIMIT = 1 << 22
NAMES = ("hospital-1", "hospital-2", "hospital-3", "hospital-4")
SHAPE = (40,)
STEP = 2.0 / (2**16 - 1)  # one quantization level


class MaliciousServer(FederationServer):
    """The production server, recording every request, with ``attack`` applied."""

    attack: ClassVar[str] = ""
    received: ClassVar[list[tuple[str, str, Message]]] = []
    #: in the split-view attack: who is told that ``VICTIM`` dropped
    FOOLED: ClassVar[str] = "hospital-1"
    VICTIM: ClassVar[str] = "hospital-2"

    def _record(self, rpc: str, caller: str, request: Message) -> None:
        copy = type(request)()
        copy.CopyFrom(request)
        MaliciousServer.received.append((rpc, caller, copy))

    async def GetRoundStatus(self, request, context):  # noqa: N802
        status = await super().GetRoundStatus(request, context)
        if status.HasField("secure"):
            if self.attack == "downgrade":
                status.ClearField("secure")
            elif self.attack == "threshold-one":
                status.secure.threshold = 1
            elif self.attack == "self-participant":
                # five "participants": the complete graph, t = 3 and 3 survivors pass every floor
                status.secure.participants.append("aggregator")
                status.secure.neighbours = 4
                status.secure.threshold = status.secure.min_survivors = 3
        return status

    async def AdvertiseKeys(self, request, context):  # noqa: N802
        caller, _ = await self._caller(context)
        self._record("AdvertiseKeys", caller, request)
        reply = await super().AdvertiseKeys(request, context)
        if self.attack == "self-participant":
            # the aggregator's own keys, signed with its own (server-auth) certificate
            secure = self.coordinator.secure_round
            assert secure is not None
            assignment = secure.assignment(caller)
            info = type(assignment.info)(
                assignment.info.round,
                assignment.info.round_id,
                (*assignment.info.participants, "aggregator"),
            )
            params = type(assignment.params).for_round(len(info.participants))
            posing = SecAggClient("aggregator", info, params, self._identity)
            reply.adverts.append(secure_codec.advert_to_proto(posing.advertise()))
        return reply

    async def ShareKeys(self, request, context):  # noqa: N802
        caller, _ = await self._caller(context)
        self._record("ShareKeys", caller, request)
        return await super().ShareKeys(request, context)

    async def SubmitUpdate(self, request, context):  # noqa: N802
        caller, _ = await self._caller(context)
        self._record("SubmitUpdate", caller, request)
        return await super().SubmitUpdate(request, context)

    async def SubmitMaskedUpdate(self, request, context):  # noqa: N802
        caller, _ = await self._caller(context)
        self._record("SubmitMaskedUpdate", caller, request)
        reply = await super().SubmitMaskedUpdate(request, context)
        if self.attack == "split-view" and caller == self.FOOLED:
            survivors = [name for name in reply.survivors if name != self.VICTIM]
            del reply.survivors[:]
            reply.survivors.extend(survivors)
            reply.dropped.append(self.VICTIM)
        return reply

    async def ConfirmSurvivors(self, request, context):  # noqa: N802
        caller, _ = await self._caller(context)
        self._record("ConfirmSurvivors", caller, request)
        if self.attack == "split-view" and caller == self.FOOLED:
            # accept the signature over the lie unchecked; forward the honest neighbours' own
            secure = await self._after_step(context, SecureStep.CONSISTENCY)
            return pb.SurvivorSignatures(
                round=request.round,
                signatures=[
                    secure_codec.signature_to_proto(item) for item in secure.signatures_for(caller)
                ],
            )
        return await super().ConfirmSurvivors(request, context)

    async def Unmask(self, request, context):  # noqa: N802
        caller, _ = await self._caller(context)
        self._record("Unmask", caller, request)
        return await super().Unmask(request, context)


class FixedTrainer:
    """Hands back fixed weights: each hospital's update is known to the test, not trained."""

    def __init__(self, update: torch.Tensor) -> None:
        self.update = update

    def train_round(self, global_state):
        return LocalResult(
            state={"w": global_state["w"] + self.update},
            num_samples=10,
            epsilon=None,
            steps=1,
            train_seconds=0.0,
            loss=0.0,
        )

    def round_plan(self):  # pragma: no cover - no privacy accounting in these rounds
        raise AssertionError("not called without a privacy ledger")

    def raise_noise(self, noise_multiplier):  # pragma: no cover
        raise AssertionError("not called without a privacy ledger")


class ByzantineClient(FederationClient):
    """Deals one neighbour a garbage ciphertext and answers the unmask step with garbage."""

    def share_keys(self, round_number, shares, *, wait_s):
        first, *rest = shares
        spoiled = EncryptedShare(first.sender, first.recipient, bytes(len(first.ciphertext)))
        return super().share_keys(round_number, [spoiled, *rest], wait_s=wait_s)

    def unmask(self, round_number, shares):
        garbage = [UnmaskShare(s.owner, s.kind, bytes(range(32))) for s in shares]
        return super().unmask(round_number, garbage)


def _updates() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return {name: (torch.rand(SHAPE, generator=generator) - 0.5) / 4 for name in NAMES}


def _federation(
    pki, monkeypatch, attack: str, *, byzantine: str | None = None
) -> tuple[Any, dict[str, HospitalSummary], dict[str, torch.Tensor]]:
    """One secure round of four hospitals against ``attack``; returns the outcome, each
    hospital's summary and the updates they held."""
    MaliciousServer.attack = attack
    MaliciousServer.received = []
    monkeypatch.setattr(threaded, "FederationServer", MaliciousServer)
    updates = _updates()
    if byzantine is not None:
        updates[byzantine] = torch.zeros(SHAPE)  # the sum of the others is what counts
    coordinator = FederationCoordinator(
        hospitals=NAMES,
        global_state={"w": torch.zeros(SHAPE)},
        total_rounds=1,
        secure=SecureSettings(phase_seconds=4),
    )
    summaries: dict[str, HospitalSummary] = {}
    with threaded.ThreadedFederationServer(
        coordinator, identity=pki.aggregator, max_message_bytes=LIMIT
    ) as served:

        def hospital(name: str) -> None:
            kind = ByzantineClient if name == byzantine else FederationClient
            with kind(served.target, pki.identity(name), max_message_bytes=LIMIT) as client:
                summaries[name] = run_hospital(
                    client,
                    FixedTrainer(updates[name]),
                    num_samples=10,
                    policy=HospitalPolicy(require_secure=True),
                    poll_seconds=1.0,
                )

        with ThreadPoolExecutor(len(NAMES)) as pool:
            running = [pool.submit(hospital, name) for name in NAMES]
            served.call(served.server.wait_for_hospitals(len(NAMES), timeout_s=30), 40)
            outcome = served.call(served.server.run_round(deadline_s=20), timeout_s=90)
            served.call(served.server.finish())
            for future in running:
                future.result(60)
        final = served.server.coordinator.global_state
    return outcome, summaries, {"final": final["w"], **updates}


def _rpcs(*names: str) -> list[tuple[str, str, Message]]:
    return [item for item in MaliciousServer.received if item[0] in names]


@pytest.mark.parametrize("attack", ["downgrade", "threshold-one"])
def test_a_weakened_round_is_declined_and_nothing_is_sent(pki, monkeypatch, attack) -> None:
    """Stripped of its secure parameters, or announced with t = 1, the round is declined by
    every hospital from its own policy: no update and no key leaves any hospital."""
    outcome, summaries, _ = _federation(pki, monkeypatch, attack)
    assert all(summary.rounds_declined == [1] for summary in summaries.values())
    assert _rpcs("SubmitUpdate", "AdvertiseKeys", "SubmitMaskedUpdate") == []
    assert outcome.participants == ()


def test_the_aggregator_cannot_join_the_sum_as_a_participant(pki, monkeypatch) -> None:
    """Listing itself among the participants with its own certificate, the aggregator gets
    no share: every hospital refuses a server-auth certificate as a participant."""
    outcome, summaries, _ = _federation(pki, monkeypatch, "self-participant")
    assert all(summary.rounds_aborted == [1] for summary in summaries.values())
    assert _rpcs("ShareKeys", "SubmitMaskedUpdate", "Unmask") == []
    assert outcome.participants == ()


def test_split_survivor_views_reveal_no_key_of_the_victim(pki, monkeypatch) -> None:
    """Told that hospital-2 dropped, hospital-1 signs that view but then sees that its
    neighbours signed another: it reveals nothing. No key share of hospital-2 ever reaches
    the aggregator, and the round still completes from the honest views."""
    outcome, summaries, held = _federation(pki, monkeypatch, "split-view")
    fooled, victim = MaliciousServer.FOOLED, MaliciousServer.VICTIM
    assert summaries[fooled].rounds_aborted == [1]
    answers = [request for _, caller, request in _rpcs("Unmask")]
    assert fooled not in [caller for _, caller, _ in _rpcs("Unmask")]
    assert not any(s.owner == victim and s.kind == "key" for a in answers for s in a.shares)
    # the fooled hospital's upload is in the sum (its seed came from its other holders)
    assert outcome.participants == NAMES
    expected = torch.stack([held[name] for name in NAMES]).mean(0)
    assert torch.allclose(held["final"], expected, atol=2 * STEP)


def test_a_byzantine_hospital_is_named_and_the_round_completes_exactly(pki, monkeypatch) -> None:
    """hospital-3 deals a neighbour a garbage ciphertext and answers the unmask step with
    garbage: the neighbour keeps going and complains, the garbage fails the commitments and
    is dropped, hospital-3 is named, and the sum of the others is exact."""
    outcome, summaries, held = _federation(pki, monkeypatch, "", byzantine="hospital-3")
    assert outcome.participants == NAMES and outcome.aborted is None
    named = {culprit.hospital for culprit in outcome.culprits}
    assert "hospital-3" in named
    assert any("not the one dealt" in c.fault for c in outcome.culprits)
    complaints = [c for _, _, r in _rpcs("SubmitMaskedUpdate") for c in r.complaints]
    assert [c.dealer for c in complaints] == ["hospital-3"]
    honest = [name for name in NAMES if name != "hospital-3"]
    assert all(summaries[name].rounds_submitted == [1] for name in honest)
    expected = torch.stack([held[name] for name in honest]).sum(0) / len(NAMES)
    assert torch.allclose(held["final"], expected, atol=2 * STEP)
    assert np.isfinite(held["final"].numpy()).all()
