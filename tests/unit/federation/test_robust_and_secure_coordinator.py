"""The coordinator's aggregation rules and secure rounds, without the network: robust rules on
individual updates, secure bucketing (a robust rule across bucket means), the combinations that
would protect nothing refused, norm anomalies flagged, budget exclusions honoured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from securemed.aggregation import build_rule
from securemed.errors import AggregationPreconditionError, ConfigError, ProtocolViolation
from securemed.federation.coordinator import FederationCoordinator, HospitalReport
from securemed.federation.secure_round import (
    SecureAssignment,
    SecureRound,
    SecureSettings,
    SecureStep,
    prepare_update,
)
from securemed.secagg import SecAggClient
from securemed.secagg.quantize import dequantize_sum, quantize

NAMES = [f"hospital-{i}" for i in range(1, 9)]


def _report(norm: float = 0.0) -> HospitalReport:
    return HospitalReport(
        num_samples=10,
        epsilon=None,
        train_seconds=0.0,
        serialize_seconds=0.0,
        loss=0.0,
        update_bytes=0,
        update_norm=norm,
    )


def _coordinator(count: int = 5, **kwargs) -> FederationCoordinator:
    coordinator = FederationCoordinator(
        hospitals=NAMES[:count], global_state={"w": torch.zeros(3)}, total_rounds=3, **kwargs
    )
    for name in NAMES[:count]:
        coordinator.join(name, num_samples=10)
    return coordinator


def test_a_robust_rule_ignores_an_outlier_that_drags_fedavg() -> None:
    values = [1.0, 1.1, 0.9, 1.0, 100.0]
    results = {}
    for rule in ("fedavg", "median"):
        coordinator = _coordinator(rule=build_rule(rule, f=0 if rule == "fedavg" else 1))
        coordinator.open_round(now=0.0, deadline_s=10)
        for name, value in zip(NAMES, values, strict=False):
            coordinator.submit(name, 1, {"w": torch.full((3,), value)}, _report(), now=1.0)
        outcome = coordinator.close_round()
        results[rule] = coordinator.global_state["w"]
        assert outcome.anomalies is not None and outcome.anomalies.flagged == ("hospital-5",)
    assert torch.allclose(results["fedavg"], torch.full((3,), 20.8))
    assert torch.allclose(results["median"], torch.full((3,), 1.0))


def test_a_rule_whose_precondition_fails_is_refused_up_front() -> None:
    with pytest.raises(AggregationPreconditionError, match="n > 2f \\+ 2"):
        _coordinator(4, rule=build_rule("krum", f=1))


def test_a_robust_rule_over_one_secure_sum_is_refused() -> None:
    with pytest.raises(AggregationPreconditionError, match="secure bucketing"):
        _coordinator(rule=build_rule("median", f=1), secure=SecureSettings())


def test_buckets_of_one_hospital_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 2 hospitals"):
        SecureSettings(bucket_size=1)


def test_client_level_dp_without_a_norm_bound_is_refused() -> None:
    with pytest.raises(ConfigError, match="norm bound"):
        SecureSettings(noise_multiplier=1.0)


def test_too_few_buckets_for_the_rule_are_refused() -> None:
    # 8 hospitals in buckets of 2 make 4 bucket means; median with f=2 needs 5
    with pytest.raises(AggregationPreconditionError):
        _coordinator(8, rule=build_rule("median", f=2), secure=SecureSettings(bucket_size=2))


def test_excluded_hospitals_are_not_selected() -> None:
    coordinator = _coordinator(3)
    _, selected = coordinator.open_round(now=0.0, deadline_s=10, exclude=["hospital-2"])
    assert selected == ("hospital-1", "hospital-3")


def test_a_plain_update_is_refused_in_a_secure_round() -> None:
    coordinator = _coordinator(3, secure=SecureSettings())
    coordinator.open_round(now=0.0, deadline_s=10)
    with pytest.raises(ProtocolViolation, match="never sent in the clear"):
        coordinator.submit("hospital-1", 1, {"w": torch.zeros(3)}, _report(), now=1.0)


def _run_secure_round(coordinator, updates, identities) -> None:
    """Every selected hospital takes the four steps, as the transport would drive them."""
    secure = coordinator.secure_round
    names = [n for bucket in secure.buckets for n in bucket]
    clients = {}
    for name in names:
        assignment = secure.assignment(name)
        clients[name] = SecAggClient(name, assignment.info, assignment.params, identities[name])
        coordinator.secure_advertise(
            name, 1, clients[name].advertise(), certificate=identities[name].certificate_pem
        )
    secure.close_step()
    for name in names:
        coordinator.secure_share(name, 1, clients[name].share(secure.adverts_for(name)))
    secure.close_step()
    rng = np.random.default_rng(0)
    for name in names:
        params = secure.assignment(name).params
        levels = quantize(updates[name], clip=params.clip, bits=params.bits, rng=rng)
        masked = clients[name].mask(levels, secure.shares_for(name))
        coordinator.secure_upload(name, 1, masked, _report(float(np.linalg.norm(updates[name]))))
    secure.close_step()
    for name in names:
        survivors, dropped = secure.unmask_request_for(name)
        coordinator.secure_unmask(name, 1, clients[name].unmask(survivors, dropped))
    assert secure.close_step() is SecureStep.DONE


def test_secure_bucketing_runs_the_robust_rule_across_bucket_means(pki) -> None:
    identities = {name: pki.identity(name) for name in NAMES}
    coordinator = _coordinator(
        8, rule=build_rule("median", f=1), secure=SecureSettings(bucket_size=2)
    )
    coordinator.open_round(now=0.0, deadline_s=10)
    secure = coordinator.secure_round
    assert len(secure.buckets) == 4 and all(len(b) == 2 for b in secure.buckets)
    # one attacker sends a huge update; it can spoil only its own bucket's mean
    updates = {name: np.full(3, 0.2) for name in NAMES}
    updates["hospital-8"] = np.full(3, 1.0)  # clipped to the coordinate range 1.0
    _run_secure_round(coordinator, updates, identities)
    outcome = coordinator.close_round()
    assert outcome.participants == tuple(NAMES) and len(outcome.buckets) == 4
    # bucket means: three of 0.2, one of 0.6; the median of four is (0.2 + 0.2) / 2
    assert torch.allclose(coordinator.global_state["w"], torch.full((3,), 0.2), atol=1e-4)


def _assignment(**settings) -> SecureAssignment:
    secure = SecureRound(1, NAMES[:4], SecureSettings(**settings), length=1000)
    return secure.assignment("hospital-1")


def test_a_hospital_scales_its_update_down_to_the_norm_bound_before_masking() -> None:
    assignment = _assignment(norm_bound=1.0, bits=20)
    vector = np.full(1000, 0.5)  # norm 15.8
    levels = prepare_update(vector, assignment, np.random.default_rng(0))
    params = assignment.params
    decoded = dequantize_sum(levels, count=1, clip=params.clip, bits=params.bits)
    assert np.linalg.norm(decoded) == pytest.approx(1.0, abs=1e-3)


def test_client_level_noise_shares_add_up_to_the_calibrated_noise() -> None:
    """Each hospital adds N(0, (z C)^2 / min_survivors): any released sum of at least
    min_survivors shares carries noise of at least z C."""
    assignment = _assignment(norm_bound=0.5, noise_multiplier=0.8, min_survivors=4, bits=24)
    assert assignment.noise_stddev == pytest.approx(0.8 * 0.5 / 2)
    rng = np.random.default_rng(1)
    params = assignment.params
    total = np.sum(
        [prepare_update(np.zeros(1000), assignment, rng) for _ in range(4)], 0, dtype=np.uint32
    )
    noise = dequantize_sum(total, count=4, clip=params.clip, bits=params.bits)
    assert np.std(noise) == pytest.approx(0.8 * 0.5, rel=0.1)
