"""Attack metrics and the one-run epsilon lower bound, on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from securemed.audit.leakage import (
    attack_metrics,
    confident_guesses,
    one_run_audit,
    one_run_epsilon,
    one_run_p_value,
)


def test_perfectly_separated_scores_give_auc_one_and_full_tpr_at_low_fpr() -> None:
    metrics = attack_metrics([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0])
    assert metrics.roc_auc == 1.0 and metrics.balanced_accuracy == 1.0
    assert metrics.tpr_at_fpr == {0.001: 1.0, 0.01: 1.0}


def test_identical_distributions_give_chance() -> None:
    rng = np.random.default_rng(0)
    metrics = attack_metrics(rng.normal(size=20_000), rng.normal(size=20_000))
    assert abs(metrics.roc_auc - 0.5) < 0.01
    assert metrics.tpr_at_fpr[0.01] < 0.02


def test_gaussian_shift_matches_its_closed_form_auc() -> None:
    # members ~ N(1, 1), non-members ~ N(0, 1): AUC = Phi(1 / sqrt(2)) = 0.7602
    rng = np.random.default_rng(1)
    metrics = attack_metrics(rng.normal(1, 1, 50_000), rng.normal(0, 1, 50_000))
    assert abs(metrics.roc_auc - 0.7602) < 0.005


def test_every_guess_right_gives_the_bound_by_hand() -> None:
    # v = r = m, delta 0: P[Binomial(r, q) >= r] = q^r = alpha, so eps = logit(alpha ** (1 / r))
    for guesses, expected in ((100, 3.4930), (10, 1.0519)):
        q = 0.05 ** (1 / guesses)
        assert math.log(q / (1 - q)) == pytest.approx(expected, abs=1e-4)
        bound = one_run_epsilon(
            coins=guesses, guesses=guesses, correct=guesses, delta=0.0, alpha=0.05
        )
        assert bound == pytest.approx(expected, abs=1e-4)


def test_the_p_value_with_a_wrong_guess_by_hand() -> None:
    # 19 of 20 right at eps = ln 3 (q = 3/4): P[B >= 19] = q^19 (20 - 19 q)
    expected = 0.75**19 * (20 - 19 * 0.75)
    p_value = one_run_p_value(coins=20, guesses=20, correct=19, epsilon=math.log(3), delta=0.0)
    assert p_value == pytest.approx(expected, rel=1e-9)


def test_delta_s_share_by_hand() -> None:
    # one guess, right, among m coins: p = q + 2 m delta (1 - q) (only i = 1 in the max)
    q = 0.8
    p_value = one_run_p_value(coins=5, guesses=1, correct=1, epsilon=math.log(4), delta=0.01)
    assert p_value == pytest.approx(q + 2 * 5 * 0.01 * (1 - q))
    # rejected at alpha 0.9 while q (1 - 0.1) + 0.1 <= 0.9: q <= 8/9, eps <= ln 8
    bound = one_run_epsilon(coins=5, guesses=1, correct=1, delta=0.01, alpha=0.9)
    assert bound == pytest.approx(math.log(8), abs=1e-6)


def test_no_right_guess_or_chance_accuracy_bounds_nothing() -> None:
    assert one_run_epsilon(coins=100, guesses=100, correct=0, delta=1e-5, alpha=0.05) == 0.0
    assert one_run_epsilon(coins=100, guesses=100, correct=55, delta=1e-5, alpha=0.05) == 0.0


def test_a_perfect_attack_on_enough_independent_canaries_bounds_epsilon_above_one() -> None:
    rng = np.random.default_rng(3)
    coins = rng.random(256) < 0.5
    audit = one_run_audit(np.where(coins, 5.0, -5.0), coins, delta=1e-5)
    assert audit.guesses == audit.correct == audit.coins == 256
    # every coin right, tested at alpha / 5: logit(0.01 ** (1 / 256)) = 4.01, less delta's share
    q = 0.01 ** (1 / 256)
    assert 3.9 < audit.epsilon_lower_bound <= math.log(q / (1 - q)) + 1e-9
    # the same perfect attack on eight canaries proves little: eight coins are little evidence
    few = rng.random(8) < 0.5
    assert one_run_audit(np.where(few, 5.0, -5.0), few, delta=1e-5).epsilon_lower_bound < 0.3


def test_scores_that_carry_no_information_rarely_give_a_positive_bound() -> None:
    # the output ignores the coins (0-DP): any positive bound is a false claim, which the
    # audit allows with probability at most alpha = 0.05; 100 audits expect at most 5
    bounds = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        coins = rng.random(256) < 0.5
        bounds.append(one_run_audit(rng.normal(size=256), coins, delta=1e-5).epsilon_lower_bound)
    assert sum(bound > 0 for bound in bounds) <= 15
    assert max(bounds) < 1.0


def test_randomized_response_at_a_known_epsilon_is_not_overclaimed() -> None:
    """Each coin reported truthfully with probability e / (1 + e), else flipped: exactly
    1-DP per coin, and the guess from the report is the best test there is. The audit may
    exceed 1 with probability at most 0.05, and with 300 coins it comes close to 1."""
    epsilon = 1.0
    truthful = math.exp(epsilon) / (1 + math.exp(epsilon))
    bounds = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        coins = rng.random(300) < 0.5
        report = np.where(rng.random(300) < truthful, coins, ~coins)
        scores = np.where(report, epsilon, -epsilon)  # the report's log-likelihood ratio
        bounds.append(one_run_audit(scores, coins, delta=1e-5).epsilon_lower_bound)
    assert sum(bound > epsilon for bound in bounds) <= 15
    assert np.mean(bounds) > 0.5 * epsilon


def test_the_bound_never_exceeds_a_gaussian_mechanisms_epsilon() -> None:
    """Each coin adds mu = 1 to a N(0, 1) output, scored by the exact log-likelihood ratio:
    the Gaussian mechanism with sigma 1, (4.377, 1e-5)-DP exactly (analytic Gaussian)."""
    rng = np.random.default_rng(2)
    coins = rng.random(20_000) < 0.5
    output = coins + rng.normal(size=coins.size)
    audit = one_run_audit(output - 0.5, coins, delta=1e-5)
    assert 0.5 < audit.epsilon_lower_bound < 4.377


def test_the_guesses_are_read_from_the_scores_alone() -> None:
    scores = np.array([3.0, -0.5, 0.0, -4.0, 1.0, 0.2])
    assert confident_guesses(scores, 3).tolist() == [1, 0, 0, -1, 1, 0]
    # a score of 0 is no evidence either way: abstained on even when counted
    assert confident_guesses(scores, 6).tolist() == [1, -1, 0, -1, 1, 1]
    rng = np.random.default_rng(0)
    coins = rng.random(6) < 0.5
    first = one_run_audit(scores, coins, delta=1e-5)
    other = one_run_audit(scores, ~coins, delta=1e-5)
    assert first.guesses == other.guesses and np.array_equal(first.guess, other.guess)
    assert first.correct + other.correct == first.guesses - 1  # the 0 score: never right


def test_malformed_audits_are_refused() -> None:
    with pytest.raises(ValueError, match="one per coin"):
        one_run_audit([1.0, 2.0], [True], delta=1e-5)
    with pytest.raises(ValueError, match="finite"):
        one_run_audit([1.0, np.nan], [True, False], delta=1e-5)
    with pytest.raises(ValueError, match="correct <= guesses"):
        one_run_p_value(coins=3, guesses=4, correct=1, epsilon=1.0, delta=0.0)
