"""The budget orchestrator: real projections, allow/exclude/raise-noise, and no overspending."""

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


def orchestrator(ledger: PrivacyLedger, budgets: dict[str, float], **options: Any) -> Any:
    options.setdefault("accountant", "rdp")
    return BudgetOrchestrator(
        ledger, {h: PrivacyBudget(e, DELTA) for h, e in budgets.items()}, run_id=RUN, **options
    )


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
    decision = orchestrator(ledger, {"h1": expected + 0.01}).decide(0, {"h1": PLAN})["h1"]
    assert decision.action == "allow" and decision.participates
    assert decision.noise_multiplier == 1.0
    assert decision.projected_epsilon == expected
    assert decision.spent_epsilon == 0.0 and decision.delta == DELTA


def test_projection_exactly_at_budget_is_allowed(ledger: PrivacyLedger) -> None:
    expected = planned_epsilon(PLAN, 1.0)
    decision = orchestrator(ledger, {"h1": expected}).decide(0, {"h1": PLAN})["h1"]
    assert decision.action == "allow"


def test_hospital_that_would_overspend_is_excluded(ledger: PrivacyLedger) -> None:
    expected = planned_epsilon(PLAN, 1.0)
    decision = orchestrator(ledger, {"h1": expected - 1e-6}).decide(0, {"h1": PLAN})["h1"]
    assert decision.action == "exclude" and not decision.participates
    assert decision.noise_multiplier is None
    assert decision.projected_epsilon == expected
    assert "past budget" in decision.reason


def test_noise_is_raised_to_the_smallest_multiplier_that_fits(ledger: PrivacyLedger) -> None:
    budget = planned_epsilon(PLAN, 1.0) * 0.97  # a little short
    chooser = orchestrator(
        ledger, {"h1": budget}, raise_noise=True, max_noise_multiplier=5.0, noise_tolerance=1e-3
    )
    decision = chooser.decide(0, {"h1": PLAN})["h1"]
    assert decision.action == "raise_noise"
    sigma = decision.noise_multiplier
    assert sigma is not None and sigma > 1.0
    assert decision.projected_epsilon == planned_epsilon(PLAN, sigma)
    assert planned_epsilon(PLAN, sigma) <= budget + EPSILON_TOLERANCE
    assert planned_epsilon(PLAN, sigma / (1 + 1e-3)) > budget  # smallest, to the tolerance
    assert sigma < 1.2


def test_hospital_no_noise_can_save_is_excluded(ledger: PrivacyLedger) -> None:
    spent_so_far = planned_epsilon(PLAN, 1e6)  # about what the history alone costs
    chooser = orchestrator(ledger, {"h1": spent_so_far * 0.99}, raise_noise=True)
    decision = chooser.decide(0, {"h1": PLAN})["h1"]
    assert decision.action == "exclude"
    assert "even noise" in decision.reason


def test_prv_orchestrator_raises_noise_within_budget(ledger: PrivacyLedger) -> None:
    plan = RoundPlan(history=(), noise_multiplier=1.0, sample_rate=0.1, steps=20)
    budget = project_epsilon((), noise_multiplier=1.3, sample_rate=0.1, steps=20, delta=DELTA,
                             accountant="prv")  # fmt: skip
    chooser = orchestrator(
        ledger,
        {"h1": budget},
        accountant="prv",
        raise_noise=True,
        max_noise_multiplier=2.0,
        noise_tolerance=0.25,  # coarse: every PRV evaluation costs a fraction of a second
    )
    decision = chooser.decide(0, {"h1": plan})["h1"]
    assert decision.action == "raise_noise" and decision.noise_multiplier is not None
    assert decision.projected_epsilon is not None
    assert decision.projected_epsilon <= budget + EPSILON_TOLERANCE
    assert 1.3 <= decision.noise_multiplier <= 1.3 * 1.25


def test_hospital_without_a_budget_is_a_config_error(ledger: PrivacyLedger) -> None:
    with pytest.raises(ConfigError, match="no privacy budget"):
        orchestrator(ledger, {"h1": 5.0}).decide(0, {"h9": PLAN})


def test_plan_from_another_accountant_is_refused() -> None:
    state = {"mechanism": "prv", "history": [[1.0, 0.05, 10]]}
    with pytest.raises(ConfigError, match="recorded by"):
        RoundPlan.from_accountant_state(
            state, accountant="rdp", noise_multiplier=1.0, sample_rate=0.05, steps=5
        )
    plan = RoundPlan.from_accountant_state(
        {"mechanism": "rdp", "history": [[1.0, 0.05, 10.0]]},
        accountant="rdp",
        noise_multiplier=1.0,
        sample_rate=0.05,
        steps=5,
    )
    assert plan.history == ((1.0, 0.05, 10),)


# ------------------------------------------------------------------------------ the gate


def test_crashed_reservation_at_budget_exhausts_the_hospital(ledger: PrivacyLedger) -> None:
    chooser = orchestrator(ledger, {"h1": 5.0, "h2": 5.0})
    decision = chooser.decide(0, {"h1": RoundPlan((), 1.0, 0.05, 5)})["h1"]
    chooser.reserve(decision, round_number=0, cumulative_epsilon=5.0)
    # ...the process dies here: never committed, so the row stays 'reserved' and counts
    with pytest.raises(BudgetExhausted, match="reserved rounds count"):
        chooser.ensure_within_budget("h1")
    chooser.ensure_within_budget("h2")
    after = chooser.decide(1, {"h1": PLAN})["h1"]
    assert after.action == "exclude" and "exhausted" in after.reason
    with pytest.raises(BudgetExhausted):
        chooser.reserve(after, round_number=1)
    with pytest.raises(BudgetExhausted):  # even a hand-made "allow" cannot pass the ledger
        chooser.reserve(decision, round_number=1, cumulative_epsilon=5.0)


def test_reserve_refuses_an_actual_epsilon_past_the_budget(ledger: PrivacyLedger) -> None:
    plan = RoundPlan((), 1.0, 0.05, 5)
    expected = planned_epsilon(plan, 1.0)
    chooser = orchestrator(ledger, {"h1": expected})
    decision = chooser.decide(0, {"h1": plan})["h1"]
    with pytest.raises(BudgetExhausted, match="past its budget"):
        chooser.reserve(decision, round_number=0, cumulative_epsilon=expected * 1.01)
    entry = chooser.reserve(decision, round_number=0)
    assert entry.cumulative_epsilon == expected and entry.status == "reserved"
    assert chooser.commit("h1", round_number=0).status == "released"


def test_history_that_misses_a_reserved_round_is_excluded(ledger: PrivacyLedger) -> None:
    chooser = orchestrator(ledger, {"h1": 50.0})
    first = RoundPlan((), 1.0, 0.05, 50)
    chooser.reserve(chooser.decide(0, {"h1": first})["h1"], round_number=0)
    # the trainer restarted from an empty accountant: its history forgets round 0
    decision = chooser.decide(1, {"h1": first})["h1"]
    assert decision.action == "exclude" and "misses a reserved round" in decision.reason


def test_aborted_round_gives_its_budget_back(ledger: PrivacyLedger) -> None:
    plan = RoundPlan((), 1.0, 0.05, 20)
    chooser = orchestrator(ledger, {"h1": planned_epsilon(plan, 1.0)})
    decision = chooser.decide(0, {"h1": plan})["h1"]
    chooser.reserve(decision, round_number=0)
    assert chooser.decide(1, {"h1": plan})["h1"].action == "exclude"
    chooser.abort("h1", round_number=0, reason="training crashed before any noise was drawn")
    assert chooser.spent("h1") == 0.0
    assert chooser.decide(1, {"h1": plan})["h1"].action == "allow"


# ------------------------------------------------------------------------- many rounds


def test_many_rounds_never_overspend_any_hospital(ledger: PrivacyLedger) -> None:
    budgets = {"h1": 1.5, "h2": 2.5, "h3": 4.0}
    raising = orchestrator(ledger, budgets, raise_noise=True, noise_tolerance=0.01)
    plain = orchestrator(ledger, budgets)
    histories: dict[str, list[tuple[float, float, int]]] = {h: [] for h in budgets}
    actions: list[str] = []
    rng = random.Random(7)
    for round_number in range(8):
        plans = {
            hospital: RoundPlan(
                history=tuple(histories[hospital]),
                noise_multiplier=rng.choice([0.8, 1.0, 1.3]),
                sample_rate=rng.choice([0.02, 0.05]),
                steps=rng.choice([20, 50]),
            )
            for hospital in budgets
        }
        chooser = raising if round_number % 2 else plain
        for hospital, decision in chooser.decide(round_number, plans).items():
            actions.append(decision.action)
            if not decision.participates:
                continue
            assert decision.noise_multiplier is not None
            plan = plans[hospital]
            chooser.reserve(decision, round_number=round_number)
            # the update is (possibly) out from here on: its steps enter the history even
            # when the process then dies before committing
            histories[hospital].append((decision.noise_multiplier, plan.sample_rate, plan.steps))
            if rng.random() < 0.8:
                chooser.commit(hospital, round_number=round_number)
    assert {"allow", "raise_noise", "exclude"} <= set(actions)
    for hospital, budget in budgets.items():
        spent = ledger.spent(run_id=RUN, hospital=hospital, mechanism="dp-sgd")
        assert spent <= budget + EPSILON_TOLERANCE
        true_epsilon = project_epsilon(
            histories[hospital], noise_multiplier=1.0, sample_rate=0.1, steps=0, delta=DELTA,
            accountant="rdp",
        )  # fmt: skip
        assert true_epsilon == pytest.approx(spent, rel=1e-12)
        assert true_epsilon <= budget + EPSILON_TOLERANCE
        assert spent > 0.5 * budget  # the orchestrator did let them spend
