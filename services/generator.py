"""The ReportGenerator deployment: the pinned checkpoint, batched with ``@serve.batch``.

Requests that arrive within the batch wait share one decoding pass; the pass runs in a worker
thread so the replica keeps accepting the requests that fill the next batch. Batch size and
wait come from the deployment's ``user_config`` in ``deploy/serve.yaml``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import torch
from ray import serve

from securemed.serving.model_runner import DraftReport, ReportModelRunner
from securemed.serving.settings import ServiceSettings
from services.http_errors import logger
from services.refusals import returning_refusals


@serve.deployment(name="ReportGenerator", ray_actor_options={"num_cpus": 1})
class GeneratorDeployment:
    def __init__(self, settings: ServiceSettings) -> None:
        torch.set_num_threads(1)
        self._runner = ReportModelRunner.from_settings(settings)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """``user_config``: ``max_batch_size`` and ``batch_wait_timeout_s`` (both required)."""
        self._write_batch.set_max_batch_size(int(config["max_batch_size"]))
        self._write_batch.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    def model_version(self) -> str:
        return self._runner.model_version

    @returning_refusals
    async def write(self, pixels: np.ndarray) -> DraftReport:
        """One film's draft; batched with whatever else arrives within the wait."""
        film = await asyncio.to_thread(self._runner.model_input, pixels)
        draft: DraftReport = await self._write_batch(film)
        return draft

    # defaults for a deployment without user_config; deploy/serve.yaml's replace them
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _write_batch(self, films: list[np.ndarray]) -> list[DraftReport]:
        started = time.perf_counter()
        drafts = await asyncio.to_thread(self._runner.write, films)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        logger.info("wrote %d reports in %.0f ms", len(films), elapsed_ms)
        return drafts

    def check_health(self) -> None:
        """Unhealthy if the model no longer writes (a blank film must still get a draft)."""
        blank = np.zeros((1, self._runner.image_size, self._runner.image_size), np.float32)
        if not self._runner.write([blank])[0].text:
            raise RuntimeError("the report model wrote nothing for the health probe")
