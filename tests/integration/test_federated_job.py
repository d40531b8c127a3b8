"""The federated job end to end under a local Ray: real actors, real gRPC on 127.0.0.1."""

import json

import pytest
import torch

from jobs.federated import run_federation
from securemed.config import parse_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _config(**federation):
    return parse_config(
        {
            "data": {"train_samples": 900, "test_samples": 400, "seed": 1},
            "partition": {"scheme": "iid", "min_samples": 32},
            "training": {"batch_size": 32, "local_epochs": 2},
            "privacy": {"target_epsilon": 8.0},
            "federation": {"hospitals": 3, "rounds": 2, **federation},
            "baseline": {"enabled": False},
        }
    )


def test_three_hospitals_two_rounds_improve_the_global_model(local_ray, tmp_path):
    metrics = run_federation(_config(), tmp_path, resume=False)

    rounds = metrics["rounds"]
    assert [entry["round"] for entry in rounds] == [1, 2]
    hospitals = ["hospital-1", "hospital-2", "hospital-3"]
    assert all(entry["participants"] == hospitals for entry in rounds)
    initial = metrics["initial"]["test"]["macro_auroc"]
    assert rounds[-1]["test"]["macro_auroc"] > initial + 0.05
    for hospital in hospitals:
        first, second = rounds[0]["epsilon"][hospital], rounds[1]["epsilon"][hospital]
        assert 0 < first < second <= 8.0
    assert all(entry["update_bytes"] > 0 for entry in rounds)

    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["rounds"][1]["test"]["macro_auroc"] == rounds[1]["test"]["macro_auroc"]
    assert (tmp_path / "progress.png").read_bytes()[:4] == b"\x89PNG"
    checkpoint = torch.load(tmp_path / "checkpoints" / "round-0002.pt", weights_only=True)
    assert set(checkpoint["privacy"]) == set(hospitals)


def test_partial_participation_selects_a_subset_each_round(local_ray, tmp_path):
    metrics = run_federation(_config(participation=0.34, rounds=2), tmp_path, resume=False)
    for entry in metrics["rounds"]:
        assert len(entry["selected"]) == 1
        assert entry["participants"] == entry["selected"]
