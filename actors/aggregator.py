"""The aggregator actor: hosts the federation's gRPC server and owns the round state.

An async actor, so the gRPC server's asyncio loop runs inside the actor's loop and round
driving (``run_round``) and RPC handling share it without locks. It serves mutual TLS 1.3 with
the aggregator's federation certificate, and writes every round's outcome to a hash-chained
audit log (hospital names and counts only, never PHI).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
import torch

from actors.metrics import FederationMetrics
from securemed.audit import AuditLog
from securemed.config import RobustConfig, SecureAggregationConfig
from securemed.federation.coordinator import FederationCoordinator, RoundOutcome
from securemed.federation.from_config import aggregation_rule, secure_settings
from securemed.pki import FederationIdentity
from securemed.transport.server import FederationServer
from securemed.transport.tls import RevocationList


@ray.remote
class Aggregator:
    """Runs a :class:`FederationServer` on ``bind_host`` at a free port.

    ``revocation_list`` is the CA folder's CRL file; it is read here, on the actor's node, and
    re-read whenever ``securemed pki revoke`` changes it, so it must be on that node's disk.
    """

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
        identity: FederationIdentity,
        robust: RobustConfig,
        secure: SecureAggregationConfig,
        audit_log: Path,
        revocation_list: Path | None = None,
    ) -> None:
        coordinator = FederationCoordinator(
            hospitals=hospitals,
            global_state=global_state,
            total_rounds=total_rounds,
            participation=participation,
            seed=seed,
            completed_rounds=completed_rounds,
            rule=aggregation_rule(robust),
            secure=secure_settings(secure),
            anomaly_threshold=robust.anomaly_z,
        )
        self._rule = robust.rule
        self._server = FederationServer(
            coordinator,
            identity=identity,
            max_message_bytes=max_message_bytes,
            revocations=None
            if revocation_list is None
            else RevocationList(revocation_list, ca_pem=identity.ca_pem),
        )
        self._bind_host = bind_host
        self._metrics = FederationMetrics()
        self._audit = AuditLog(audit_log)

    async def start(self) -> str:
        """Start serving; returns the address hospitals dial."""
        port = await self._server.start(host=self._bind_host, port=0)
        self._metrics.active.set(1)
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
        flagged = list(outcome.anomalies.flagged) if outcome.anomalies else []
        self._audit.append(
            "round_closed",
            round=outcome.round,
            rule=self._rule,
            secure=bool(outcome.buckets),
            selected=list(outcome.selected),
            participants=list(outcome.participants),
            missing=list(outcome.missing),
            declined=list(outcome.declined),
            aborted=outcome.aborted is not None,
            flagged=flagged,
        )
        for culprit in outcome.culprits:  # caught breaking the secure protocol: named on record
            self._audit.append(
                "secure_protocol_violation",
                round=outcome.round,
                hospital=culprit.hospital,
                fault=culprit.fault,
            )
        for source in flagged:  # a hospital, or a secure bucket's hospitals joined by "+"
            assert outcome.anomalies is not None
            z_score = float(outcome.anomalies.z_scores[source])
            self._audit.append(
                "update_norm_anomaly",
                round=outcome.round,
                source=source,
                z_score=round(z_score, 3) if math.isfinite(z_score) else None,
            )
        return {
            "outcome": outcome,
            "seconds": seconds,
            "global_state": self._server.coordinator.global_state,
        }

    async def record_evaluation(self, test_metrics: Mapping[str, Any]) -> None:
        """Export the driver's test metrics of the latest global model (the aggregator is
        the process the federation's dashboards read)."""
        auroc = test_metrics.get("macro_auroc")
        if isinstance(auroc, int | float) and math.isfinite(auroc):
            self._metrics.test_macro_auroc.set(float(auroc))

    async def finish(self) -> None:
        await self._server.finish()
        self._metrics.active.set(0)

    async def node_id(self) -> str:
        """The Ray node the aggregator runs on."""
        return ray.get_runtime_context().get_node_id()

    async def stop(self) -> None:
        await self._server.stop()
        self._audit.close()
