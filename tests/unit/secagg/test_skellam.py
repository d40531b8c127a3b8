"""The distributed Skellam mechanism: its noise, its sensitivity bound and its accounting.

Statistical checks use seeded generators and margins of at least six standard errors of the
statistic they test, so they are deterministic and would not fail by chance under a reseed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from opacus.accountants.analysis import rdp as rdp_analysis
from scipy import stats

from securemed.errors import ConfigError
from securemed.secagg.skellam import (
    DEFAULT_ORDERS,
    integer_sensitivity,
    skellam_epsilon,
    skellam_noise,
    skellam_rdp,
)

SAMPLES = 200_000


def _variance_margin(variance: float, samples: int) -> float:
    """Six standard errors of a sample variance: Var(s^2) ~ (mu4 - V^2) / n, mu4 = 3V^2 + V."""
    return 6.0 * math.sqrt((2.0 * variance**2 + variance) / samples)


# ---------------------------------------------------------------------------------- noise


def test_skellam_noise_is_integer_centred_with_the_asked_variance() -> None:
    variance = 50.0
    noise = skellam_noise(SAMPLES, variance=variance, rng=np.random.default_rng(0))
    assert noise.dtype == np.int64
    assert noise.shape == (SAMPLES,)
    assert abs(noise.mean()) < 6.0 * math.sqrt(variance / SAMPLES)
    assert abs(noise.var() - variance) < _variance_margin(variance, SAMPLES)


def test_skellam_noise_keeps_a_multidimensional_shape() -> None:
    noise = skellam_noise((3, 4), variance=2.0, rng=np.random.default_rng(1))
    assert noise.shape == (3, 4)
    assert noise.dtype == np.int64


@pytest.mark.parametrize(
    "shares",
    [
        [30.0 / 7] * 7,  # the even split over 7 hospitals
        [1.0, 2.5, 6.5, 20.0],  # any split that adds up to the same total
    ],
)
def test_hospitals_shares_sum_to_skellam_with_the_total_variance(shares: list[float]) -> None:
    rng = np.random.default_rng(2)
    total = np.sum([skellam_noise(SAMPLES, variance=share, rng=rng) for share in shares], axis=0)
    variance = sum(shares)
    assert abs(total.mean()) < 6.0 * math.sqrt(variance / SAMPLES)
    assert abs(total.var() - variance) < _variance_margin(variance, SAMPLES)
    # Not just the variance: the law is Skellam(V/2, V/2). Chi-square over the central values
    # (tails pooled into the end bins), at a p-value threshold no seed should reach.
    edge = int(4 * math.sqrt(variance))
    clipped = np.clip(total, -edge, edge)
    observed = np.bincount(clipped + edge, minlength=2 * edge + 1)
    law = stats.skellam(variance / 2, variance / 2)
    support = np.arange(-edge, edge + 1)
    expected = law.pmf(support)
    expected[0] = law.cdf(-edge)
    expected[-1] = law.sf(edge - 1)
    assert stats.chisquare(observed, SAMPLES * expected / expected.sum()).pvalue > 1e-6


@pytest.mark.parametrize("variance", [0.0, -1.0, math.nan, math.inf])
def test_skellam_noise_refuses_a_variance_that_is_not_positive(variance: float) -> None:
    with pytest.raises(ConfigError, match="variance must be a positive"):
        skellam_noise(3, variance=variance, rng=np.random.default_rng())


def test_skellam_noise_refuses_anything_but_a_generator() -> None:
    with pytest.raises(ConfigError, match="default_rng"):
        skellam_noise(3, variance=1.0, rng=np.random.RandomState(0))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- sensitivity


def test_integer_sensitivity_on_a_hand_computed_case() -> None:
    # L2 = 100 * 0.5 + sqrt(16) = 54; L1 = sqrt(16) * 54 = 216 = 100 * 0.5 * 4 + 16.
    assert integer_sensitivity(norm_bound=0.5, scale=100.0, dimension=16) == (216.0, 54.0)
    # d = 1: L2 = 3 * 2 + 1 = 7 and L1 = L2.
    assert integer_sensitivity(norm_bound=2.0, scale=3.0, dimension=1) == (7.0, 7.0)


def test_no_rounding_of_a_bounded_update_exceeds_the_sensitivity() -> None:
    rng = np.random.default_rng(3)
    for _ in range(2000):
        dimension = int(rng.integers(1, 65))
        norm_bound = float(rng.uniform(0.01, 5.0))
        scale = float(rng.choice([0.3, 1.0, 7.0, 100.0, 5000.0]))
        direction = rng.standard_normal(dimension)
        direction[rng.random(dimension) < 0.3] = 0.0  # some sparse updates
        if not direction.any():
            direction[0] = 1.0
        # updates on the ball's surface (the worst case) and inside it
        norm = norm_bound * (1.0 if rng.random() < 0.5 else float(rng.random()))
        scaled = scale * norm * direction / np.linalg.norm(direction)
        floor = np.floor(scaled)
        stochastic = floor + (rng.random(dimension) < scaled - floor)
        away_from_zero = np.sign(scaled) * np.ceil(np.abs(scaled))  # the largest choice
        # the quantizer's half-integer offset, the update and zeros rounded with the same draws
        offset, uniform = (2**16 - 1) / 2, rng.random(dimension)
        coupled = np.floor(scaled + offset - uniform) - np.floor(offset - uniform)
        l1, l2 = integer_sensitivity(norm_bound=norm_bound, scale=scale, dimension=dimension)
        for rounded in (stochastic, away_from_zero, coupled):
            assert np.linalg.norm(rounded) <= l2 * (1 + 1e-12)
            assert np.abs(rounded).sum() <= l1 * (1 + 1e-12)


def test_the_sensitivity_bound_is_nearly_attained() -> None:
    # Every coordinate just above an integer, rounded up: the bound is tight, not a loose guess.
    dimension, scale = 100, 10.0
    norm_bound = (3.0 + 1e-6) * math.sqrt(dimension) / scale  # scale * x_i = 3 + 1e-6
    rounded = np.full(dimension, 4.0)
    l1, l2 = integer_sensitivity(norm_bound=norm_bound, scale=scale, dimension=dimension)
    assert np.linalg.norm(rounded) == pytest.approx(l2, rel=1e-6)
    assert np.abs(rounded).sum() == pytest.approx(l1, rel=1e-6)


@pytest.mark.parametrize(
    ("norm_bound", "scale", "dimension", "message"),
    [
        (0.0, 1.0, 4, "norm_bound"),
        (-1.0, 1.0, 4, "norm_bound"),
        (math.inf, 1.0, 4, "norm_bound"),
        (1.0, 0.0, 4, "scale"),
        (1.0, math.nan, 4, "scale"),
        (1.0, 1.0, 0, "dimension"),
        (1.0, 1.0, 2.5, "dimension"),
        (1.0, 1.0, True, "dimension"),
    ],
)
def test_integer_sensitivity_refuses_bad_inputs(
    norm_bound: float, scale: float, dimension: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        integer_sensitivity(norm_bound=norm_bound, scale=scale, dimension=dimension)


# ------------------------------------------------------------------------------------ RDP


def test_skellam_rdp_on_hand_computed_values_of_both_branches() -> None:
    # alpha = 3, l1 = 10, l2 = 4. Gaussian term 3 * 16 / (2V); discreteness term the min of
    # (5 * 16 + 60) / (4 V^2) and 30 / (2V).
    # V = 20: 1.2 + min(140 / 1600, 0.75) = 1.2 + 0.0875.
    assert skellam_rdp([3], l1=10.0, l2=4.0, variance=20.0) == pytest.approx([1.2875], rel=1e-12)
    # V = 2: 12 + min(140 / 16, 7.5) = 12 + 7.5 (the second branch).
    assert skellam_rdp([3], l1=10.0, l2=4.0, variance=2.0) == pytest.approx([19.5], rel=1e-12)


def test_skellam_rdp_approaches_the_gaussian_from_above() -> None:
    l1, l2 = integer_sensitivity(norm_bound=0.5, scale=100.0, dimension=16)
    orders = np.asarray(DEFAULT_ORDERS, dtype=float)
    for variance in (0.5, 3.0, 50.0, 1e3, 1e4, 1e5, 1e7):
        gaussian = orders * l2**2 / (2 * variance)
        skellam = skellam_rdp(orders, l1=l1, l2=l2, variance=variance)
        assert np.all(skellam >= gaussian)
        if variance >= 1e4:
            # the excess is about (1 + 3 l1 / (alpha l2^2)) / V of the Gaussian term
            assert np.all(skellam <= gaussian * (1 + 2.0 / variance))
            assert np.all((skellam - gaussian) / gaussian < 1e-3)


def test_skellam_rdp_falls_with_variance_and_grows_with_the_order() -> None:
    l1, l2 = 40.0, 12.0
    variances = np.geomspace(0.1, 1e6, 60)
    curves = np.stack([skellam_rdp(DEFAULT_ORDERS, l1=l1, l2=l2, variance=v) for v in variances])
    assert np.all(np.diff(curves, axis=0) < 0)  # more noise, less privacy loss
    assert np.all(np.diff(curves, axis=1) > 0)  # higher order, larger divergence


@pytest.mark.parametrize(
    ("orders", "kwargs", "message"),
    [
        ([1], {}, "integers >= 2"),
        ([2, 2.5], {}, "integers >= 2"),
        ([0.5], {}, "integers >= 2"),
        ([math.inf], {}, "integers >= 2"),
        ([], {}, "empty"),
        (["two"], {}, "must be numbers"),
        ([2], {"l1": 1.0, "l2": 2.0}, "swapped"),
        ([2], {"l1": 0.0}, "l1"),
        ([2], {"l2": -1.0}, "l2"),
        ([2], {"variance": 0.0}, "variance"),
        ([2], {"variance": math.nan}, "variance"),
    ],
)
def test_skellam_rdp_refuses_bad_inputs(
    orders: list[object], kwargs: dict[str, float], message: str
) -> None:
    arguments = {"l1": 10.0, "l2": 4.0, "variance": 20.0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        skellam_rdp(orders, **arguments)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- epsilon


def test_more_rounds_never_lower_epsilon() -> None:
    l1, l2 = integer_sensitivity(norm_bound=1.0, scale=100.0, dimension=10_000)
    epsilons = [
        skellam_epsilon(rounds=r, l1=l1, l2=l2, variance=(1.2 * l2) ** 2, delta=1e-5)
        for r in range(1, 41)
    ]
    assert np.all(np.diff(epsilons) > 0)


def test_skellam_epsilon_composes_and_converts_as_opacus_does() -> None:
    orders = list(range(2, 65))
    curve = skellam_rdp(orders, l1=30.0, l2=5.0, variance=80.0)
    expected, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=7 * curve, delta=1e-6)
    got = skellam_epsilon(rounds=7, l1=30.0, l2=5.0, variance=80.0, delta=1e-6, orders=orders)
    assert got == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.filterwarnings("ignore:Optimal order is the")
@pytest.mark.parametrize("noise_multiplier", [0.8, 1.5, 4.0])
def test_skellam_epsilon_matches_the_gaussian_for_large_variance(noise_multiplier: float) -> None:
    l1, l2 = integer_sensitivity(norm_bound=1.0, scale=100.0, dimension=10_000)
    variance = (noise_multiplier * l2) ** 2
    orders = list(DEFAULT_ORDERS)
    gaussian_curve = rdp_analysis.compute_rdp(
        q=1.0, noise_multiplier=noise_multiplier, steps=100, orders=orders
    )
    gaussian, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=gaussian_curve, delta=1e-5)
    skellam = skellam_epsilon(rounds=100, l1=l1, l2=l2, variance=variance, delta=1e-5)
    assert skellam >= gaussian
    assert skellam == pytest.approx(float(gaussian), rel=0.01)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rounds": 0}, "rounds"),
        ({"rounds": -3}, "rounds"),
        ({"rounds": 2.5}, "rounds"),
        ({"rounds": True}, "rounds"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": math.nan}, "delta"),
        ({"variance": -1.0}, "variance"),
        ({"orders": [1, 2]}, "integers >= 2"),
    ],
)
def test_skellam_epsilon_refuses_bad_inputs(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "rounds": 10,
        "l1": 30.0,
        "l2": 5.0,
        "variance": 80.0,
        "delta": 1e-5,
        **kwargs,
    }
    with pytest.raises(ConfigError, match=message):
        skellam_epsilon(**arguments)  # type: ignore[arg-type]
