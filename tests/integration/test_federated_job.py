"""The federated job end to end under a local Ray: real actors, real gRPC on 127.0.0.1."""

import json

import pytest
import torch

from jobs.federated import run_federation
from securemed.audit import read_audit_log, verify_audit_log
from securemed.config import parse_config
from tests.tensorboard_events import scalars

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _config(secure: bool = True, **federation):
    # the insecure reproducible mode keeps the utility check deterministic (noise, sampling and
    # rounding follow from the seed); its results say the epsilon is no guarantee
    return parse_config(
        {
            "data": {"train_samples": 900, "test_samples": 400, "seed": 1},
            "partition": {"scheme": "iid", "min_samples": 32},
            "training": {"batch_size": 32, "local_epochs": 2},
            "privacy": {
                "target_epsilon": 8.0,
                "unit": "record",
                "insecure_reproducible_seed": 0,
            },
            "federation": {"hospitals": 3, "rounds": 2, **federation},
            "secure_aggregation": {"enabled": secure},
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
    assert checkpoint["rounds"][-1]["round"] == 2
    privacy = written["privacy"]
    assert (
        privacy["epsilon_is_guarantee"] is False and "not a privacy guarantee" in privacy["warning"]
    )
    for hospital in hospitals:
        # each hospital's own ledger, in the run folder (generated data: one run)
        assert (tmp_path / "privacy" / f"{hospital}.sqlite").exists()
        published = privacy["hospitals"][hospital]
        assert published["accountant"] == "prv" and published["delta"] == 1e-5
        assert published["ledger_covers"] == "this run (generated, public data)"
        assert published["epsilon_is_guarantee"] is False
        assert privacy["epsilon"][hospital] == pytest.approx(rounds[1]["epsilon"][hospital])
        assert independent_epsilon(published) == pytest.approx(
            privacy["epsilon"][hospital], rel=0.01
        )
    # TensorBoard: the global model by round (0: the initial one), the round's time and
    # participants, each hospital's reported epsilon, and no hospital's training loss
    board = scalars(tmp_path / "tensorboard")
    aurocs = board["federation/test_macro_auroc"]
    assert [step for step, _ in aurocs] == [0, 1, 2]
    assert aurocs[0][1] == pytest.approx(initial) and aurocs[2][1] == pytest.approx(
        rounds[1]["test"]["macro_auroc"]
    )
    assert [step for step, _ in board["federation/round_seconds"]] == [1, 2]
    assert board["federation/participants"] == [(1, 3.0), (2, 3.0)]
    for hospital in hospitals:
        spent = [value for _, value in board[f"privacy/epsilon/{hospital}"]]
        assert spent == pytest.approx([entry["epsilon"][hospital] for entry in rounds])
    assert not [tag for tag in board if "loss" in tag]


def independent_epsilon(published: dict) -> float:
    """Google's dp-accounting PLD accountant over the rounds a hospital published: each
    (noise multiplier, sample rate, steps) a Poisson-subsampled Gaussian, composed."""
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant

    accountant = pld_privacy_accountant.PLDAccountant()
    for sigma, rate, steps in published["history"]:
        event = dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(sigma))
        accountant.compose(event, int(steps))
    return float(accountant.get_epsilon(published["delta"]))


def test_partial_participation_selects_a_subset_each_round(local_ray, tmp_path):
    # one hospital a round: a secure sum of one would be that update, so secure aggregation is off
    config = _config(secure=False, participation=0.34, rounds=2)
    metrics = run_federation(config, tmp_path, resume=False)
    for entry in metrics["rounds"]:
        assert len(entry["selected"]) == 1
        assert entry["participants"] == entry["selected"]


def test_secure_bucketing_robust_rule_client_dp_and_an_attacker_flagged(local_ray, tmp_path):
    """Six hospitals in secure buckets of two, the median across bucket means, and hospital 6
    boosting its update 50 times: the aggregator sees only bucket means, and flags the
    attacker's bucket in the metrics and the audit log."""
    config = parse_config(
        {
            "data": {"train_samples": 900, "test_samples": 200, "seed": 1},
            "partition": {"scheme": "iid", "min_samples": 32},
            "training": {"batch_size": 8},
            "privacy": {"target_epsilon": 8.0, "accountant": "rdp"},
            "federation": {"hospitals": 6, "rounds": 2},
            "secure_aggregation": {"bucket_size": 2, "min_participants": 2},
            "robust": {"rule": "median", "byzantine": 1},
            "attacks": [{"hospital": 6, "attack": "scaling", "params": {"factor": 50.0}}],
            "baseline": {"enabled": False},
        }
    )
    metrics = run_federation(config, tmp_path, resume=False)
    hospitals = [f"hospital-{i}" for i in range(1, 7)]
    for entry in metrics["rounds"]:
        assert sorted(len(bucket) for bucket in entry["secure_buckets"]) == [2, 2, 2]
        assert sorted(n for bucket in entry["secure_buckets"] for n in bucket) == hospitals
        assert entry["participants"] == hospitals and entry["aborted"] is None
        # a scaling attacker follows the secure protocol: nobody is caught breaking it
        assert entry["culprits"] == []
        # the aggregator sees bucket means, not updates: it flags the attacker's bucket
        [flagged] = entry["flagged_update_norms"]
        assert "hospital-6" in flagged.split("+")
    privacy = metrics["privacy"]
    assert privacy["unit"] == "patient"
    assert all(0 < privacy["epsilon"][h] <= 8.0 for h in hospitals)
    entries = read_audit_log(tmp_path / "audit.jsonl")
    assert verify_audit_log(tmp_path / "audit.jsonl") == len(entries)
    anomalies = [e for e in entries if e.event == "update_norm_anomaly"]
    assert len(anomalies) == 2 and all("hospital-6" in e.fields["source"] for e in anomalies)


def test_no_hospital_spends_past_its_budget(local_ray, tmp_path):
    """Noise calibrated for epsilon 8 over three rounds, but a budget of 6: every hospital
    declines the round that would pass 6 (its own decision, from its own ledger). Client-level
    DP noise (from OS randomness) is charged to the same ledger under its own mechanism."""
    config = parse_config(
        {
            "data": {"train_samples": 600, "test_samples": 200, "seed": 1},
            "partition": {"scheme": "iid", "min_samples": 32},
            "training": {"batch_size": 16},
            "privacy": {"target_epsilon": 8.0, "budget_epsilon": 6.0, "accountant": "rdp"},
            "federation": {"hospitals": 2, "rounds": 3},
            "secure_aggregation": {
                "norm_bound": 5.0,
                "client_dp_noise_multiplier": 0.5,
                "min_participants": 2,
            },
            "baseline": {"enabled": False},
        }
    )
    metrics = run_federation(config, tmp_path, resume=False)
    rounds = metrics["rounds"]
    assert rounds[0]["participants"] == ["hospital-1", "hospital-2"]
    assert rounds[-1]["declined"] == ["hospital-1", "hospital-2"]  # would have overspent
    privacy = metrics["privacy"]
    assert privacy["epsilon_is_guarantee"] is True and "warning" not in privacy
    for hospital, spent in privacy["epsilon"].items():
        assert 0 < spent <= 6.0, (hospital, spent)
        assert metrics["hospitals"][hospital]["rounds_declined"]
        assert 0 < privacy["client_level_epsilon"][hospital] < float("inf")
