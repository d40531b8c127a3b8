"""The Federation and Privacy dashboards against live data: a real Prometheus (Debian's
package, configured from ``deploy/prometheus`` with Ray's own service discovery) scrapes a
local Ray while two small federations provoke every event a panel counts: an attacking
hospital (flagged updates), hospitals whose budget runs out (exclusions, a projection past
the budget), and a secure round whose hospitals all miss its deadline (deadlines missed, an
aborted round). Then every panel's PromQL, and every recording rule, must return at least one
series over the test's window, so a renamed metric fails the build."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from jobs.federated import run_federation
from securemed.config import parse_config
from tests.unit.deploy.test_monitoring_config import panel_queries

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LIVE_DASHBOARDS = ("SecureMed / Federation", "SecureMed / Privacy")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def monitored_ray(tmp_path_factory):
    """A local Ray exporting metrics every second, and Prometheus scraping it as
    ``make monitor`` would (Ray's service-discovery file; the rules of deploy/prometheus)."""
    import ray

    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: `make tools` installs Debian's package")
    ray_dir = Path(tempfile.mkdtemp(prefix="/tmp/raym"))  # Ray's socket paths must stay short
    folder = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    discovery = str(ray_dir / "prom_metrics_service_discovery.json")
    config["scrape_configs"][0]["file_sd_configs"][0] = {
        "files": [discovery],
        "refresh_interval": "1s",
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copytree(ROOT / "deploy/prometheus/rules", folder / "rules")
    port = _free_port()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=True,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        _temp_dir=str(ray_dir),
        _metrics_export_port=_free_port(),
        _system_config={"metrics_report_interval_ms": 1000},
    )
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            _wait(lambda: client.get("/-/ready").status_code == 200, 60, "Prometheus ready")
            _wait(
                lambda: any(
                    target["health"] == "up"
                    for target in client.get("/api/v1/targets").json()["data"]["activeTargets"]
                ),
                90,
                "Prometheus scraping Ray's metrics agent",
            )
            yield client
    finally:
        server.terminate()
        server.wait(30)
        ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)


def _federation(tmp_path: Path, **overrides) -> None:
    config = parse_config(
        {
            "data": {"train_samples": 480, "test_samples": 120, "seed": 2},
            "partition": {"scheme": "iid", "min_samples": 32},
            "training": {"batch_size": 16},
            "baseline": {"enabled": False},
            **overrides,
        }
    )
    run_federation(config, tmp_path, resume=False)


def _series(client: httpx.Client, expr: str, start: float) -> list:
    reply = client.get(
        "/api/v1/query_range",
        params={"query": expr, "start": start, "end": time.time(), "step": "1s"},
    )
    assert reply.status_code == 200, (expr, reply.text)  # it parses, too
    return [series for series in reply.json()["data"]["result"] if series["values"]]


def test_every_federation_and_privacy_panel_shows_live_data(monitored_ray, tmp_path) -> None:
    started = time.time()
    # clear rounds, hospital-4 boosting its update 50 times; a budget of 6 against a run
    # calibrated to 8 over 3 rounds: rounds past it are declined by every hospital
    _federation(
        tmp_path / "attacked",
        privacy={
            "target_epsilon": 8.0,
            "budget_epsilon": 6.0,
            "accountant": "rdp",
            "unit": "record",
        },
        federation={"hospitals": 4, "rounds": 3},
        secure_aggregation={"enabled": False},
        attacks=[{"hospital": 4, "attack": "scaling", "params": {"factor": 50.0}}],
    )
    # a secure round (with client-level DP) whose deadline no hospital can make: it aborts
    _federation(
        tmp_path / "late",
        privacy={"target_epsilon": 8.0, "accountant": "rdp", "unit": "record"},
        federation={"hospitals": 3, "rounds": 1, "round_deadline_s": 0.5},
        secure_aggregation={"norm_bound": 1.0, "client_dp_noise_multiplier": 1.0},
    )
    time.sleep(3)  # the last flush and scrape
    empty = [
        (board, panel, expr)
        for board, panel, expr in panel_queries()
        if board in LIVE_DASHBOARDS and not _series(monitored_ray, expr, started)
    ]
    assert not empty, empty
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/recording.yml").read_text())
    privacy_rules = [
        rule["record"] for group in rules["groups"] for rule in group["rules"]
        if group["name"] == "securemed-privacy"
    ]  # fmt: skip
    for record in privacy_rules:
        assert _series(monitored_ray, record, started), record
    # the alert on a hospital's budget saw the projection pass it
    fired = _series(
        monitored_ray, 'ALERTS{alertname="SecureMedHospitalBudgetProjectedOver"}', started
    )
    assert fired
