"""deploy/serve.yaml: valid for Serve, naming exactly the app's deployments, its args valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.serve import load_serve_config
from securemed.errors import ConfigError
from securemed.serving.settings import parse_service_settings

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "deploy" / "serve.yaml"


def test_the_shipped_config_validates_and_names_every_deployment_of_the_app() -> None:
    from services.anonymizer import AnonymizerDeployment
    from services.api import ReportAPI
    from services.generator import GeneratorDeployment
    from services.sealer import SealerDeployment
    from services.validator import ValidatorDeployment

    config = load_serve_config(CONFIG)
    (application,) = config["applications"]
    assert application["import_path"] == "services.app:build_app"
    parse_service_settings(application["args"])
    named = {deployment["name"] for deployment in application["deployments"]}
    built = {
        d.name
        for d in (ReportAPI, AnonymizerDeployment, GeneratorDeployment, ValidatorDeployment,
                  SealerDeployment)
    }  # fmt: skip
    assert named == built
    for deployment in application["deployments"]:
        assert {"num_replicas", "max_ongoing_requests"} <= set(deployment)
    generator = next(d for d in application["deployments"] if d["name"] == "ReportGenerator")
    assert generator["max_ongoing_requests"] >= generator["user_config"]["max_batch_size"]
    cpus = sum(d["ray_actor_options"]["num_cpus"] for d in application["deployments"])
    assert cpus <= 2  # the whole graph fits the 2-core laptop default


def test_a_config_serve_would_refuse_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "serve.yaml"
    bad.write_text("applications:\n  - name: x\n    import_path: 7\n    nonsense: true\n")
    with pytest.raises(ConfigError, match="not a valid Serve config"):
        load_serve_config(bad)


def test_the_serve_job_reports_bad_args_by_field_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "serve.yaml"
    bad.write_text(CONFIG.read_text().replace("phi_operator: tag", "phi_operator: shred"))
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "serve.py"), "--config", str(bad),
         "--state", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "phi_operator" in result.stderr
    assert not (tmp_path / "state").exists()  # nothing created for a config that cannot run
