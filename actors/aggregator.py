"""The aggregator actor: hosts the federation's gRPC server and owns the round state.

An async actor, so the gRPC server's asyncio loop runs inside the actor's loop and round
driving (``run_round``) and RPC handling share it without locks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray
import torch

from actors.metrics import FederationMetrics
from securemed.federation.coordinator import FederationCoordinator, RoundOutcome
from securemed.transport.server import FederationServer


@ray.remote
class Aggregator:
    """Runs a :class:`FederationServer` on ``bind_host`` at a free port."""

    def __init__(
        self,
        *,
        hospitals: Sequence[str],
        global_state: Mapping[str, torch.Tensor],
        total_rounds: int,
        participation: float,
        seed: int,
        completed_rounds: int,
        max_message_bytes: int,
        bind_host: str,
    ) -> None:
        coordinator = FederationCoordinator(
            hospitals=hospitals,
            global_state=global_state,
            total_rounds=total_rounds,
            participation=participation,
            seed=seed,
            completed_rounds=completed_rounds,
        )
        self._server = FederationServer(coordinator, max_message_bytes=max_message_bytes)
        self._bind_host = bind_host
        self._metrics = FederationMetrics()

    async def start(self) -> str:
        """Start serving; returns the address hospitals dial."""
        port = await self._server.start(host=self._bind_host, port=0)
        host = ray.util.get_node_ip_address() if self._bind_host == "0.0.0.0" else self._bind_host
        return f"{host}:{port}"

    async def wait_for_hospitals(self, count: int, timeout_s: float) -> tuple[str, ...]:
        return await self._server.wait_for_hospitals(count, timeout_s=timeout_s)

    async def run_round(self, deadline_s: float) -> dict[str, Any]:
        """Run one round; returns its outcome and the new global model."""
        started = time.perf_counter()
        outcome: RoundOutcome = await self._server.run_round(deadline_s=deadline_s)
        seconds = time.perf_counter() - started
        self._metrics.record(outcome, seconds=seconds)
        return {
            "outcome": outcome,
            "seconds": seconds,
            "global_state": self._server.coordinator.global_state,
        }

    async def finish(self) -> None:
        await self._server.finish()

    async def stop(self) -> None:
        await self._server.stop()
