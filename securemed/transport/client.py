"""The hospital's gRPC client: dials out to the aggregator, never listens.

Plain blocking calls, because a hospital alternates between waiting for a round and training
on its CPU; a failed call raises the domain error the aggregator named (``StaleRound``,
``InvalidUpdate``, ...) so the hospital's round logic never handles gRPC types. The channel is
mutual TLS 1.3 with the hospital's federation certificate, which is how the aggregator knows
who calls.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import numpy as np
import torch

from securemed.errors import ConfigError
from securemed.federation.coordinator import HospitalReport, Phase, RoundView
from securemed.federation.tensors import decode_state, encode_state, state_nbytes
from securemed.pki import FederationIdentity
from securemed.secagg.protocol import (
    EncryptedShare,
    KeyAdvert,
    ShareComplaint,
    SurvivorSignature,
    UnmaskShare,
)
from securemed.transport import secure_codec, tls
from securemed.transport.codec import channel_options, from_proto, to_proto
from securemed.transport.federation.v1 import federation_pb2 as pb
from securemed.transport.federation.v1 import federation_pb2_grpc as pb_grpc
from securemed.transport.status import domain_error

_PHASES = {
    pb.ROUND_PHASE_WAITING: Phase.WAITING,
    pb.ROUND_PHASE_OPEN: Phase.OPEN,
    pb.ROUND_PHASE_FINISHED: Phase.FINISHED,
}


#: why a hospital sits a round out: its budget, or its own security and privacy policy
DeclineReason = Literal["budget", "policy"]
_DECLINE_REASONS = {"budget": pb.DECLINE_REASON_BUDGET, "policy": pb.DECLINE_REASON_POLICY}


@dataclass(frozen=True)
class SubmitTiming:
    """Where the time of one submission went, for the round's time split."""

    received: int
    expected: int
    serialize_seconds: float
    transport_seconds: float
    server_seconds: float
    update_bytes: int


class FederationClient:
    """A hospital's connection to the aggregator.

    Args:
        target: ``host:port`` of the aggregator.
        identity: this hospital's certificate, key and the federation CA; its common name is
            the hospital's name in the federation.
        max_message_bytes: the same limit the aggregator sets.
        timeout_s: deadline of each call (a long poll adds its wait to it).
        server_name: the name the aggregator's certificate must carry, when ``target`` dials
            another (an IP address, say); None checks the host of ``target``.
    """

    def __init__(
        self,
        target: str,
        identity: FederationIdentity,
        *,
        max_message_bytes: int,
        timeout_s: float = 120.0,
        server_name: str | None = tls.DEFAULT_SERVER_NAME,
    ) -> None:
        self.hospital = identity.name
        self.identity = identity
        self._timeout_s = timeout_s
        self._channel = grpc.secure_channel(
            target,
            tls.channel_credentials(identity),
            options=[*channel_options(max_message_bytes), *tls.channel_name_options(server_name)],
        )
        self._stub = pb_grpc.FederationStub(self._channel)

    def __enter__(self) -> FederationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, *, extra_timeout_s: float = 0.0) -> Any:
        try:
            return method(request, timeout=self._timeout_s + extra_timeout_s)
        except grpc.RpcError as error:
            raise domain_error(error) from None

    def join(self, *, num_samples: int) -> int:
        """Join the federation; returns the number of rounds it will run."""
        reply = self._call(self._stub.Join, pb.JoinRequest(num_samples=num_samples))
        return int(reply.total_rounds)

    def round_status(self, *, after_round: int, wait_s: float) -> RoundView:
        """Long-poll until a round later than ``after_round`` opens, or ``wait_s`` passes."""
        request = pb.RoundStatusRequest(after_round=after_round, wait_seconds=wait_s)
        reply = self._call(self._stub.GetRoundStatus, request, extra_timeout_s=wait_s)
        secure, broken = None, None
        if reply.HasField("secure"):
            try:
                secure = secure_codec.assignment_from_proto(reply.secure, reply.round)
            except ConfigError as error:
                broken = str(error)
        return RoundView(
            round=reply.round,
            phase=_PHASES[reply.phase],
            selected=reply.selected,
            seconds_left=reply.seconds_left,
            total_rounds=reply.total_rounds,
            secure=secure,
            broken_secure=broken,
        )

    def global_model(self, round_number: int) -> dict[str, torch.Tensor]:
        request = pb.GlobalModelRequest(round=round_number)
        reply = self._call(self._stub.GetGlobalModel, request)
        return decode_state(from_proto(reply.tensors))

    def submit_update(
        self, round_number: int, update: Mapping[str, torch.Tensor], report: HospitalReport
    ) -> SubmitTiming:
        """Send an update (trained minus global weights) and report where the time went."""
        started = time.perf_counter()
        blobs = encode_state(update)
        request = pb.UpdateRequest(round=round_number, tensors=to_proto(blobs))
        serialize_seconds = time.perf_counter() - started
        request.report.CopyFrom(secure_codec.report_to_proto(report))
        sent = time.perf_counter()
        receipt = self._call(self._stub.SubmitUpdate, request)
        call_seconds = time.perf_counter() - sent
        return SubmitTiming(
            received=receipt.received,
            expected=receipt.expected,
            serialize_seconds=serialize_seconds,
            transport_seconds=max(0.0, call_seconds - receipt.server_seconds),
            server_seconds=receipt.server_seconds,
            update_bytes=state_nbytes(blobs),
        )

    def decline(self, round_number: int, *, reason: DeclineReason) -> None:
        """Sit the round out (budget or policy); the aggregator stops waiting for us."""
        request = pb.DeclineRequest(round=round_number, reason=_DECLINE_REASONS[reason])
        self._call(self._stub.DeclineRound, request)

    # -- secure aggregation: each call returns when the aggregator closes its step ----------

    def advertise_keys(
        self, round_number: int, advert: KeyAdvert, *, wait_s: float
    ) -> list[KeyAdvert]:
        """Send our signed keys; returns the neighbours' adverts once everyone advertised."""
        request = pb.AdvertiseKeysRequest(
            round=round_number, advert=secure_codec.advert_to_proto(advert)
        )
        reply = self._call(self._stub.AdvertiseKeys, request, extra_timeout_s=wait_s)
        return [secure_codec.advert_from_proto(item) for item in reply.adverts]

    def share_keys(
        self, round_number: int, shares: Sequence[EncryptedShare], *, wait_s: float
    ) -> list[EncryptedShare]:
        """Send our encrypted shares; returns the ones addressed to us."""
        request = pb.ShareKeysRequest(
            round=round_number, shares=[secure_codec.share_to_proto(s) for s in shares]
        )
        reply = self._call(self._stub.ShareKeys, request, extra_timeout_s=wait_s)
        return [secure_codec.share_from_proto(item) for item in reply.shares]

    def submit_masked(
        self,
        round_number: int,
        masked: np.ndarray,
        report: HospitalReport,
        *,
        complaints: Sequence[ShareComplaint] = (),
        wait_s: float,
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Upload our masked update (and complaints about dealers' shares); returns
        (survivors, dropped), the view to confirm and unmask."""
        request = pb.MaskedUpdateRequest(
            round=round_number,
            masked=secure_codec.masked_to_bytes(masked),
            report=secure_codec.report_to_proto(report),
            complaints=[secure_codec.complaint_to_proto(item) for item in complaints],
        )
        reply = self._call(self._stub.SubmitMaskedUpdate, request, extra_timeout_s=wait_s)
        return tuple(reply.survivors), tuple(reply.dropped)

    def confirm_survivors(
        self, round_number: int, confirmation: SurvivorSignature, *, wait_s: float
    ) -> list[SurvivorSignature]:
        """Send our signature over the view; returns our neighbours' signatures."""
        request = pb.ConfirmSurvivorsRequest(
            round=round_number, confirmation=secure_codec.signature_to_proto(confirmation)
        )
        reply = self._call(self._stub.ConfirmSurvivors, request, extra_timeout_s=wait_s)
        return [secure_codec.signature_from_proto(item) for item in reply.signatures]

    def unmask(self, round_number: int, shares: Sequence[UnmaskShare]) -> int:
        """Send our unmask shares; returns how many hospitals the round's sum holds."""
        request = pb.UnmaskResponse(
            round=round_number, shares=[secure_codec.unmask_share_to_proto(s) for s in shares]
        )
        return int(self._call(self._stub.Unmask, request).received)
