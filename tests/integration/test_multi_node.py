"""The federated job on more than one Ray node: a head advertising the aggregator's site and
two worker nodes, each advertising one hospital's site (``ray start --resources``), all on
this machine. ``ray job submit`` runs ``jobs/federated.py`` with
``federation.site_resource_prefix``: each hospital's actor must land on its own site's node
(and read its key there), reach the aggregator on the head, and the job must finish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from securemed.pki import init_pki
from tests.ray_cluster import local_cluster, submit_job

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HOSPITALS = ("hospital-1", "hospital-2")


def test_each_hospital_runs_on_its_own_site_node(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    init_pki(pki, HOSPITALS)
    config = yaml.safe_load((ROOT / "configs" / "federated.yaml").read_text())
    config["federation"].update(hospitals=2, site_resource_prefix="site-")
    config["secure_aggregation"]["min_participants"] = 2
    config["security"]["pki_dir"] = str(pki)
    (tmp_path / "federated.yaml").write_text(yaml.safe_dump(config))
    output = tmp_path / "run"
    with local_cluster(num_cpus=1, resources={"site-aggregator": 1}) as cluster:
        for name in HOSPITALS:
            cluster.add_worker(num_cpus=1, resources={f"site-{name}": 1})
        sites = {
            resource.removeprefix("site-"): node["node_id"]
            for node in cluster.nodes()
            for resource in node["resources_total"]
            if resource.startswith("site-")
        }
        assert len(set(sites.values())) == 3  # three nodes, one site each
        result = submit_job(
            cluster,
            ROOT,
            "python", "jobs/federated.py", "--config", str(tmp_path / "federated.yaml"),
            "--smoke-test", "--output", str(output),
        )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["placement"] == sites
    assert [r["round"] for r in metrics["rounds"]] == [1, 2]
    assert all(r["participants"] == list(HOSPITALS) for r in metrics["rounds"])
