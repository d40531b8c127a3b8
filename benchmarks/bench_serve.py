"""The report service under load: latency percentiles and throughput at several concurrencies.

The service runs as `make serve` runs it (``jobs/serve.py`` with ``deploy/serve.yaml``, in its
own process and Ray), so the numbers are those of the shipped configuration. Clients are
asyncio tasks on one connection pool, each sending its requests back to back. The per-stage
split is read from each response's ``Server-Timing`` header. A 503 is Serve's deliberate
back-pressure and counted apart; any other non-200 is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from securemed.crypto.sealing import generate_clinician_key
from securemed.data.synthetic import SyntheticChestXRays
from securemed.serving.state import ADMIN_TOKEN_FILE

ROOT = Path(__file__).resolve().parents[1]
#: PHI-bearing indication, so the anonymizer does its real work on every request
INDICATION = "Pt Maria Gonzalez, MRN 55120983, seen 04/02/2025 at Lakeside Clinic. Cough, r/o PNA."


@dataclass(frozen=True)
class RunningService:
    url: str
    admin_token: str


@contextlib.contextmanager
def served(
    *, checkpoint: Path | None, runs_dir: Path | None = None, timeout_s: float = 600
) -> Iterator[RunningService]:
    """``jobs/serve.py`` in a child process on a free port, stopped (SIGINT) afterwards."""
    state = Path(tempfile.mkdtemp(prefix="securemed-bench-"))
    port = _free_port()
    command = [sys.executable, str(ROOT / "jobs" / "serve.py"), "--state", str(state / "state")]
    command += ["--port", str(port)]
    if checkpoint is not None:
        command += ["--checkpoint", str(checkpoint)]
    if runs_dir is not None:
        command += ["--runs", str(runs_dir)]
    log = (state / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, timeout_s)
        token = (state / "state" / ADMIN_TOKEN_FILE).read_text().strip()
        yield RunningService(url, token)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def register_clinician(service: RunningService, clinician_id: str) -> str:
    """A clinician with a fresh key pair; returns their bearer token."""
    _, public = generate_clinician_key()
    response = httpx.post(
        f"{service.url}/v1/admin/clinicians",
        json={"clinician_id": clinician_id, "public_key": public},
        headers={"Authorization": f"Bearer {service.admin_token}"},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["token"])


def sample_films(count: int, *, size: int = 256, seed: int = 11) -> list[bytes]:
    """PNG uploads of synthetic films."""
    films = SyntheticChestXRays(image_size=size, seed=seed).images(np.arange(count))[:, 0]
    uploads = []
    for film in films:
        out = io.BytesIO()
        Image.fromarray((film * 255).astype(np.uint8)).save(out, format="PNG")
        uploads.append(out.getvalue())
    return uploads


def measure_service(
    *,
    checkpoint: Path | None = None,
    runs_dir: Path | None = None,
    concurrency: Sequence[int] = (1, 8, 32),
    requests_per_level: int = 64,
    warmup: int = 4,
) -> dict[str, Any]:
    """p50/p99 latency, requests per second and the stage split at each concurrency."""
    with served(checkpoint=checkpoint, runs_dir=runs_dir) as service:
        token = register_clinician(service, "bench-clinician")
        films = sample_films(8)
        asyncio.run(_load(service.url, token, films, clients=1, total=warmup))
        levels = {}
        for clients in concurrency:
            total = max(requests_per_level, clients)
            levels[str(clients)] = asyncio.run(
                _load(service.url, token, films, clients=clients, total=total)
            )
        model_version = httpx.get(f"{service.url}/healthz", timeout=30).json()["model_version"]
    return {"model_version": model_version, "upload": "256 px PNG", "concurrency": levels}


async def _load(
    url: str, token: str, films: list[bytes], *, clients: int, total: int
) -> dict[str, Any]:
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one_client() -> None:
            for index in queue:
                started = time.perf_counter()
                response = await client.post(
                    "/v1/reports",
                    files={"image": ("film.png", films[index % len(films)], "image/png")},
                    data={"indication": INDICATION},
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                    for stage, milliseconds in _server_timing(response).items():
                        stages.setdefault(stage, []).append(milliseconds)

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - started
    ok = statuses.get(200, 0)
    return {
        "clients": clients,
        "requests": total,
        "ok": ok,
        "backpressure_503": statuses.get(503, 0),
        "failed": total - ok - statuses.get(503, 0),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "requests_per_second": ok / wall,
        "p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies else None,
        "stage_p50_ms": {
            stage: float(np.percentile(values, 50)) for stage, values in stages.items()
        },
    }


def _server_timing(response: httpx.Response) -> dict[str, float]:
    timings = {}
    for part in response.headers.get("server-timing", "").split(","):
        name, _, duration = part.strip().partition(";dur=")
        if name and duration:
            timings[name] = float(duration)
    return timings


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jobs/serve.py exited with {process.returncode} before serving")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        time.sleep(2)
    raise TimeoutError(f"the service at {url} was not healthy within {timeout_s:.0f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
