"""`ray job submit --working-dir . -- python jobs/federated.py` against `ray start --head`.

The job must run unchanged on a cluster it did not start. The head runs in the foreground
(`--block`) in its own process group, so the test stops exactly the cluster it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def head_node():
    gcs_port, dashboard_port = _free_port(), _free_port()
    temp_dir = tempfile.mkdtemp(prefix="/tmp/rayt")  # short: Ray's socket paths are limited
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            "--block",
            f"--port={gcs_port}",
            f"--dashboard-port={dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--num-cpus=2",
            f"--temp-dir={temp_dir}",
            "--object-store-memory=200000000",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # the Jobs API answers once the dashboard is up
            probe = subprocess.run(
                [RAY, "job", "list", "--address", address],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode == 0:
                break
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, probe.stderr[-2000:]
            time.sleep(2)
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)


def test_submitted_job_runs_the_federation_on_the_cluster(head_node, tmp_path: Path) -> None:
    address, env = head_node
    output = tmp_path / "run"
    # the head's job agent registers a little after the Jobs API answers: until then a
    # submission is refused with "No available agent ... try again later", and nothing runs
    deadline = time.monotonic() + 120
    while True:
        result = subprocess.run(
            [
                RAY,
                "job",
                "submit",
                "--address",
                address,
                "--working-dir",
                str(ROOT),
                "--",
                "python",
                "jobs/federated.py",
                "--smoke-test",
                "--output",
                str(output),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if "No available agent" not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "== SecureMed federated run ==" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2]
    assert metrics["baseline"]["central_non_dp"]["macro_auroc"] is not None
