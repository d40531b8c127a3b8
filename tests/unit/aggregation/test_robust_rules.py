"""Behaviour every rule shares: preconditions, parameter checks, the registry, and robustness
to one huge outlier. Each rule's own arithmetic is checked by hand in its own test module."""

import random

import pytest
import torch

from securemed.aggregation import (
    RULES,
    AggregationRule,
    FedAvg,
    build_rule,
    fedavg,
    flatten_updates,
    unflatten,
)
from securemed.errors import AggregationPreconditionError, ConfigError, InvalidUpdate

ROBUST = [
    "median",
    "trimmed_mean",
    "krum",
    "multi_krum",
    "bulyan",
    "foolsgold",
    "centered_clipping",
]
PARAMS: dict[str, dict[str, float]] = {"centered_clipping": {"tau": 1.0}}


def _build(name: str, f: int, **params: float) -> AggregationRule:
    return build_rule(name, f=f, **{**PARAMS.get(name, {}), **params})


def _aggregate(rule: AggregationRule, matrix: torch.Tensor) -> torch.Tensor:
    hospitals = [f"hospital-{i}" for i in range(matrix.shape[0])]
    return rule.aggregate(matrix, hospitals=hospitals)


def test_registry_holds_fedavg_and_every_robust_rule_under_its_own_name():
    assert sorted(RULES) == sorted(["fedavg", *ROBUST])
    for name, rule in RULES.items():
        assert rule.name == name


@pytest.mark.parametrize("name", ["fedavg", *ROBUST])
def test_every_rule_follows_the_protocol(name):
    rule = _build(name, f=0)
    assert isinstance(rule, AggregationRule)
    assert rule.needs_individual_updates is (name != "fedavg")
    assert rule.needs_hospital_ids is (name == "foolsgold")


@pytest.mark.parametrize(
    ("name", "f", "n", "message"),
    [
        ("median", 2, 4, r"f=2 .* needs n >= 2f \+ 1 = 5 inputs .* got 4"),
        ("trimmed_mean", 2, 4, r"f=2 .* needs n > 2f = 4 inputs .* got 4"),
        ("krum", 2, 6, r"Krum with f=2 .* needs n > 2f \+ 2 = 6 inputs \(Blanchard.* got 6"),
        ("multi_krum", 1, 4, r"Multi-Krum with f=1 .* needs n > 2f \+ 2 = 4 inputs .* got 4"),
        ("bulyan", 1, 6, r"Bulyan with f=1 .* needs n >= 4f \+ 3 = 7 inputs \(El Mhamdi.* got 6"),
        ("foolsgold", 0, 1, r"FoolsGold with f=0 .* needs n >= 2 = 2 inputs .* got 1"),
        ("foolsgold", 3, 3, r"FoolsGold with f=3 .* needs n > f = 3 inputs .* got 3"),
        ("centered_clipping", 1, 2, r"f=1 .* needs n > 2f = 2 inputs \(Karimireddy.* got 2"),
    ],
)
def test_too_few_inputs_for_f_is_refused_with_the_published_condition(name, f, n, message):
    rule = _build(name, f=f)
    with pytest.raises(AggregationPreconditionError, match=message):
        rule.check(n)
    with pytest.raises(AggregationPreconditionError, match=message):
        _aggregate(rule, torch.arange(n * 2, dtype=torch.float64).reshape(n, 2))


@pytest.mark.parametrize(
    ("name", "f", "n"),
    [
        ("median", 2, 5),
        ("trimmed_mean", 2, 5),
        ("krum", 2, 7),
        ("multi_krum", 1, 5),
        ("bulyan", 1, 7),
        ("foolsgold", 0, 2),
        ("centered_clipping", 1, 3),
    ],
)
def test_the_smallest_allowed_n_runs(name, f, n):
    _build(name, f=f).check(n)


@pytest.mark.parametrize("name", ["fedavg", *ROBUST])
@pytest.mark.parametrize("f", [-1, 1.5, True, "2"])
def test_f_must_be_a_non_negative_integer(name, f):
    with pytest.raises(ConfigError, match="must be an integer >= 0"):
        _build(name, f=f)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("fedavg", {"f": 1}, "fedavg tolerates no Byzantine inputs"),
        ("trimmed_mean", {"f": 1, "beta": 0.5}, r"beta .* \[0, 0.5\)"),
        ("trimmed_mean", {"f": 1, "beta": -0.1}, "beta"),
        ("multi_krum", {"f": 1, "m": 0}, "m .* >= 1"),
        ("foolsgold", {"f": 0, "kappa": 0.0}, "kappa"),
        ("centered_clipping", {"f": 1, "tau": 0.0}, "tau"),
        ("centered_clipping", {"f": 1, "tau": float("inf")}, "tau"),
        ("centered_clipping", {"f": 1, "tau": 1.0, "iterations": 0}, "iterations"),
        ("krum", {"f": 1, "m": 3}, "takes no parameter m; it accepts: none besides f"),
        ("multi_krum", {"f": 1, "beta": 0.1}, "takes no parameter beta; it accepts: m"),
        ("centered_clipping", {"f": 1}, "needs tau"),
    ],
)
def test_bad_parameters_are_refused_when_the_rule_is_built(name, params, message):
    with pytest.raises(ConfigError, match=message):
        build_rule(name, **params)


def test_an_unknown_rule_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown aggregation rule 'krumm'.*bulyan, .*fedavg"):
        build_rule("krumm", f=1)


@pytest.mark.parametrize("name", ["fedavg", *ROBUST])
def test_non_finite_updates_are_refused(name):
    matrix = torch.ones(7, 3, dtype=torch.float64)
    matrix[4, 1] = torch.nan
    with pytest.raises(InvalidUpdate, match=r"rows \[4\]"):
        _aggregate(_build(name, f=0), matrix)


def test_weights_must_match_the_rows_and_be_positive():
    rule = _build("median", f=1)
    matrix = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(InvalidUpdate, match="3 updates need 3 weights"):
        rule.aggregate(matrix, torch.ones(2))
    with pytest.raises(InvalidUpdate, match="positive"):
        rule.aggregate(matrix, torch.tensor([1.0, 0.0, 1.0]))


def test_fedavg_rule_is_the_weighted_mean():
    matrix = torch.tensor([[1.0, 0.0], [4.0, 3.0]], dtype=torch.float64)
    assert FedAvg().aggregate(matrix, torch.tensor([1.0, 2.0])).tolist() == [3.0, 2.0]
    assert FedAvg().aggregate(matrix).tolist() == [2.5, 1.5]


def test_fedavg_rule_on_flattened_updates_matches_fedavg_on_state_dicts():
    updates = [
        {"w": torch.tensor([[1.0, 2.0]]), "n": torch.tensor(3)},
        {"w": torch.tensor([[5.0, -2.0]]), "n": torch.tensor(8)},
    ]
    matrix, layout = flatten_updates(updates)
    by_rule = unflatten(FedAvg().aggregate(matrix, torch.tensor([3.0, 1.0])), layout)
    direct = fedavg(updates, [3, 1])
    assert all(torch.equal(by_rule[name], direct[name]) for name in direct)


# Eleven inputs (f = 2 suits every rule, Bulyan's n >= 4f + 3 included): ten honest updates
# with coordinates in [0, 1] and one Byzantine update of 1e9 in every coordinate.
def _honest_and_outlier() -> tuple[torch.Tensor, torch.Tensor]:
    honest = torch.linspace(0, 1, 10, dtype=torch.float64)[:, None] * torch.tensor(
        [1.0, 0.5, 0.25, 1.0], dtype=torch.float64
    )
    outlier = torch.full((1, 4), 1e9, dtype=torch.float64)
    return honest, torch.cat([honest[:5], outlier, honest[5:]])


@pytest.mark.parametrize("name", ["median", "trimmed_mean", "krum", "multi_krum", "bulyan"])
def test_one_huge_outlier_is_ignored_by_robust_rules(name):
    honest, matrix = _honest_and_outlier()
    result = _aggregate(_build(name, f=2), matrix)
    assert bool((result >= honest.min(dim=0).values).all())
    assert bool((result <= honest.max(dim=0).values).all())


def test_one_huge_outlier_drags_fedavg():
    _, matrix = _honest_and_outlier()
    result = FedAvg().aggregate(matrix)
    assert bool((result > 1e9 / 11).all())


def test_selection_rules_never_pick_the_outlier():
    _, matrix = _honest_and_outlier()
    for name in ["krum", "multi_krum", "bulyan"]:
        rule = _build(name, f=2)
        _aggregate(rule, matrix)
        assert 5 not in rule.last_selected  # type: ignore[attr-defined]


# An independent, loop-by-loop reference for the vectorised order statistics and Krum, run
# on random small integer matrices where ties are frequent.
def _reference_median(column: list[float]) -> float:
    s = sorted(column)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _reference_krum(rows: list[list[float]], f: int) -> int:
    def score(i: int) -> float:
        distances = sorted(
            sum((a - b) ** 2 for a, b in zip(rows[i], rows[j], strict=True))
            for j in range(len(rows))
            if j != i
        )
        return sum(distances[: len(rows) - f - 2])

    return min(range(len(rows)), key=lambda i: (score(i), i))


def test_vectorised_rules_agree_with_a_plain_reference_on_random_small_cases():
    rng = random.Random(7)
    for _ in range(60):
        n, d = rng.randint(3, 9), rng.randint(1, 4)
        rows = [[float(rng.randint(-4, 4)) for _ in range(d)] for _ in range(n)]
        matrix = torch.tensor(rows, dtype=torch.float64)
        columns = [list(c) for c in zip(*rows, strict=True)]
        f = rng.randint(0, (n - 1) // 2)
        median = _build("median", f=f).aggregate(matrix).tolist()
        assert median == [_reference_median(c) for c in columns]
        trimmed = _build("trimmed_mean", f=f).aggregate(matrix).tolist()
        expected = [sum(sorted(c)[f : n - f]) / (n - 2 * f) for c in columns]
        assert trimmed == pytest.approx(expected, rel=1e-12, abs=1e-12)
        if n > 2 * f + 2:
            krum = _build("krum", f=f)
            krum.aggregate(matrix)
            assert krum.last_selected == [_reference_krum(rows, f)]  # type: ignore[attr-defined]
