"""The aggregator's gRPC server: the :class:`FederationCoordinator` on the wire.

Everything runs on one asyncio loop, so the coordinator is never touched by two requests at
once and needs no lock. Round status is a long poll: a hospital's ``GetRoundStatus`` returns as
soon as a round it has not seen opens, so a round starts without polling delay. A bad request
is answered with the status of its domain error and changes nothing; the server keeps serving
every other hospital.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from securemed.errors import FederationFinished, SecureMedError
from securemed.federation.coordinator import (
    FederationCoordinator,
    HospitalReport,
    Phase,
    RoundOutcome,
)
from securemed.federation.tensors import decode_state, encode_state, state_nbytes
from securemed.transport.codec import channel_options, from_proto, to_proto
from securemed.transport.federation.v1 import federation_pb2 as pb
from securemed.transport.federation.v1 import federation_pb2_grpc as pb_grpc
from securemed.transport.status import ERROR_CLASS_KEY, code_for

log = logging.getLogger(__name__)

#: a long poll never holds a call longer than this, whatever the client asks
MAX_POLL_SECONDS = 30.0

_PHASES = {
    Phase.WAITING: pb.ROUND_PHASE_WAITING,
    Phase.OPEN: pb.ROUND_PHASE_OPEN,
    Phase.FINISHED: pb.ROUND_PHASE_FINISHED,
}

T = TypeVar("T")


class FederationServer(pb_grpc.FederationServicer):
    """Hosts a coordinator over gRPC and drives its rounds.

    Args:
        coordinator: the round state machine this server exposes.
        max_message_bytes: largest message accepted or sent, the same limit clients set.
        clock: monotonic seconds; tests may pass their own.
    """

    def __init__(
        self,
        coordinator: FederationCoordinator,
        *,
        max_message_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._coordinator = coordinator
        self._max_message_bytes = max_message_bytes
        self._clock = clock
        self._changed = asyncio.Condition()
        self._server: grpc.aio.Server | None = None

    @property
    def coordinator(self) -> FederationCoordinator:
        return self._coordinator

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the bound port."""
        server = grpc.aio.server(options=channel_options(self._max_message_bytes))
        pb_grpc.add_FederationServicer_to_server(self, server)
        bound = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        self._server = server
        log.info("federation server listening", extra={"host": host, "port": bound})
        return bound

    async def stop(self, *, grace_s: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    async def wait_for_hospitals(self, count: int, *, timeout_s: float) -> tuple[str, ...]:
        """Wait until ``count`` hospitals have joined; TimeoutError names who is missing."""
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(self._coordinator.joined) >= count),
                    timeout_s,
                )
        except TimeoutError:
            raise TimeoutError(
                f"only {len(self._coordinator.joined)} of {count} hospitals joined "
                f"within {timeout_s:.0f} s"
            ) from None
        return self._coordinator.joined

    async def run_round(self, *, deadline_s: float) -> RoundOutcome:
        """Open a round, wait for every selected hospital or the deadline, then aggregate."""
        number, selected = self._coordinator.open_round(now=self._clock(), deadline_s=deadline_s)
        log.info("round opened", extra={"round": number, "selected": len(selected)})
        async with self._changed:
            self._changed.notify_all()
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: (
                            self._coordinator.all_submitted()
                            or self._coordinator.phase is Phase.FINISHED
                        )
                    ),
                    deadline_s,
                )
            except TimeoutError:
                log.warning("round deadline reached", extra={"round": number})
            if self._coordinator.phase is Phase.FINISHED:
                raise FederationFinished(f"the federation was finished during round {number}")
            outcome = self._coordinator.close_round()
            self._changed.notify_all()
        return outcome

    async def finish(self) -> None:
        """End the federation: pending long polls return FINISHED and hospitals exit."""
        async with self._changed:
            self._coordinator.finish()
            self._changed.notify_all()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- RPCs ------------------------------------------------------------------------------

    async def Join(  # noqa: N802 - gRPC method names are fixed by the proto
        self, request: pb.JoinRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinResponse:
        await self._guard(
            context,
            lambda: self._coordinator.join(request.hospital, num_samples=request.num_samples),
        )
        await self._notify()
        return pb.JoinResponse(
            total_rounds=self._coordinator.total_rounds, current_round=self._coordinator.round
        )

    async def GetRoundStatus(  # noqa: N802
        self, request: pb.RoundStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.RoundStatus:
        coordinator = self._coordinator
        await self._guard(context, lambda: coordinator.view(request.hospital, now=self._clock()))

        def ready() -> bool:
            return coordinator.phase is Phase.FINISHED or (
                coordinator.phase is Phase.OPEN and coordinator.round > request.after_round
            )

        wait = min(max(request.wait_seconds, 0.0), MAX_POLL_SECONDS)
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(ready), wait)
        view = coordinator.view(request.hospital, now=self._clock())
        return pb.RoundStatus(
            round=view.round,
            phase=_PHASES[view.phase],
            selected=view.selected,
            seconds_left=view.seconds_left,
            total_rounds=view.total_rounds,
        )

    async def GetGlobalModel(  # noqa: N802
        self, request: pb.GlobalModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GlobalModel:
        state = await self._guard(
            context, lambda: self._coordinator.model_for(request.hospital, request.round)
        )
        return pb.GlobalModel(round=request.round, tensors=to_proto(encode_state(state)))

    async def SubmitUpdate(  # noqa: N802
        self, request: pb.UpdateRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateReceipt:
        started = time.perf_counter()
        blobs = from_proto(request.tensors)
        report = HospitalReport(
            num_samples=request.num_samples,
            epsilon=request.epsilon if request.HasField("epsilon") else None,
            train_seconds=request.train_seconds,
            serialize_seconds=request.serialize_seconds,
            loss=request.loss,
            update_bytes=state_nbytes(blobs),
        )

        def accept() -> tuple[int, int]:
            update = decode_state(blobs)
            return self._coordinator.submit(
                request.hospital, request.round, update, report, now=self._clock()
            )

        received, expected = await self._guard(context, accept)
        await self._notify()
        return pb.UpdateReceipt(
            round=request.round,
            received=received,
            expected=expected,
            server_seconds=time.perf_counter() - started,
        )

    async def _guard(self, context: grpc.aio.ServicerContext, action: Callable[[], T]) -> T:
        """Run a coordinator call; a domain error becomes its gRPC status and nothing changes."""
        try:
            return action()
        except SecureMedError as error:
            log.warning(
                "request refused", extra={"error": type(error).__name__, "detail": str(error)}
            )
            await context.abort(
                code_for(error),
                str(error),
                trailing_metadata=((ERROR_CLASS_KEY, type(error).__name__),),
            )
            raise  # abort raises; this line only tells type checkers the call does not return
