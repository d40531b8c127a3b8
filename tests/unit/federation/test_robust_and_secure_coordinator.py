"""The coordinator's aggregation rules and secure rounds, without the network: robust rules on
individual updates, secure bucketing (a robust rule across bucket means), the combinations that
would protect nothing refused, norm anomalies flagged on what the aggregator sees, declined
rounds, and the hospital's own norm bound and integer-domain client-level noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from securemed.aggregation import build_rule
from securemed.config import parse_config
from securemed.errors import (
    AggregationPreconditionError,
    ConfigError,
    DuplicateSubmission,
    ProtocolViolation,
)
from securemed.federation.coordinator import FederationCoordinator, HospitalReport, bucket_label
from securemed.federation.secure_round import (
    SecureSettings,
    SecureStep,
    prepare_update,
)
from securemed.privacy.client_dp import ClientDPPolicy
from securemed.secagg import SecAggClient
from securemed.secagg.params import SecAggParams
from securemed.secagg.quantize import dequantize_sum, level_scale, quantize

NAMES = [f"hospital-{i}" for i in range(1, 9)]


def _report() -> HospitalReport:
    return HospitalReport(num_samples=10, epsilon=None)


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
    with pytest.raises(ConfigError, match="norm_bound"):
        parse_config({"secure_aggregation": {"client_dp_noise_multiplier": 1.0}})


def test_too_few_buckets_for_the_rule_are_refused() -> None:
    # 8 hospitals in buckets of 2 make 4 bucket means; median with f=2 needs 5
    with pytest.raises(AggregationPreconditionError):
        _coordinator(8, rule=build_rule("median", f=2), secure=SecureSettings(bucket_size=2))


def test_a_declined_hospital_is_neither_waited_for_nor_missing() -> None:
    coordinator = _coordinator(3)
    coordinator.open_round(now=0.0, deadline_s=10)
    coordinator.decline("hospital-2", 1)
    for name in ("hospital-1", "hospital-3"):
        coordinator.submit(name, 1, {"w": torch.ones(3)}, _report(), now=1.0)
    assert coordinator.all_submitted()
    outcome = coordinator.close_round()
    assert outcome.declined == ("hospital-2",) and outcome.missing == ()
    assert outcome.participants == ("hospital-1", "hospital-3")


def test_a_declined_hospital_cannot_submit_and_a_submitted_one_cannot_decline() -> None:
    coordinator = _coordinator(3)
    coordinator.open_round(now=0.0, deadline_s=10)
    coordinator.decline("hospital-2", 1)
    with pytest.raises(DuplicateSubmission):
        coordinator.submit("hospital-2", 1, {"w": torch.ones(3)}, _report(), now=1.0)
    coordinator.submit("hospital-1", 1, {"w": torch.ones(3)}, _report(), now=1.0)
    with pytest.raises(DuplicateSubmission):
        coordinator.decline("hospital-1", 1)


def test_hospitals_that_declined_an_aborted_secure_round_can_still_poll() -> None:
    """Every hospital declined: the secure sum aborts while the round is still open, and a
    hospital polling for the next round is told the round's state, not an error."""
    coordinator = _coordinator(2, secure=SecureSettings())
    coordinator.open_round(now=0.0, deadline_s=10)
    for name in NAMES[:2]:
        coordinator.decline(name, 1)
    coordinator.secure_round.close_step()  # too few advertised: the bucket aborts
    view = coordinator.view("hospital-1", now=1.0)
    assert view.round == 1 and view.secure is None


def test_a_secure_round_stops_waiting_for_a_hospital_that_declined(pki) -> None:
    identities = {name: pki.identity(name) for name in NAMES[:3]}
    coordinator = _coordinator(3, secure=SecureSettings())
    coordinator.open_round(now=0.0, deadline_s=10)
    secure = coordinator.secure_round
    coordinator.decline("hospital-3", 1)
    for name in ("hospital-1", "hospital-2"):
        assignment = secure.assignment(name)
        client = SecAggClient(name, assignment.info, assignment.params, identities[name])
        coordinator.secure_advertise(
            name, 1, client.advertise(), certificate=identities[name].certificate_pem
        )
    assert secure.pending() == ()
    late = "hospital-3"
    assignment = secure.assignment(late)
    client = SecAggClient(late, assignment.info, assignment.params, identities[late])
    with pytest.raises(DuplicateSubmission):
        coordinator.secure_advertise(
            late, 1, client.advertise(), certificate=identities[late].certificate_pem
        )


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
        coordinator.secure_upload(name, 1, masked, _report())
    secure.close_step()
    for name in names:
        survivors, dropped = secure.unmask_request_for(name)
        coordinator.secure_confirm(name, 1, clients[name].confirm(survivors, dropped))
    secure.close_step()
    for name in names:
        signatures = coordinator.secure_signatures(name, 1)
        coordinator.secure_unmask(name, 1, clients[name].unmask(signatures))
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
    # anomalies are scored on what the aggregator sees: the attacker's bucket's mean
    attacker_bucket = next(bucket for bucket in outcome.buckets if "hospital-8" in bucket)
    assert outcome.anomalies is not None
    assert outcome.anomalies.flagged == (bucket_label(attacker_bucket),)


def test_a_single_secure_sum_scores_no_norms(pki) -> None:
    """One sum has nothing to compare; no hospital reports a norm the aggregator could use."""
    identities = {name: pki.identity(name) for name in NAMES[:3]}
    coordinator = _coordinator(3, secure=SecureSettings())
    coordinator.open_round(now=0.0, deadline_s=10)
    _run_secure_round(coordinator, {name: np.full(3, 0.1) for name in NAMES[:3]}, identities)
    assert coordinator.close_round().anomalies is None


def _params(bits: int = 16, clip: float = 1.0) -> SecAggParams:
    return SecAggParams.for_round(4, bits=bits, clip=clip)


def test_a_hospital_scales_its_update_down_to_the_norm_bound_before_masking() -> None:
    params = _params(bits=20)
    vector = np.full(1000, 0.5)  # norm 15.8
    levels = prepare_update(
        vector, params, norm_bound=1.0, noise_variance=0.0, rng=np.random.default_rng(0)
    )
    decoded = dequantize_sum(levels, count=1, clip=params.clip, bits=params.bits)
    assert np.linalg.norm(decoded) == pytest.approx(1.0, abs=1e-3)


def test_client_level_noise_shares_add_up_to_the_calibrated_noise_after_clipping() -> None:
    """Each hospital adds Skellam noise of (z L2)^2 / min_survivors levels squared after it
    quantized: the released sum of min_survivors shares carries the full noise, even where it
    is far larger than the coordinate clip (noise added before clipping was cut to it)."""
    policy = ClientDPPolicy(noise_multiplier=0.8, norm_bound=0.5, min_survivors=4, delta=1e-5)
    params = _params(bits=16, clip=0.1)
    parameters = policy.round_parameters(params, dimension=4000)
    rng = np.random.default_rng(1)
    shares = [
        prepare_update(
            np.zeros(4000),
            params,
            norm_bound=policy.norm_bound,
            noise_variance=policy.share_variance(parameters),
            rng=rng,
        )
        for _ in range(4)
    ]
    total = np.sum(shares, 0, dtype=np.uint32)
    noise = dequantize_sum(total, count=4, clip=params.clip, bits=params.bits)
    expected = 0.8 * parameters["l2"] / level_scale(clip=params.clip, bits=params.bits)
    assert expected > 3 * params.clip  # most of this noise lies outside the coordinate range
    # the standard deviation of 4000 draws is within 2.2 % of sigma (one standard error)
    assert np.std(noise) == pytest.approx(expected, rel=0.1)
    assert abs(np.mean(noise)) < 5 * expected / np.sqrt(4000)


def test_a_ring_too_small_for_the_noise_is_refused() -> None:
    policy = ClientDPPolicy(noise_multiplier=10.0, norm_bound=1.0, min_survivors=2, delta=1e-5)
    params = _params(bits=30)
    with pytest.raises(ConfigError, match="does not fit"):
        policy.check_ring(params, policy.round_parameters(params, dimension=1000))
