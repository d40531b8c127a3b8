"""The hospital's gRPC client: dials out to the aggregator, never listens.

Plain blocking calls, because a hospital alternates between waiting for a round and training
on its CPU; a failed call raises the domain error the aggregator named (``StaleRound``,
``InvalidUpdate``, ...) so the hospital's round logic never handles gRPC types.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import torch

from securemed.federation.coordinator import Phase, RoundView
from securemed.federation.tensors import decode_state, encode_state, state_nbytes
from securemed.transport.codec import channel_options, from_proto, to_proto
from securemed.transport.federation.v1 import federation_pb2 as pb
from securemed.transport.federation.v1 import federation_pb2_grpc as pb_grpc
from securemed.transport.status import domain_error

_PHASES = {
    pb.ROUND_PHASE_WAITING: Phase.WAITING,
    pb.ROUND_PHASE_OPEN: Phase.OPEN,
    pb.ROUND_PHASE_FINISHED: Phase.FINISHED,
}


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
        hospital: this hospital's name in the federation.
        max_message_bytes: the same limit the aggregator sets.
        timeout_s: deadline of each call (a long poll adds its wait to it).
    """

    def __init__(
        self, target: str, hospital: str, *, max_message_bytes: int, timeout_s: float = 120.0
    ) -> None:
        self.hospital = hospital
        self._timeout_s = timeout_s
        self._channel = grpc.insecure_channel(target, options=channel_options(max_message_bytes))
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
        reply = self._call(
            self._stub.Join, pb.JoinRequest(hospital=self.hospital, num_samples=num_samples)
        )
        return int(reply.total_rounds)

    def round_status(self, *, after_round: int, wait_s: float) -> RoundView:
        """Long-poll until a round later than ``after_round`` opens, or ``wait_s`` passes."""
        request = pb.RoundStatusRequest(
            hospital=self.hospital, after_round=after_round, wait_seconds=wait_s
        )
        reply = self._call(self._stub.GetRoundStatus, request, extra_timeout_s=wait_s)
        return RoundView(
            round=reply.round,
            phase=_PHASES[reply.phase],
            selected=reply.selected,
            seconds_left=reply.seconds_left,
            total_rounds=reply.total_rounds,
        )

    def global_model(self, round_number: int) -> dict[str, torch.Tensor]:
        request = pb.GlobalModelRequest(hospital=self.hospital, round=round_number)
        reply = self._call(self._stub.GetGlobalModel, request)
        return decode_state(from_proto(reply.tensors))

    def submit_update(
        self,
        round_number: int,
        update: Mapping[str, torch.Tensor],
        *,
        num_samples: int,
        epsilon: float | None,
        train_seconds: float,
        loss: float,
    ) -> SubmitTiming:
        """Send an update (trained minus global weights) and report where the time went."""
        started = time.perf_counter()
        blobs = encode_state(update)
        request = pb.UpdateRequest(
            hospital=self.hospital,
            round=round_number,
            num_samples=num_samples,
            tensors=to_proto(blobs),
            train_seconds=train_seconds,
            loss=loss,
        )
        if epsilon is not None:
            request.epsilon = epsilon
        serialize_seconds = time.perf_counter() - started
        request.serialize_seconds = serialize_seconds
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
