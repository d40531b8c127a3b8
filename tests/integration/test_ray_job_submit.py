"""`ray job submit --working-dir . -- python jobs/federated.py` against `ray start --head`.

The job must run unchanged on a cluster it did not start (:mod:`tests.ray_cluster` starts
the head in its own process group and stops exactly what it started).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ray_cluster import local_cluster, submit_job

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_submitted_job_runs_the_federation_on_the_cluster(tmp_path: Path) -> None:
    output = tmp_path / "run"
    with local_cluster() as cluster:
        result = submit_job(
            cluster, ROOT, "python", "jobs/federated.py", "--smoke-test", "--output", str(output)
        )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "== SecureMed federated run ==" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2]
    assert metrics["baseline"]["central_non_dp"]["macro_auroc"] is not None
