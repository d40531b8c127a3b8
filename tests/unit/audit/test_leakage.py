"""Attack metrics and the empirical epsilon lower bound, on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from securemed.audit.leakage import (
    attack_metrics,
    clopper_pearson_upper,
    epsilon_lower_bound,
    epsilon_lower_bound_from_scores,
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


def test_clopper_pearson_upper_bound_by_hand() -> None:
    # no successes in n trials: 1 - alpha ** (1 / n)
    assert clopper_pearson_upper(0, 1000, 0.05) == pytest.approx(1 - 0.05 ** (1 / 1000))
    assert clopper_pearson_upper(10, 10, 0.05) == 1.0
    with pytest.raises(ValueError):
        clopper_pearson_upper(3, 2, 0.05)


def test_epsilon_lower_bound_by_hand() -> None:
    # 1000 members all caught, 1000 non-members never flagged, delta 0, alpha 0.05 split in two:
    # both rates bounded by u = 1 - 0.025 ** (1 / 1000), so eps >= ln((1 - u) / u) = 5.60
    u = 1 - 0.025 ** (1 / 1000)
    bound = epsilon_lower_bound(
        false_positives=0, negatives=1000, false_negatives=0, positives=1000, delta=0.0
    )
    assert bound == pytest.approx(math.log((1 - u) / u))
    assert bound == pytest.approx(5.60, abs=0.01)


def test_a_guessing_attack_implies_no_leakage() -> None:
    bound = epsilon_lower_bound(
        false_positives=500, negatives=1000, false_negatives=500, positives=1000, delta=1e-5
    )
    assert bound == 0.0


def test_the_bound_from_scores_never_exceeds_a_true_gaussian_mechanisms_epsilon() -> None:
    """Scores from the optimal test against the Gaussian mechanism with sigma 1 (mu = 1):
    the mechanism is (eps, 1e-5)-DP with eps = 4.377 exactly (analytic Gaussian), so no sound
    audit may exceed it."""
    rng = np.random.default_rng(2)
    bound = epsilon_lower_bound_from_scores(
        rng.normal(1, 1, 20_000), rng.normal(0, 1, 20_000), delta=1e-5
    )
    assert 0.0 < bound < 4.377
