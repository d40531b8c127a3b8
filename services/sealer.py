"""The ReportSealer deployment: seals to the clinician's active key, signed by the service.

The key is looked up at sealing time, not taken from the caller, so a key revoked while a
report was being written is never sealed to.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from ray import serve

from securemed.crypto.sealing import ReportSealer
from securemed.safety import Verdict
from securemed.serving.settings import ServiceSettings
from securemed.serving.state import ServiceState
from services.metrics import ServiceMetrics
from services.refusals import returning_refusals


@serve.deployment(name="ReportSealer", ray_actor_options={"num_cpus": 0.1})
class SealerDeployment:
    def __init__(self, settings: ServiceSettings) -> None:
        state = ServiceState(settings.state_dir)
        self._registry = state.registry()
        self._sealer = ReportSealer(
            state.signing_key(), validity=timedelta(hours=settings.envelope_validity_hours)
        )
        self._metrics = ServiceMetrics()

    @returning_refusals
    async def seal(
        self,
        report: str,
        *,
        clinician_id: str,
        request_id: str,
        model_version: str,
        verdict: Verdict,
    ) -> dict[str, Any]:
        key = await asyncio.to_thread(self._registry.active_key, clinician_id)
        envelope = self._sealer.seal(
            report,
            recipient=key.public_key,
            request_id=request_id,
            model_version=model_version,
            verdict=verdict.to_dict(),
        )
        self._metrics.sealed.inc(tags={"verdict": verdict.decision})
        return envelope

    def service_key_id(self) -> str:
        return self._sealer.key_id

    def check_health(self) -> None:
        """Unhealthy if the registry cannot be read (the key was checked at start)."""
        self._registry.clinician_count()
