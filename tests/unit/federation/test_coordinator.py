import pytest
import torch

from securemed.errors import (
    DuplicateSubmission,
    FederationFinished,
    InvalidUpdate,
    NotSelected,
    StaleRound,
    UnknownHospital,
)
from securemed.federation.coordinator import FederationCoordinator, HospitalReport, Phase

HOSPITALS = ["hospital-1", "hospital-2", "hospital-3"]


def _state():
    return {"w": torch.zeros(2, 2), "b": torch.zeros(2)}


def _report(num_samples=10, epsilon=1.0):
    return HospitalReport(
        num_samples=num_samples,
        epsilon=epsilon,
        update_bytes=24,
    )


def _update(value):
    return {"w": torch.full((2, 2), value), "b": torch.full((2,), value)}


def _coordinator(**kwargs):
    coordinator = FederationCoordinator(
        hospitals=HOSPITALS, global_state=_state(), total_rounds=kwargs.pop("rounds", 2), **kwargs
    )
    for name in HOSPITALS:
        coordinator.join(name, num_samples=10)
    return coordinator


def test_round_applies_the_sample_weighted_mean_of_updates():
    coordinator = _coordinator()
    number, selected = coordinator.open_round(now=0.0, deadline_s=10)
    assert number == 1 and selected == tuple(HOSPITALS)
    coordinator.submit("hospital-1", 1, _update(1.0), _report(num_samples=10), now=1.0)
    coordinator.submit("hospital-2", 1, _update(4.0), _report(num_samples=30), now=1.0)
    coordinator.submit("hospital-3", 1, _update(0.0), _report(num_samples=20), now=1.0)
    assert coordinator.all_submitted()
    outcome = coordinator.close_round()
    expected = (1.0 * 10 + 4.0 * 30) / 60
    assert torch.allclose(coordinator.global_state["w"], torch.full((2, 2), expected))
    assert outcome.participants == tuple(HOSPITALS) and outcome.missing == ()
    assert coordinator.phase is Phase.WAITING and coordinator.round == 1


def test_hospital_that_misses_the_deadline_is_left_out_of_the_round():
    coordinator = _coordinator()
    coordinator.open_round(now=0.0, deadline_s=5)
    coordinator.submit("hospital-1", 1, _update(2.0), _report(), now=1.0)
    with pytest.raises(StaleRound, match="deadline"):
        coordinator.submit("hospital-2", 1, _update(100.0), _report(), now=6.0)
    outcome = coordinator.close_round()
    assert outcome.participants == ("hospital-1",)
    assert set(outcome.missing) == {"hospital-2", "hospital-3"}
    assert torch.allclose(coordinator.global_state["w"], torch.full((2, 2), 2.0))


def test_update_to_a_closed_round_is_stale():
    coordinator = _coordinator()
    coordinator.open_round(now=0.0, deadline_s=5)
    coordinator.close_round()
    coordinator.open_round(now=10.0, deadline_s=5)
    with pytest.raises(StaleRound, match="round 1 is not open"):
        coordinator.submit("hospital-1", 1, _update(1.0), _report(), now=11.0)


def test_round_without_any_update_leaves_the_model_unchanged_and_moves_on():
    coordinator = _coordinator()
    coordinator.open_round(now=0.0, deadline_s=1)
    outcome = coordinator.close_round()
    assert not outcome.applied
    assert torch.equal(coordinator.global_state["w"], torch.zeros(2, 2))
    assert coordinator.open_round(now=2.0, deadline_s=1)[0] == 2


def test_federation_finishes_after_its_last_round():
    coordinator = _coordinator(rounds=1)
    coordinator.open_round(now=0.0, deadline_s=1)
    coordinator.close_round()
    assert coordinator.phase is Phase.FINISHED
    with pytest.raises(FederationFinished):
        coordinator.open_round(now=1.0, deadline_s=1)


def test_participation_fraction_selects_a_reproducible_subset():
    first = _coordinator(participation=0.34, seed=7).open_round(now=0, deadline_s=1)[1]
    again = _coordinator(participation=0.34, seed=7).open_round(now=0, deadline_s=1)[1]
    assert len(first) == 1 and first == again


def test_hospital_not_selected_cannot_fetch_or_submit():
    coordinator = _coordinator(participation=0.34, seed=1)
    _, selected = coordinator.open_round(now=0.0, deadline_s=5)
    outsider = next(name for name in HOSPITALS if name not in selected)
    with pytest.raises(NotSelected):
        coordinator.model_for(outsider, 1)
    with pytest.raises(NotSelected):
        coordinator.submit(outsider, 1, _update(1.0), _report(), now=1.0)


def test_unknown_hospital_is_refused_everywhere():
    coordinator = _coordinator()
    coordinator.open_round(now=0.0, deadline_s=5)
    with pytest.raises(UnknownHospital, match="not a member"):
        coordinator.join("intruder", num_samples=5)
    with pytest.raises(UnknownHospital):
        coordinator.submit("intruder", 1, _update(1.0), _report(), now=1.0)
    with pytest.raises(UnknownHospital):
        coordinator.view("intruder", now=1.0)


def test_second_submission_to_a_round_is_refused_and_the_first_kept():
    coordinator = _coordinator()
    coordinator.open_round(now=0.0, deadline_s=5)
    coordinator.submit("hospital-1", 1, _update(1.0), _report(), now=1.0)
    with pytest.raises(DuplicateSubmission):
        coordinator.submit("hospital-1", 1, _update(9.0), _report(), now=1.0)
    outcome = coordinator.close_round()
    assert outcome.participants == ("hospital-1",)
    assert torch.allclose(coordinator.global_state["w"], torch.ones(2, 2))


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"w": torch.zeros(3, 2), "b": torch.zeros(2)}, "shape"),
        ({"w": torch.zeros(2, 2, dtype=torch.float64), "b": torch.zeros(2)}, "dtype"),
        ({"w": torch.full((2, 2), float("nan")), "b": torch.zeros(2)}, "NaN"),
        ({"w": torch.full((2, 2), float("inf")), "b": torch.zeros(2)}, "infinite"),
        ({"w": torch.zeros(2, 2)}, "missing"),
        ({"w": torch.zeros(2, 2), "b": torch.zeros(2), "x": torch.zeros(1)}, "unexpected"),
    ],
)
def test_malformed_update_is_refused_and_not_aggregated(update, message):
    coordinator = _coordinator()
    coordinator.open_round(now=0.0, deadline_s=5)
    with pytest.raises(InvalidUpdate, match=message):
        coordinator.submit("hospital-1", 1, update, _report(), now=1.0)
    coordinator.submit("hospital-2", 1, _update(3.0), _report(), now=1.0)
    outcome = coordinator.close_round()
    assert outcome.participants == ("hospital-2",)
    assert torch.allclose(coordinator.global_state["w"], torch.full((2, 2), 3.0))


@pytest.mark.parametrize("report", [_report(num_samples=-1), _report(epsilon=float("nan"))])
def test_report_with_impossible_values_is_refused(report):
    coordinator = _coordinator()
    coordinator.open_round(now=0.0, deadline_s=5)
    with pytest.raises(InvalidUpdate):
        coordinator.submit("hospital-1", 1, _update(1.0), report, now=1.0)


def test_resumed_coordinator_continues_with_the_next_round():
    coordinator = FederationCoordinator(
        hospitals=HOSPITALS, global_state=_state(), total_rounds=5, completed_rounds=3
    )
    coordinator.join("hospital-1", num_samples=1)
    assert coordinator.open_round(now=0.0, deadline_s=1)[0] == 4
