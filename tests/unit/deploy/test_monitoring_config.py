"""The monitoring configuration, checked without a running Ray: Prometheus' own tools accept
the config and the rules and pass every alert's unit tests, the Grafana dashboards are what
``deploy/grafana/build.py`` builds, and every metric a panel or a rule names is one SecureMed
or Ray exports (a renamed metric fails here; the slow ``test_monitoring`` runs the queries
against live data)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
# deploy/grafana is not a package: load its builder under a name nothing else uses
_spec = importlib.util.spec_from_file_location("securemed_grafana_build", GRAFANA / "build.py")
assert _spec is not None and _spec.loader is not None
grafana_build = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = grafana_build  # its dataclasses look their module up there
_spec.loader.exec_module(grafana_build)

#: Ray's own metrics the dashboards and rules use (Serve's HTTP proxy exports them)
RAY_METRICS = {"ray_serve_num_http_requests_total"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: `make tools` installs Debian's prometheus package")
    return subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )


def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", *sorted(str(p) for p in PROMETHEUS.glob("rules/*.yml")))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_every_alert_passes_its_unit_tests_and_has_one() -> None:
    result = _promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    tested = set(
        re.findall(r"alertname: (\w+)", (PROMETHEUS / "tests/alerts_test.yml").read_text())
    )
    assert alerts == tested


def test_the_committed_dashboards_are_what_the_builder_builds() -> None:
    assert grafana_build.main(["--check"]) == 0


def _dashboards() -> list[dict]:
    return [
        json.loads(path.read_text()) for path in sorted((GRAFANA / "dashboards").glob("*.json"))
    ]


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL) of every panel target."""
    return [
        (board["title"], panel["title"], target["expr"])
        for board in _dashboards()
        for panel in board["panels"]
        for target in panel["targets"]
    ]


def test_dashboards_are_well_formed_grafana_models() -> None:
    boards = _dashboards()
    assert {board["uid"] for board in boards} == {
        "securemed-federation",
        "securemed-privacy",
        "securemed-report-service",
    }
    for board in boards:
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        assert board["templating"]["list"][0] == {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        }
        assert any(
            link["url"] == "/d/rayDefaultDashboard" for link in board["links"] if "url" in link
        )
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and panel["description"]
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24


def _exported() -> set[str]:
    """Every metric name SecureMed registers, as Prometheus sees it (Ray adds ``ray_``;
    counters get ``_total``, histograms ``_bucket``/``_sum``/``_count``)."""
    names: set[str] = set()
    for source in (ROOT / "actors" / "metrics.py", ROOT / "services" / "metrics.py"):
        text = source.read_text()
        for kind, name in re.findall(r"(Counter|Gauge|Histogram)\(\s*\"(securemed_\w+)\"", text):
            base = f"ray_{name}"
            if kind == "Counter":
                names.add(f"{base}_total")
            elif kind == "Histogram":
                names.update(f"{base}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
            else:
                names.add(base)
    return names | RAY_METRICS


def _recorded() -> dict[str, str]:
    return {
        rule["record"]: rule["expr"]
        for group in yaml.safe_load((PROMETHEUS / "rules" / "recording.yml").read_text())["groups"]
        for rule in group["rules"]
    }


def metric_names(expr: str) -> set[str]:
    """Metric and recording-rule names an expression reads."""
    return set(re.findall(r"\b(ray_[a-z0-9_]+|securemed:[a-z0-9_:]+)", expr))


def test_every_metric_a_panel_or_rule_reads_is_exported() -> None:
    exported, recorded = _exported(), _recorded()
    alerts = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
    expressions = [expr for _, _, expr in panel_queries()]
    expressions += list(recorded.values())
    expressions += [rule["expr"] for group in alerts for rule in group["rules"]]
    for expr in expressions:
        for name in metric_names(expr):
            assert name in exported or name in recorded, (name, expr)
    # and the check has teeth: a renamed metric is caught
    assert "ray_securemed_federation_round_total" not in exported
