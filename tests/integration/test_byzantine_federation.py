"""Two of eight hospitals flip the sign of their updates: FedAvg is dragged off course, a
robust rule keeps the model's macro-AUROC within 0.08 of the clean federation's.

Real local training (non-DP, to isolate the attack's effect) on synthetic chest X-rays, with
the coordinator the aggregator runs; the network is covered elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from securemed.aggregation import build_rule
from securemed.attacks import build_attack
from securemed.config import PrivacyConfig, TrainingConfig
from securemed.data.synthetic import SyntheticChestXRays
from securemed.evaluation import evaluate
from securemed.federation.coordinator import FederationCoordinator, HospitalReport
from securemed.models import build_model
from securemed.privacy import LocalTrainer

pytestmark = pytest.mark.slow

HOSPITALS = [f"hospital-{i}" for i in range(1, 9)]
ATTACKERS = {"hospital-7", "hospital-8"}
PER_HOSPITAL, ROUNDS = 250, 4


@pytest.fixture(scope="module")
def data():
    generator = SyntheticChestXRays(image_size=64, difficulty=0.1, seed=0)  # learnable in 4 rounds
    train = np.arange(len(HOSPITALS) * PER_HOSPITAL)
    test = np.arange(10**6, 10**6 + 600)
    return generator, train, test


def _federate(data, rule_name: str, f: int, attacked: bool) -> tuple[float, list[list[int]]]:
    """Run the federation; returns the final macro-AUROC and the rows the rule kept each round
    (Multi-Krum only)."""
    generator, train, test = data
    torch.set_num_threads(1)
    torch.manual_seed(0)
    initial = build_model("simple_cnn", num_classes=generator.num_classes).state_dict()
    rule = build_rule(rule_name, f=f)
    kept: list[list[int]] = []
    coordinator = FederationCoordinator(
        hospitals=HOSPITALS, global_state=initial, total_rounds=ROUNDS, rule=rule
    )
    trainers = {}
    for i, name in enumerate(HOSPITALS):
        rows = train[i * PER_HOSPITAL : (i + 1) * PER_HOSPITAL]
        trainers[name] = LocalTrainer(
            build_model("simple_cnn", num_classes=generator.num_classes),
            torch.from_numpy(generator.images(rows)),
            torch.from_numpy(generator.labels(rows)),
            training=TrainingConfig(batch_size=32, local_epochs=1),
            privacy=PrivacyConfig(enabled=False),
            total_rounds=ROUNDS,
            insecure_seed=i,
        )
        coordinator.join(name, num_samples=PER_HOSPITAL)
    flip = build_attack("sign_flip", scale=3.0)  # three times as hard as honest work pulls
    for number in range(1, ROUNDS + 1):
        coordinator.open_round(now=0.0, deadline_s=1e9)
        for name, trainer in trainers.items():
            state = coordinator.model_for(name, number)
            result = trainer.train_round(state)
            update = {key: result.state[key] - state[key] for key in state}
            if attacked and name in ATTACKERS:
                update = flip.apply(update)
            report = HospitalReport(
                num_samples=PER_HOSPITAL,
                epsilon=None,
                update_bytes=0,
            )
            coordinator.submit(name, number, update, report, now=0.0)
        coordinator.close_round()
        kept.append(sorted(getattr(rule, "last_selected", [])))
    model = build_model("simple_cnn", num_classes=generator.num_classes)
    model.load_state_dict(coordinator.global_state)
    metrics = evaluate(
        model,
        torch.from_numpy(generator.images(test)),
        generator.labels(test),
        class_names=generator.class_names,
    )
    assert metrics.macro_auroc is not None
    return metrics.macro_auroc, kept


def test_a_robust_rule_withstands_sign_flipping_that_degrades_fedavg(data) -> None:
    clean, _ = _federate(data, "fedavg", 0, attacked=False)
    dragged, _ = _federate(data, "fedavg", 0, attacked=True)
    robust, kept = _federate(data, "multi_krum", 2, attacked=True)
    attackers = {HOSPITALS.index(name) for name in ATTACKERS}
    print("multi-krum kept rows:", kept)
    assert all(not attackers & set(rows) for rows in kept), kept  # flipped updates left out
    assert clean > 0.7, clean  # the clean federation learns
    assert dragged < clean - 0.05, (clean, dragged)
    # Multi-Krum averages the six honest updates, the clean run all eight: over five training
    # seeds the gap was -0.014 to 0.055 (FedAvg under attack fell 0.11-0.30 below clean)
    assert robust > clean - 0.08, (clean, robust)
    assert robust > dragged + 0.05, (dragged, robust)
    print(f"macro-AUROC clean {clean:.3f}, FedAvg {dragged:.3f}, Multi-Krum {robust:.3f}")
