"""The privacy-utility frontier and the recommendation for a budget, on constructed points."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from securemed.tuning import (
    SweepPoint,
    dominates,
    pareto_frontier,
    point_from_report,
    recommend,
    write_frontier_outputs,
)


def _point(trial: str, epsilon: float, utility: float, *, step: int = 1, tpr: float = 0.0):
    return SweepPoint(
        trial=trial,
        step=step,
        utility=utility,
        epsilon=epsilon,
        tpr_at_1pct_fpr=tpr,
        attack_auc=0.5,
        setting={"noise_multiplier": 1.0, "rounds": step},
        params={"noise_multiplier": 1.0, "rounds": 5},
    )


def _keys(points):
    return [(p.trial, p.step) for p in points]


def test_the_frontier_keeps_exactly_the_non_dominated_points_by_rising_epsilon() -> None:
    points = [
        _point("a", 1.0, 0.60),
        _point("b", 2.0, 0.70),
        _point("c", 2.5, 0.65),  # dominated by b: more epsilon, less utility
        _point("d", 4.0, 0.80),
        _point("e", 0.5, 0.55),
        _point("f", 3.0, 0.70),  # dominated by b: same utility at more epsilon
    ]
    frontier = pareto_frontier(points)
    assert _keys(frontier) == [("e", 1), ("a", 1), ("b", 1), ("d", 1)]
    for point in points:
        on = (point.trial, point.step) in _keys(frontier)
        assert on == (not any(dominates(other, point) for other in points))


def test_equal_points_appear_once_preferring_the_lower_attack_tpr_then_the_earlier_trial() -> None:
    points = [
        _point("b", 1.0, 0.6, tpr=0.05),
        _point("a", 1.0, 0.6, tpr=0.02),
        _point("c", 1.0, 0.6, tpr=0.02),
        _point("d", 1.0, 0.5),  # same epsilon, less utility
    ]
    assert _keys(pareto_frontier(points)) == [("a", 1)]


def test_an_empty_sweep_has_an_empty_frontier_and_no_budget_fits() -> None:
    assert pareto_frontier([]) == []
    (advice,) = recommend([], [4.0])
    assert advice.point is None and "no reported model" in advice.reason


def test_undefined_utility_is_left_out_and_a_model_without_dp_sits_at_infinite_epsilon() -> None:
    points = [
        _point("a", 1.0, 0.6),
        _point("nan", 0.1, math.nan),
        _point("nodp", math.inf, 0.9),
        _point("nodp-worse", math.inf, 0.5),
    ]
    frontier = pareto_frontier(points)
    assert _keys(frontier) == [("a", 1), ("nodp", 1)]
    (advice,) = recommend(points, [100.0])
    assert advice.point is not None and advice.point.trial == "a"  # never the one without DP


def test_each_budget_gets_the_best_utility_within_it_or_a_clear_none_fits() -> None:
    points = [_point("a", 0.8, 0.6), _point("b", 1.9, 0.7), _point("c", 3.5, 0.75)]
    low, two, four = recommend(points, [0.5, 2.0, 4.0])
    assert low.point is None
    assert "smallest reached is 0.8" in low.reason
    assert two.point is not None and two.point.trial == "b"
    assert four.point is not None and four.point.trial == "c"
    as_json = low.to_dict(utility="auroc", step="round")
    assert as_json == {"budget": 0.5, "fits": False, "reason": low.reason}
    chosen = two.to_dict(utility="auroc", step="round")
    assert chosen["fits"] and chosen["auroc"] == 0.7 and chosen["round"] == 1


def test_a_budget_prefers_the_smaller_epsilon_between_equal_utilities() -> None:
    points = [_point("late", 3.0, 0.7), _point("early", 1.0, 0.7)]
    (advice,) = recommend(points, [4.0])
    assert advice.point is not None and advice.point.trial == "early"


def test_a_report_becomes_a_point_whose_setting_releases_that_round() -> None:
    point = point_from_report(
        "t1",
        {"noise_multiplier": 1.0, "rounds": 6},
        {"round": 2, "auroc": 0.7, "epsilon": None, "tpr_at_1pct_fpr": 0.01, "seconds": 3.0},
        utility="auroc",
        step="round",
        length="rounds",
    )
    assert point.setting == {"noise_multiplier": 1.0, "rounds": 2}
    assert point.params["rounds"] == 6
    assert point.epsilon == math.inf and not point.private
    assert math.isnan(point.attack_auc)
    assert point.extra == {"seconds": 3.0}


def test_a_model_that_saw_no_private_data_fits_every_budget() -> None:
    points = [_point("start", 0.0, 0.42, step=0), _point("a", 0.7, 0.38), _point("b", 2.7, 0.45)]
    assert _keys(pareto_frontier(points)) == [("start", 0), ("b", 1)]
    small, large = recommend(points, [1.0, 4.0])
    assert small.point is not None and small.point.trial == "start"
    assert large.point is not None and large.point.trial == "b"


def test_the_outputs_agree_with_each_other(tmp_path: Path) -> None:
    points = [
        _point("start", 0.0, 0.55, step=0),
        _point("a", 1.0, 0.6, step=1),
        _point("a", 2.0, 0.7, step=2),
        _point("b", 1.5, 0.5),
        _point("c", math.inf, 0.9),
    ]
    files = write_frontier_outputs(
        tmp_path,
        points,
        utility="auroc",
        step="round",
        setting_keys=["noise_multiplier", "rounds"],
        budgets=[0.5, 2.0],
        trial_notes={"a": {"stopped_early": False}, "b": {"stopped_early": True}},
    )
    with (tmp_path / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(points)
    assert [row["on_frontier"] for row in rows] == ["True", "True", "True", "False", "True"]
    assert rows[3]["stopped_early"] == "True"
    with (tmp_path / "frontier.csv").open() as handle:
        frontier_rows = list(csv.DictReader(handle))
    assert [(r["trial"], r["round"]) for r in frontier_rows] == [
        ("start", "0"), ("a", "1"), ("a", "2"), ("c", "1"),
    ]  # fmt: skip
    table = (tmp_path / "frontier.md").read_text()
    assert "| 2.00 | 0.700 |" in table and "inf (no DP)" in table
    assert files.table in table
    advice = json.loads((tmp_path / "recommendation.json").read_text())
    assert [r["trial"] for r in advice["recommendations"]] == ["start", "a"]
    assert advice["recommendations"][1]["setting"] == {"noise_multiplier": 1.0, "rounds": 2}
    assert (tmp_path / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
