"""The aggregator's gRPC server: the :class:`FederationCoordinator` on the wire.

It serves mutual TLS 1.3 only (:mod:`securemed.transport.tls`) and knows each caller by its
client certificate. Everything runs on one asyncio loop, so the coordinator is never touched by
two requests at once and needs no lock. Round status is a long poll: a hospital's
``GetRoundStatus`` returns as soon as a round it has not seen opens, so a round starts without
polling delay. A bad request is answered with the status of its domain error and changes
nothing; the server keeps serving every other hospital.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from securemed.errors import ConfigError, FederationFinished, SecureMedError
from securemed.federation.coordinator import (
    FederationCoordinator,
    Phase,
    RoundOutcome,
)
from securemed.federation.secure_round import SecureRound, SecureStep
from securemed.federation.tensors import decode_state, encode_state, state_nbytes
from securemed.pki import FederationIdentity
from securemed.transport import (
    CIPHER_SUITES_VARIABLE,
    TLS12_DISABLED_SUITES,
    secure_codec,
    tls,
)
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
        identity: the aggregator's certificate and key, and the federation CA.
        max_message_bytes: largest message accepted or sent, the same limit clients set.
        clock: monotonic seconds; tests may pass their own.
        revocations: the federation CA's revocation list; every call from a certificate on it
            is refused (PERMISSION_DENIED), from the moment the list's file changes.
    """

    def __init__(
        self,
        coordinator: FederationCoordinator,
        *,
        identity: FederationIdentity,
        max_message_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        revocations: tls.RevocationList | None = None,
    ) -> None:
        self._coordinator = coordinator
        self._revocations = revocations
        self._identity = identity
        self._max_message_bytes = max_message_bytes
        self._clock = clock
        self._changed = asyncio.Condition()
        self._server: grpc.aio.Server | None = None

    @property
    def coordinator(self) -> FederationCoordinator:
        return self._coordinator

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port) with mutual TLS 1.3; return the port.

        Raises:
            ConfigError: the process would accept TLS 1.2 (gRPC was imported before the TLS 1.3
                setting; see :mod:`securemed.transport.tls`); the server is stopped first.
        """
        server = grpc.aio.server(options=channel_options(self._max_message_bytes))
        pb_grpc.add_FederationServicer_to_server(self, server)
        bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials(self._identity))
        await server.start()
        self._server = server
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        refused = await asyncio.get_running_loop().run_in_executor(
            None, tls.refuses_tls12, probe_host, bound
        )
        if not refused:
            await self.stop(grace_s=0)
            raise ConfigError(
                "the aggregator would accept TLS 1.2; start the process with "
                f"{CIPHER_SUITES_VARIABLE}={TLS12_DISABLED_SUITES} (gRPC was imported "
                "before securemed.transport could set it)"
            )
        # gRPC's own line for this refusal is kept quiet (securemed.transport says how): this
        # is the one an operator reads.
        log.info("TLS 1.2 checked and refused: serving TLS 1.3 only", extra={"port": bound})
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
        """Open a round, wait for every selected hospital or the deadline, then aggregate.

        Under secure aggregation the deadline covers training and key advertisement; each
        later secure step waits at most ``phase_seconds`` for the slowest hospital.
        """
        coordinator = self._coordinator
        number, selected = coordinator.open_round(now=self._clock(), deadline_s=deadline_s)
        log.info("round opened", extra={"round": number, "selected": len(selected)})
        secure = coordinator.secure_round
        async with self._changed:
            self._changed.notify_all()
            if secure is None:
                await self._wait(coordinator.all_submitted, deadline_s, number)
            else:
                await self._run_secure_steps(secure, deadline_s, number)
            if coordinator.phase is Phase.FINISHED:
                raise FederationFinished(f"the federation was finished during round {number}")
            outcome = coordinator.close_round()
            self._changed.notify_all()
        return outcome

    async def _wait(self, done: Callable[[], bool], timeout_s: float, number: int) -> None:
        """Wait (holding the condition) until ``done`` or the federation finishes or time is up."""
        try:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: done() or self._coordinator.phase is Phase.FINISHED),
                timeout_s,
            )
        except TimeoutError:
            log.warning("round step timed out", extra={"round": number})

    async def _run_secure_steps(self, secure: SecureRound, deadline_s: float, number: int) -> None:
        timeout = deadline_s
        while secure.step is not SecureStep.DONE and self._coordinator.phase is not Phase.FINISHED:
            await self._wait(lambda: not secure.pending(), timeout, number)
            step = secure.step
            secure.close_step()
            log.info("secure step closed", extra={"round": number, "step": step.value})
            self._changed.notify_all()
            timeout = secure.settings.phase_seconds

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
        hospital, _ = await self._caller(context)
        await self._guard(
            context,
            lambda: self._coordinator.join(hospital, num_samples=request.num_samples),
        )
        await self._notify()
        return pb.JoinResponse(
            total_rounds=self._coordinator.total_rounds, current_round=self._coordinator.round
        )

    async def GetRoundStatus(  # noqa: N802
        self, request: pb.RoundStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.RoundStatus:
        coordinator = self._coordinator
        hospital, _ = await self._caller(context)
        await self._guard(context, lambda: coordinator.view(hospital, now=self._clock()))

        def ready() -> bool:
            return coordinator.phase is Phase.FINISHED or (
                coordinator.phase is Phase.OPEN and coordinator.round > request.after_round
            )

        wait = min(max(request.wait_seconds, 0.0), MAX_POLL_SECONDS)
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(ready), wait)
        view = coordinator.view(hospital, now=self._clock())
        status = pb.RoundStatus(
            round=view.round,
            phase=_PHASES[view.phase],
            selected=view.selected,
            seconds_left=view.seconds_left,
            total_rounds=view.total_rounds,
        )
        if view.secure is not None:
            status.secure.CopyFrom(secure_codec.assignment_to_proto(view.secure))
        return status

    async def GetGlobalModel(  # noqa: N802
        self, request: pb.GlobalModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GlobalModel:
        hospital, _ = await self._caller(context)
        state = await self._guard(
            context, lambda: self._coordinator.model_for(hospital, request.round)
        )
        return pb.GlobalModel(round=request.round, tensors=to_proto(encode_state(state)))

    async def SubmitUpdate(  # noqa: N802
        self, request: pb.UpdateRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateReceipt:
        started = time.perf_counter()
        hospital, _ = await self._caller(context)
        blobs = from_proto(request.tensors)
        report = secure_codec.report_from_proto(request.report, update_bytes=state_nbytes(blobs))

        def accept() -> tuple[int, int]:
            update = decode_state(blobs)
            return self._coordinator.submit(
                hospital, request.round, update, report, now=self._clock()
            )

        received, expected = await self._guard(context, accept)
        await self._notify()
        return pb.UpdateReceipt(
            round=request.round,
            received=received,
            expected=expected,
            server_seconds=time.perf_counter() - started,
        )

    async def DeclineRound(  # noqa: N802
        self, request: pb.DeclineRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeclineReceipt:
        hospital, _ = await self._caller(context)
        await self._guard(context, lambda: self._coordinator.decline(hospital, request.round))
        log.info(
            "hospital declined a round",
            extra={
                "round": request.round,
                "hospital": hospital,
                "reason": pb.DeclineReason.Name(request.reason),
            },
        )
        await self._notify()
        return pb.DeclineReceipt(round=request.round)

    # -- secure aggregation ---------------------------------------------------------------

    async def _after_step(self, context: grpc.aio.ServicerContext, step: SecureStep) -> SecureRound:
        """Hold the call until the round's secure step ``step`` has closed.

        Returns the round's secure sums as they were when the call came in: if the step's
        closing aborted the caller's bucket, the round may already be closed, and asking that
        object is how the caller learns its round was aborted rather than "not open".
        """
        secure = self._coordinator.secure_round
        if secure is None:
            raise AssertionError("a secure step was accepted outside a secure round")

        def closed() -> bool:
            current = self._coordinator.secure_round
            return current is not secure or current is None or current.step is not step

        async with self._changed:
            self._changed.notify_all()  # the server may be waiting for this very message
            await self._changed.wait_for(
                lambda: closed() or self._coordinator.phase is Phase.FINISHED
            )
        if self._coordinator.phase is Phase.FINISHED:
            await self._guard(context, self._raise_finished)
        return secure

    @staticmethod
    def _raise_finished() -> None:
        raise FederationFinished("the federation finished during a secure round")

    async def AdvertiseKeys(  # noqa: N802
        self, request: pb.AdvertiseKeysRequest, context: grpc.aio.ServicerContext
    ) -> pb.NeighbourKeys:
        hospital, certificate = await self._caller(context)
        advert = secure_codec.advert_from_proto(request.advert)
        await self._guard(
            context,
            lambda: self._coordinator.secure_advertise(
                hospital, request.round, advert, certificate=certificate
            ),
        )
        secure = await self._after_step(context, SecureStep.ADVERTISE)
        adverts = await self._guard(context, lambda: secure.adverts_for(hospital))
        return pb.NeighbourKeys(
            round=request.round, adverts=[secure_codec.advert_to_proto(a) for a in adverts]
        )

    async def ShareKeys(  # noqa: N802
        self, request: pb.ShareKeysRequest, context: grpc.aio.ServicerContext
    ) -> pb.RoutedShares:
        hospital, _ = await self._caller(context)
        shares = [secure_codec.share_from_proto(share) for share in request.shares]
        await self._guard(
            context, lambda: self._coordinator.secure_share(hospital, request.round, shares)
        )
        secure = await self._after_step(context, SecureStep.SHARE)
        routed = await self._guard(context, lambda: secure.shares_for(hospital))
        return pb.RoutedShares(
            round=request.round, shares=[secure_codec.share_to_proto(s) for s in routed]
        )

    async def SubmitMaskedUpdate(  # noqa: N802
        self, request: pb.MaskedUpdateRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnmaskRequest:
        hospital, _ = await self._caller(context)
        report = secure_codec.report_from_proto(request.report, update_bytes=len(request.masked))

        complaints = [secure_codec.complaint_from_proto(item) for item in request.complaints]

        def accept() -> None:
            masked = secure_codec.masked_from_bytes(request.masked)
            self._coordinator.secure_upload(hospital, request.round, masked, report, complaints)

        await self._guard(context, accept)
        secure = await self._after_step(context, SecureStep.MASK)
        survivors, dropped = await self._guard(context, lambda: secure.unmask_request_for(hospital))
        return pb.UnmaskRequest(round=request.round, survivors=survivors, dropped=dropped)

    async def ConfirmSurvivors(  # noqa: N802
        self, request: pb.ConfirmSurvivorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SurvivorSignatures:
        hospital, _ = await self._caller(context)
        confirmation = secure_codec.signature_from_proto(request.confirmation)
        await self._guard(
            context,
            lambda: self._coordinator.secure_confirm(hospital, request.round, confirmation),
        )
        secure = await self._after_step(context, SecureStep.CONSISTENCY)
        signatures = await self._guard(context, lambda: secure.signatures_for(hospital))
        return pb.SurvivorSignatures(
            round=request.round,
            signatures=[secure_codec.signature_to_proto(item) for item in signatures],
        )

    async def Unmask(  # noqa: N802
        self, request: pb.UnmaskResponse, context: grpc.aio.ServicerContext
    ) -> pb.UpdateReceipt:
        hospital, _ = await self._caller(context)
        shares = [secure_codec.unmask_share_from_proto(share) for share in request.shares]
        await self._guard(
            context, lambda: self._coordinator.secure_unmask(hospital, request.round, shares)
        )
        await self._notify()
        survivors, _ = await self._guard(
            context, lambda: self._coordinator.secure_unmask_request(hospital, request.round)
        )
        return pb.UpdateReceipt(
            round=request.round, received=len(survivors), expected=len(survivors)
        )

    async def _caller(self, context: grpc.aio.ServicerContext) -> tuple[str, bytes]:
        """The calling hospital, from its verified, unrevoked client certificate."""
        return await self._guard(context, lambda: tls.caller_identity(context, self._revocations))

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
