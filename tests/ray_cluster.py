"""`ray start` clusters on this machine for the tests that need a cluster they did not start
from the driver: a head in the foreground (``--block``) in its own process group, and worker
nodes likewise, so each test stops exactly the processes it started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalCluster:
    """A running head (and workers): its Jobs API address and the environment to call it."""

    address: str
    gcs: str
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def ray(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RAY, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )

    def add_worker(self, *, num_cpus: float, resources: Mapping[str, float]) -> None:
        """Start a worker node that joins the head and advertises ``resources``."""
        before = len(self.nodes())
        self.processes.append(
            _start(
                [
                    "start",
                    f"--address={self.gcs}",
                    "--block",
                    f"--num-cpus={num_cpus}",
                    f"--resources={json.dumps(dict(resources))}",
                    "--object-store-memory=100000000",
                    "--disable-usage-stats",
                ],
                self.env,
            )
        )
        _until(lambda: len(self.nodes()) > before, 120, "the worker node joined")

    def nodes(self) -> list[dict]:
        """The alive nodes, as the state API lists them (id, resources)."""
        listed = self.ray("list", "nodes", "--address", self.address, "--format", "json")
        if listed.returncode != 0:
            return []
        return [node for node in json.loads(listed.stdout) if node["state"] == "ALIVE"]


def _start(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [RAY, *args],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} within {timeout_s:.0f} s")
        time.sleep(2)


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@contextmanager
def local_cluster(
    *, num_cpus: float = 2, resources: Mapping[str, float] | None = None
) -> Iterator[LocalCluster]:
    """A head node with its dashboard (the Jobs API) on 127.0.0.1; stopped on exit, workers
    first."""
    gcs_port, dashboard_port = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="/tmp/rayt")  # short: Ray's socket paths are limited
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # the head turns token authentication on; its clients must use the same mode
        "RAY_AUTH_MODE": "token",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    head = _start(
        [
            "start",
            "--head",
            "--block",
            f"--port={gcs_port}",
            f"--dashboard-port={dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--num-cpus={num_cpus}",
            *([f"--resources={json.dumps(dict(resources))}"] if resources else []),
            f"--temp-dir={temp_dir}",
            "--object-store-memory=200000000",
            "--disable-usage-stats",
        ],
        env,
    )
    cluster = LocalCluster(
        f"http://127.0.0.1:{dashboard_port}", f"127.0.0.1:{gcs_port}", env, [head]
    )
    try:
        # the Jobs API answers once the dashboard is up (or the head died: stop waiting)
        _until(
            lambda: (
                head.poll() is not None
                or cluster.ray("job", "list", "--address", cluster.address).returncode == 0
            ),
            120,
            "the head's Jobs API answering",
        )
        assert head.poll() is None, "ray start --head exited"
        yield cluster
    finally:
        for process in reversed(cluster.processes):
            _stop(process)


def submit_job(
    cluster: LocalCluster, working_dir: Path, *entrypoint: str
) -> subprocess.CompletedProcess[str]:
    """``ray job submit --working-dir`` and wait; retried while the head's job agent has not
    registered yet (refused with "No available agent ... try again later": nothing ran)."""
    deadline = time.monotonic() + 120
    while True:
        result = cluster.ray(
            "job", "submit", "--address", cluster.address, "--working-dir", str(working_dir),
            "--", *entrypoint, timeout_s=600,
        )  # fmt: skip
        if "No available agent" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(2)
