"""`make serve`'s path end to end: jobs/serve.py creates the state, pins the checkpoint, hands
over to `serve run` with deploy/serve.yaml; the load benchmark runs against it with no failure."""

from __future__ import annotations

import pytest

from benchmarks.bench_serve import measure_service

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_serve_job_serves_the_shipped_config_under_concurrent_load(
    trained_report_checkpoint,
) -> None:
    checkpoint, digest = trained_report_checkpoint
    result = measure_service(
        checkpoint=checkpoint, concurrency=(1, 4), requests_per_level=8, warmup=1
    )
    assert result["model_version"] == f"sha256:{digest}"  # the job pinned what it found
    for level in result["concurrency"].values():
        # 4 clients stay well inside every max_ongoing_requests: all must be served
        assert level["ok"] == level["requests"], level["statuses"]
        stages = set(level["stage_p50_ms"])
        assert {"anonymize", "generate", "validate", "seal", "total"} <= stages
