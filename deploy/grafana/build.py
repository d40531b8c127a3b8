"""Build SecureMed's Grafana dashboards (JSON model, Grafana 10+) from the panel lists below.

``python deploy/grafana/build.py`` rewrites ``deploy/grafana/dashboards/*.json``;
``--check`` exits 1 when a committed file differs from what this script builds, so the JSON
never drifts from the source. Every query uses a metric SecureMed or Ray really exports, with
Ray's ``ray_`` prefix (``tests/integration/test_monitoring.py`` runs each one against a live
Prometheus). Dashboards pick their Prometheus through a ``datasource`` variable, so they load
into any Grafana whatever its data source is called, and link to Ray's own dashboards (the
ones Ray writes under its session's ``metrics/grafana`` folder) and Ray's dashboard UI.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RAY_LINKS = [
    {"title": "Ray: cluster (Grafana)", "url": "/d/rayDefaultDashboard", "type": "link"},
    {"title": "Ray: Serve (Grafana)", "url": "/d/rayServeDashboard", "type": "link"},
    {"title": "Ray: Train (Grafana)", "url": "/d/rayTrainDashboard", "type": "link"},
    {"title": "Ray dashboard", "url": "http://127.0.0.1:8265", "type": "link"},
]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: Sequence[Query]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "bargauge"
    width: int = 12
    extra: dict[str, Any] = field(default_factory=dict)


FEDERATION = [
    Panel(
        "Rounds completed",
        "Federated rounds the aggregator closed (aborted rounds included).",
        [Query("sum(ray_securemed_federation_rounds_total)", "rounds")],
        kind="stat",
        width=6,
    ),
    Panel(
        "Federation running",
        "1 while a federation runs: rounds should keep closing (alert: no round for 30 min).",
        [Query("max(ray_securemed_federation_active)", "running")],
        kind="stat",
        width=6,
    ),
    Panel(
        "Participants per round",
        "Hospitals whose updates were aggregated in the last round.",
        [Query("max(ray_securemed_federation_participants)", "participants")],
        width=12,
    ),
    Panel(
        "Test macro-AUROC",
        "The global model on the held-out test set after each round (exported by the "
        "aggregator actor).",
        [Query("max(ray_securemed_federation_test_macro_auroc)", "macro-AUROC")],
        unit="percentunit",
    ),
    Panel(
        "Round time",
        "Wall time of a round, from opening to aggregation (median and 90th percentile).",
        [
            Query(
                "histogram_quantile(0.5, sum by (le) "
                "(rate(ray_securemed_federation_round_seconds_bucket[10m])))",
                "p50",
            ),
            Query(
                "histogram_quantile(0.9, sum by (le) "
                "(rate(ray_securemed_federation_round_seconds_bucket[10m])))",
                "p90",
            ),
        ],
        unit="s",
    ),
    Panel(
        "Deadlines missed",
        "Selected hospitals that missed a round's deadline, by hospital.",
        [
            Query(
                "sum by (hospital) (ray_securemed_federation_missed_deadlines_total)",
                "{{hospital}}",
            )
        ],
        kind="bargauge",
    ),
    Panel(
        "Aborted rounds",
        "Secure rounds aborted for lack of survivors (nothing from them was applied).",
        [Query("sum(ray_securemed_federation_aborted_rounds_total)", "aborted")],
        kind="stat",
        width=6,
    ),
    Panel(
        "Flagged updates",
        "Updates (or secure bucket means) whose norm z-score passed the anomaly threshold.",
        [
            Query(
                "sum by (hospital) (ray_securemed_federation_anomalous_updates_total)",
                "{{hospital}}",
            )
        ],
        kind="bargauge",
        width=6,
    ),
    Panel(
        "Update bytes received",
        "Bytes of (masked) updates received per hospital, per second.",
        [
            Query(
                "sum by (hospital) (rate(ray_securemed_federation_update_bytes_total[5m]))",
                "{{hospital}}",
            )
        ],
        unit="Bps",
    ),
]

PRIVACY = [
    Panel(
        "Epsilon against budget",
        "Each hospital's DP-SGD spend as its own ledger counts it (all runs on its data), "
        "beside its lifetime budget.",
        [
            Query(
                'max by (hospital) (ray_securemed_hospital_ledger_epsilon{mechanism="dp-sgd"})',
                "{{hospital}} spent",
            ),
            Query("securemed:hospital_epsilon_budget", "{{hospital}} budget"),
        ],
        width=24,
    ),
    Panel(
        "Projected epsilon",
        "Where the rounds left would take each hospital at its current plan (alert when above "
        "its budget; a run calibrated to end at its budget stays at it).",
        [Query("securemed:hospital_projected_epsilon", "{{hospital}}")],
    ),
    Panel(
        "Epsilon reported to the aggregator",
        "The cumulative epsilon each hospital sent with its last update (public values only).",
        [Query("max by (hospital) (ray_securemed_hospital_epsilon)", "{{hospital}}")],
    ),
    Panel(
        "Ledger releases",
        "Rounds whose update left each hospital (its ledger reservation released).",
        [
            Query(
                "sum by (hospital) (ray_securemed_hospital_ledger_releases_total)",
                "{{hospital}}",
            )
        ],
        kind="bargauge",
    ),
    Panel(
        "Hospitals excluded",
        "Rounds each hospital sat out, by reason: its budget (excluded) or its own policy.",
        [
            Query(
                "sum by (hospital, reason) (ray_securemed_hospital_declined_rounds_total)",
                "{{hospital}} {{reason}}",
            )
        ],
        kind="bargauge",
    ),
    Panel(
        "Client-level DP epsilon",
        "Each hospital's client-level spend (its share of the Skellam noise in the secure sum).",
        [
            Query(
                'max by (hospital) (ray_securemed_hospital_ledger_epsilon{mechanism="client-dp"})',
                "{{hospital}}",
            )
        ],
        width=24,
    ),
]

REPORT_SERVICE = [
    Panel(
        "Requests by outcome",
        "Report requests per second: sealed, or the error code returned.",
        [Query("securemed:report_requests:rate5m", "{{outcome}}")],
        unit="reqps",
    ),
    Panel(
        "HTTP 5xx share",
        "Share of the service's HTTP answers that were 5xx (alert above 5 % for 5 min).",
        [Query("securemed:report_http_5xx:ratio5m", "5xx share")],
        unit="percentunit",
        width=6,
    ),
    Panel(
        "HTTP 5xx by status",
        "5xx answers per second by status: 503 is Serve's back-pressure (add replicas), "
        "500 a fault.",
        [
            Query(
                "sum by (status_code) "
                '(rate(ray_serve_num_http_requests_total{status_code=~"5.."}[5m]))',
                "{{status_code}}",
            )
        ],
        unit="reqps",
        width=6,
    ),
    Panel(
        "Stage latency p50",
        "Median time per request stage (authenticate ... seal, and the total).",
        [Query("securemed:report_stage_latency_ms:p50_5m", "{{stage}}")],
        unit="ms",
    ),
    Panel(
        "Stage latency p99",
        "99th percentile per stage (alert: total above 5 s for 10 min).",
        [Query("securemed:report_stage_latency_ms:p99_5m", "{{stage}}")],
        unit="ms",
    ),
    Panel(
        "Validator verdicts by reason",
        "Safety validator verdicts: each reason code by its decision; clean requests count as "
        "pass.",
        [
            Query(
                "sum by (decision, reason) (increase(ray_securemed_validator_verdicts_total[1h]))",
                "{{decision}} {{reason}}",
            )
        ],
        kind="bargauge",
    ),
    Panel(
        "PHI entities removed",
        "PHI the anonymizer removed, by entity type and where it was found.",
        [
            Query(
                "sum by (entity_type, source) "
                "(increase(ray_securemed_phi_entities_removed_total[1h]))",
                "{{entity_type}} ({{source}})",
            )
        ],
        kind="bargauge",
    ),
    Panel(
        "Reports sealed",
        "Reports sealed to a clinician per second, by verdict.",
        [
            Query(
                "sum by (verdict) (rate(ray_securemed_reports_sealed_total[5m]))",
                "{{verdict}}",
            )
        ],
        unit="reqps",
        width=24,
    ),
]

DASHBOARDS = {
    "federation": ("SecureMed / Federation", FEDERATION),
    "privacy": ("SecureMed / Privacy", PRIVACY),
    "report-service": ("SecureMed / Report service", REPORT_SERVICE),
}


def _panel(panel: Panel, index: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": index,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [
            {
                "refId": chr(ord("A") + number),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for number, query in enumerate(panel.queries)
        ],
        **panel.extra,
    }


def dashboard(slug: str) -> dict[str, Any]:
    """The JSON model of one dashboard; panels flow left to right, 24 columns a row."""
    title, panels = DASHBOARDS[slug]
    laid_out = []
    x = y = 0
    for index, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        laid_out.append(_panel(panel, index, x, y))
        x += panel.width
    return {
        "uid": f"securemed-{slug}",
        "title": title,
        "tags": ["securemed"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "links": [
            {
                "title": "SecureMed",
                "type": "dashboards",
                "tags": ["securemed"],
                "asDropdown": True,
            },
            *[{**link, "targetBlank": True} for link in RAY_LINKS],
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": laid_out,
    }


def rendered() -> dict[Path, str]:
    return {
        OUT / f"{slug}.json": json.dumps(dashboard(slug), indent=2) + "\n" for slug in DASHBOARDS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = [
        path for path, text in rendered().items() if not path.exists() or path.read_text() != text
    ]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run python deploy/grafana/build.py", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
