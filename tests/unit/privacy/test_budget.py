"""The budget orchestrator: real projections, allow/exclude/raise-noise, no overspending, and a
data set's spend and accountant history rebuilt from the ledger across runs and restarts."""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from securemed.errors import BudgetExhausted, ConfigError
from securemed.privacy.budget import (
    BudgetOrchestrator,
    PrivacyBudget,
    RoundPlan,
    project_epsilon,
)
from securemed.privacy.ledger import EPSILON_TOLERANCE, PrivacyLedger

DELTA = 1e-5
RUN = "run-1"
DATASET = "ds-1"


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with PrivacyLedger(tmp_path / "ledger.sqlite") as opened:
        yield opened


def stepped_epsilon(kind: str, steps: list[tuple[float, float]], delta: float = DELTA) -> float:
    """Epsilon from an Opacus accountant that really took these (noise, rate) steps."""
    accountant = RDPAccountant() if kind == "rdp" else PRVAccountant()
    for sigma, rate in steps:
        accountant.step(noise_multiplier=sigma, sample_rate=rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(accountant.get_epsilon(delta))


def orchestrator(ledger: PrivacyLedger, budget: float, **options: Any) -> BudgetOrchestrator:
    """An orchestrator for hospital h1's data set ds-1 in run-1, unless told otherwise."""
    options.setdefault("accountant", "rdp")
    options.setdefault("dataset_id", DATASET)
    options.setdefault("hospital", "h1")
    options.setdefault("run_id", RUN)
    return BudgetOrchestrator(ledger, PrivacyBudget(budget, DELTA), **options)


# ------------------------------------------------------------------------- projection


@pytest.mark.parametrize("kind", ["rdp", "prv"])
def test_projection_matches_an_accountant_that_stepped_the_same_rounds(kind: str) -> None:
    earlier = [(1.0, 0.05)] * 40 + [(1.4, 0.04)] * 25
    planned = [(1.4, 0.04)] * 30  # same noise and rate as the last entry: merges, as step() does
    accountant = RDPAccountant() if kind == "rdp" else PRVAccountant()
    for sigma, rate in earlier:
        accountant.step(noise_multiplier=sigma, sample_rate=rate)
    projected = project_epsilon(
        accountant.history,
        noise_multiplier=1.4,
        sample_rate=0.04,
        steps=30,
        delta=DELTA,
        accountant=kind,  # type: ignore[arg-type]
    )
    assert projected == pytest.approx(stepped_epsilon(kind, earlier + planned), rel=1e-12)


@pytest.mark.parametrize("kind", ["rdp", "prv"])
def test_client_level_projection_is_one_gaussian_step_per_round(kind: str) -> None:
    z, q = 1.2, 0.3
    history = [[z, q, 1]] * 4  # as a JSON accountant_state would hold it, unmerged
    projected = project_epsilon(
        history, noise_multiplier=z, sample_rate=q, steps=1, delta=DELTA, accountant=kind
    )  # type: ignore[arg-type]
    assert projected == pytest.approx(stepped_epsilon(kind, [(z, q)] * 5), rel=1e-12)


def test_projection_of_nothing_is_zero_and_of_history_alone_is_its_epsilon() -> None:
    assert project_epsilon([], noise_multiplier=1.0, sample_rate=0.1, steps=0, delta=DELTA,
                           accountant="rdp") == 0.0  # fmt: skip
    alone = project_epsilon(
        [(1.0, 0.1, 20)], noise_multiplier=5.0, sample_rate=0.5, steps=0, delta=DELTA,
        accountant="rdp",
    )  # fmt: skip
    assert alone == pytest.approx(stepped_epsilon("rdp", [(1.0, 0.1)] * 20), rel=1e-12)


@pytest.mark.parametrize(
    "change",
    [
        {"noise_multiplier": 0.0},
        {"noise_multiplier": math.nan},
        {"sample_rate": 1.5},
        {"steps": -1},
        {"delta": 1.0},
        {"accountant": "gdp"},
        {"history": [(1.0, 0.1)]},
        {"history": [(1.0, 2.0, 3)]},
    ],
)
def test_projection_refuses_out_of_range_arguments(change: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "history": [(1.0, 0.1, 3)],
        "noise_multiplier": 1.0,
        "sample_rate": 0.1,
        "steps": 5,
        "delta": DELTA,
        "accountant": "rdp",
    }
    arguments.update(change)
    history = arguments.pop("history")
    with pytest.raises(ConfigError):
        project_epsilon(history, **arguments)


# --------------------------------------------------------------------------- decisions

PLAN = RoundPlan(history=((1.0, 0.05, 100),), noise_multiplier=1.0, sample_rate=0.05, steps=50)


def merged(history: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """The history as the accountant's ``step()`` keeps it (RoundPlan merges neighbours)."""
    return list(RoundPlan(tuple(history), 1.0, 0.1, 1).history)


def planned_epsilon(plan: RoundPlan, sigma: float) -> float:
    return project_epsilon(
        plan.history,
        noise_multiplier=sigma,
        sample_rate=plan.sample_rate,
        steps=plan.steps,
        delta=DELTA,
        accountant="rdp",
    )


def test_hospital_within_budget_is_allowed_with_its_planned_noise(ledger: PrivacyLedger) -> None:
    expected = planned_epsilon(PLAN, 1.0)
    decision = orchestrator(ledger, expected + 0.01).decide(0, PLAN)
    assert decision.action == "allow" and decision.participates
    assert decision.hospital == "h1"
    assert decision.noise_multiplier == 1.0
    assert (decision.sample_rate, decision.steps) == (PLAN.sample_rate, PLAN.steps)
    assert decision.projected_epsilon == expected
    assert decision.spent_epsilon == 0.0 and decision.delta == DELTA
    assert decision.budget_epsilon == expected + 0.01


def test_projection_exactly_at_budget_is_allowed(ledger: PrivacyLedger) -> None:
    expected = planned_epsilon(PLAN, 1.0)
    decision = orchestrator(ledger, expected).decide(0, PLAN)
    assert decision.action == "allow"


def test_hospital_that_would_overspend_is_excluded(ledger: PrivacyLedger) -> None:
    expected = planned_epsilon(PLAN, 1.0)
    decision = orchestrator(ledger, expected - 1e-6).decide(0, PLAN)
    assert decision.action == "exclude" and not decision.participates
    assert decision.noise_multiplier is None
    assert decision.projected_epsilon == expected
    assert "past budget" in decision.reason


def test_noise_is_raised_to_the_smallest_multiplier_that_fits(ledger: PrivacyLedger) -> None:
    budget = planned_epsilon(PLAN, 1.0) * 0.97  # a little short
    chooser = orchestrator(
        ledger, budget, raise_noise=True, max_noise_multiplier=5.0, noise_tolerance=1e-3
    )
    decision = chooser.decide(0, PLAN)
    assert decision.action == "raise_noise"
    assert (decision.sample_rate, decision.steps) == (PLAN.sample_rate, PLAN.steps)
    sigma = decision.noise_multiplier
    assert sigma is not None and sigma > 1.0
    assert decision.projected_epsilon == planned_epsilon(PLAN, sigma)
    assert planned_epsilon(PLAN, sigma) <= budget + EPSILON_TOLERANCE
    assert planned_epsilon(PLAN, sigma / (1 + 1e-3)) > budget  # smallest, to the tolerance
    assert sigma < 1.2


def test_hospital_no_noise_can_save_is_excluded(ledger: PrivacyLedger) -> None:
    spent_so_far = planned_epsilon(PLAN, 1e6)  # about what the history alone costs
    chooser = orchestrator(ledger, spent_so_far * 0.99, raise_noise=True)
    decision = chooser.decide(0, PLAN)
    assert decision.action == "exclude"
    assert "even noise" in decision.reason


def test_prv_orchestrator_raises_noise_within_budget(ledger: PrivacyLedger) -> None:
    plan = RoundPlan(history=(), noise_multiplier=1.0, sample_rate=0.1, steps=20)
    budget = project_epsilon((), noise_multiplier=1.3, sample_rate=0.1, steps=20, delta=DELTA,
                             accountant="prv")  # fmt: skip
    chooser = orchestrator(
        ledger,
        budget,
        accountant="prv",
        raise_noise=True,
        max_noise_multiplier=2.0,
        noise_tolerance=0.25,  # coarse: every PRV evaluation costs a fraction of a second
    )
    decision = chooser.decide(0, plan)
    assert decision.action == "raise_noise" and decision.noise_multiplier is not None
    assert decision.projected_epsilon is not None
    assert decision.projected_epsilon <= budget + EPSILON_TOLERANCE
    assert 1.3 <= decision.noise_multiplier <= 1.3 * 1.25


def test_data_set_without_a_privacy_budget_is_a_config_error(ledger: PrivacyLedger) -> None:
    bare_number: Any = 5.0
    with pytest.raises(ConfigError, match="not a PrivacyBudget"):
        BudgetOrchestrator(ledger, bare_number, dataset_id=DATASET, hospital="h1", run_id=RUN)


@pytest.mark.parametrize(
    "option",
    [
        {"accountant": "gdp"},
        {"max_noise_multiplier": 0.0},
        {"max_noise_multiplier": math.inf},
        {"noise_tolerance": 0.0},
        {"noise_tolerance": 1.0},
        {"mechanism": "dp-adam"},
        {"privacy_unit": "hospital"},
    ],
)
def test_out_of_range_options_are_a_config_error(
    ledger: PrivacyLedger, option: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        orchestrator(ledger, 5.0, **option)


# ------------------------------------------------------------------------------ the gate


def test_crashed_reservation_at_budget_exhausts_the_data_set(ledger: PrivacyLedger) -> None:
    chooser = orchestrator(ledger, 5.0)
    other_data_set = orchestrator(ledger, 5.0, dataset_id="ds-2")
    decision = chooser.decide(0, RoundPlan((), 1.0, 0.05, 5))
    chooser.reserve(decision, round_number=0, cumulative_epsilon=5.0)
    # ...the process dies here: never committed, so the row stays 'reserved' and counts
    with pytest.raises(BudgetExhausted, match="reserved rounds count"):
        chooser.ensure_within_budget()
    other_data_set.ensure_within_budget()
    after = chooser.decide(1, PLAN)
    assert after.action == "exclude" and "exhausted" in after.reason
    with pytest.raises(BudgetExhausted):
        chooser.reserve(after, round_number=1)
    with pytest.raises(BudgetExhausted):  # even a hand-made "allow" cannot pass the ledger
        chooser.reserve(decision, round_number=1, cumulative_epsilon=5.0)


def test_reserve_refuses_an_actual_epsilon_past_the_budget(ledger: PrivacyLedger) -> None:
    plan = RoundPlan((), 1.0, 0.05, 5)
    expected = planned_epsilon(plan, 1.0)
    chooser = orchestrator(ledger, expected)
    decision = chooser.decide(0, plan)
    with pytest.raises(BudgetExhausted, match="past its budget"):
        chooser.reserve(decision, round_number=0, cumulative_epsilon=expected * 1.01)
    entry = chooser.reserve(decision, round_number=0)
    assert entry.cumulative_epsilon == expected and entry.status == "reserved"
    assert (entry.dataset_id, entry.run_id, entry.hospital) == (DATASET, RUN, "h1")
    assert entry.parameters == {"noise_multiplier": 1.0, "sample_rate": 0.05, "steps": 5}
    assert entry.guarantee is True
    assert chooser.commit(round_number=0).status == "released"


def test_reserve_records_the_larger_of_projection_and_trainer_epsilon(
    ledger: PrivacyLedger,
) -> None:
    plan = RoundPlan((), 1.0, 0.05, 5)
    chooser = orchestrator(ledger, 5.0)
    decision = chooser.decide(0, plan)
    assert decision.projected_epsilon is not None
    lower = chooser.reserve(decision, round_number=0, cumulative_epsilon=0.0)
    assert lower.cumulative_epsilon == decision.projected_epsilon
    second = chooser.decide(1, RoundPlan(tuple(chooser.history()), 1.0, 0.05, 5))
    assert second.projected_epsilon is not None
    higher = chooser.reserve(second, round_number=1, cumulative_epsilon=4.0)
    assert higher.cumulative_epsilon == 4.0 and chooser.spent() == 4.0


def test_excluded_decision_cannot_be_reserved(ledger: PrivacyLedger) -> None:
    chooser = orchestrator(ledger, planned_epsilon(PLAN, 1.0) - 1e-6)
    decision = chooser.decide(0, PLAN)
    with pytest.raises(BudgetExhausted, match="excluded"):
        chooser.reserve(decision, round_number=0)
    assert ledger.entries() == []


def test_history_that_misses_a_reserved_round_is_excluded(ledger: PrivacyLedger) -> None:
    chooser = orchestrator(ledger, 50.0)
    first = RoundPlan((), 1.0, 0.05, 50)
    chooser.reserve(chooser.decide(0, first), round_number=0)
    # the trainer restarted from an empty accountant: its history forgets round 0
    decision = chooser.decide(1, first)
    assert decision.action == "exclude" and "misses a reserved round" in decision.reason
    # the history rebuilt from the ledger does not
    rebuilt = chooser.decide(1, RoundPlan(tuple(chooser.history()), 1.0, 0.05, 50))
    assert rebuilt.action == "allow"


def test_aborted_round_gives_its_budget_back(ledger: PrivacyLedger) -> None:
    plan = RoundPlan((), 1.0, 0.05, 20)
    chooser = orchestrator(ledger, planned_epsilon(plan, 1.0))
    decision = chooser.decide(0, plan)
    chooser.reserve(decision, round_number=0)
    assert chooser.decide(1, plan).action == "exclude"
    chooser.abort(round_number=0, reason="training crashed before any noise was drawn")
    assert chooser.spent() == 0.0
    assert chooser.history() == []
    assert chooser.decide(1, plan).action == "allow"


# ------------------------------------------------------------- runs on one data set


def test_a_second_run_starts_from_the_spend_of_the_first(ledger: PrivacyLedger) -> None:
    plan = RoundPlan((), 1.0, 0.05, 20)
    one_round = planned_epsilon(plan, 1.0)
    first = orchestrator(ledger, one_round, run_id="run-1")
    allowed = first.decide(0, plan)
    first.reserve(allowed, round_number=0)
    first.commit(round_number=0)

    second = orchestrator(ledger, one_round, run_id="run-2")
    assert second.spent() == one_round
    assert second.history() == [(1.0, 0.05, 20)]
    with pytest.raises(BudgetExhausted, match="reserved rounds count"):
        second.ensure_within_budget()
    assert second.decide(0, RoundPlan(tuple(second.history()), 1.0, 0.05, 20)).action == "exclude"
    with pytest.raises(BudgetExhausted, match="spent"):  # run-1's own "allow", replayed
        second.reserve(allowed, round_number=0)
    assert ledger.history(dataset_id=DATASET, run_id="run-2") == []

    # the hospital's other data set has a budget of its own
    other = orchestrator(ledger, one_round, dataset_id="ds-2", run_id="run-2")
    assert other.spent() == 0.0 and other.history() == []
    fresh = other.decide(0, plan)
    assert fresh.action == "allow"
    assert other.reserve(fresh, round_number=0).cumulative_epsilon == one_round


def test_a_second_run_projects_over_the_first_runs_rounds(ledger: PrivacyLedger) -> None:
    plan = RoundPlan((), 1.0, 0.05, 20)
    two_rounds = planned_epsilon(RoundPlan(((1.0, 0.05, 20),), 1.0, 0.05, 20), 1.0)
    first = orchestrator(ledger, two_rounds, run_id="run-1")
    first.reserve(first.decide(0, plan), round_number=0)
    first.commit(round_number=0)

    second = orchestrator(ledger, two_rounds, run_id="run-2")
    # a trainer that starts afresh in run-2 has forgotten run-1
    assert "misses a reserved round" in second.decide(0, plan).reason
    decision = second.decide(0, RoundPlan(tuple(second.history()), 1.0, 0.05, 20))
    assert decision.action == "allow" and decision.projected_epsilon == two_rounds
    assert decision.spent_epsilon == first.spent()
    entry = second.reserve(decision, round_number=0)
    assert entry.epsilon == pytest.approx(two_rounds - planned_epsilon(plan, 1.0), rel=1e-12)
    assert second.history() == first.history() == [(1.0, 0.05, 40)]
    assert first.spent() == second.spent() == two_rounds


# ------------------------------------------------------------- history from the ledger


def reserve_round(
    chooser: BudgetOrchestrator, round_number: int, sigma: float, rate: float, steps: int
) -> None:
    """Plan a round on the history the ledger holds, then reserve it (as a hospital would)."""
    plan = RoundPlan(tuple(chooser.history()), sigma, rate, steps)
    decision = chooser.decide(round_number, plan)
    assert decision.action == "allow", decision.reason
    chooser.reserve(decision, round_number=round_number)


def test_history_is_rebuilt_from_the_counted_rows_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with PrivacyLedger(path) as first_ledger:
        chooser = orchestrator(first_ledger, 50.0)
        reserve_round(chooser, 0, 1.0, 0.05, 20)
        chooser.commit(round_number=0)
        reserve_round(chooser, 1, 1.0, 0.05, 30)
        chooser.commit(round_number=1)
        reserve_round(chooser, 2, 2.0, 0.05, 10)
        chooser.abort(round_number=2, reason="the aggregator was unreachable before sending")
        reserve_round(chooser, 3, 1.0, 0.05, 5)
        chooser.commit(round_number=3)
        reserve_round(chooser, 4, 1.5, 0.02, 10)
        # ...the process dies here, between reserve and commit: round 4 may have left
        history, spent = chooser.history(), chooser.spent()
    # the aborted round is left out, so rounds 0, 1 and 3 merge as the accountant's step() would
    assert history == [(1.0, 0.05, 55), (1.5, 0.02, 10)]
    assert spent == project_epsilon(
        history, noise_multiplier=1.0, sample_rate=0.1, steps=0, delta=DELTA, accountant="rdp"
    )

    with PrivacyLedger(path) as reopened:
        restarted = orchestrator(reopened, 50.0)
        assert restarted.history() == history
        assert restarted.spent() == spent
        assert [row.status for row in reopened.history(dataset_id=DATASET)] == [
            "released",
            "released",
            "aborted",
            "released",
            "reserved",
        ]
        # planning on the rebuilt history is consistent with the ledger; on an empty one it is not
        after = restarted.decide(5, RoundPlan(tuple(restarted.history()), 1.5, 0.02, 10))
        assert after.action == "allow" and after.spent_epsilon == spent
        assert after.projected_epsilon is not None and after.projected_epsilon > spent
        assert restarted.decide(5, RoundPlan((), 1.5, 0.02, 10)).action == "exclude"


def test_history_records_the_raised_noise_not_the_planned_one(ledger: PrivacyLedger) -> None:
    budget = planned_epsilon(PLAN, 1.0) * 0.97
    chooser = orchestrator(ledger, budget, raise_noise=True, noise_tolerance=1e-2)
    # the plan's history is an earlier round reserved by the hospital on this data set
    earlier = RoundPlan((), 1.0, 0.05, 100)
    chooser.reserve(chooser.decide(0, earlier), round_number=0)
    decision = chooser.decide(1, RoundPlan(tuple(chooser.history()), 1.0, 0.05, 50))
    assert decision.action == "raise_noise" and decision.noise_multiplier is not None
    entry = chooser.reserve(decision, round_number=1)
    assert entry.parameters["noise_multiplier"] == decision.noise_multiplier
    assert chooser.history() == [(1.0, 0.05, 100), (decision.noise_multiplier, 0.05, 50)]
    assert chooser.spent() == decision.projected_epsilon


def test_rounds_without_a_guarantee_are_marked_and_still_spend(ledger: PrivacyLedger) -> None:
    plan = RoundPlan((), 1.0, 0.05, 20)
    one_round = planned_epsilon(plan, 1.0)
    seeded = orchestrator(ledger, one_round, run_id="seeded", guarantee=False)
    entry = seeded.reserve(seeded.decide(0, plan), round_number=0)
    assert entry.guarantee is False and entry.counted
    seeded.commit(round_number=0)
    real = orchestrator(ledger, one_round, run_id="real")
    assert real.spent() == one_round and real.history() == [(1.0, 0.05, 20)]
    with pytest.raises(BudgetExhausted):
        real.ensure_within_budget()
    assert [row.guarantee for row in ledger.history(dataset_id=DATASET)] == [False]


# ------------------------------------------------------------------------- many rounds


def test_many_rounds_never_overspend_any_data_set(ledger: PrivacyLedger) -> None:
    budgets = {"ds-1": 1.5, "ds-2": 2.5, "ds-3": 4.0}
    raising = {
        dataset: orchestrator(
            ledger, budget, dataset_id=dataset, raise_noise=True, noise_tolerance=0.01
        )
        for dataset, budget in budgets.items()
    }
    plain = {
        dataset: orchestrator(ledger, budget, dataset_id=dataset)
        for dataset, budget in budgets.items()
    }
    histories: dict[str, list[tuple[float, float, int]]] = {d: [] for d in budgets}
    actions: list[str] = []
    rng = random.Random(7)
    for round_number in range(8):
        for dataset in budgets:
            plan = RoundPlan(
                history=tuple(histories[dataset]),
                noise_multiplier=rng.choice([0.8, 1.0, 1.3]),
                sample_rate=rng.choice([0.02, 0.05]),
                steps=rng.choice([20, 50]),
            )
            chooser = (raising if round_number % 2 else plain)[dataset]
            decision = chooser.decide(round_number, plan)
            actions.append(decision.action)
            if not decision.participates:
                continue
            assert decision.noise_multiplier is not None
            chooser.reserve(decision, round_number=round_number)
            # the update is (possibly) out from here on: its steps enter the history even
            # when the process then dies before committing
            histories[dataset].append((decision.noise_multiplier, plan.sample_rate, plan.steps))
            if rng.random() < 0.8:
                chooser.commit(round_number=round_number)
    assert {"allow", "raise_noise", "exclude"} <= set(actions)
    for dataset, budget in budgets.items():
        spent = ledger.spent(dataset_id=dataset, mechanism="dp-sgd")
        assert spent <= budget + EPSILON_TOLERANCE
        true_epsilon = project_epsilon(
            histories[dataset], noise_multiplier=1.0, sample_rate=0.1, steps=0, delta=DELTA,
            accountant="rdp",
        )  # fmt: skip
        assert true_epsilon == pytest.approx(spent, rel=1e-12)
        assert true_epsilon <= budget + EPSILON_TOLERANCE
        assert spent > 0.5 * budget  # the orchestrator did let them spend
        # the ledger's rebuilt history is the one the hospital kept
        assert plain[dataset].history() == merged(histories[dataset])
