"""LiRA's Gaussian fits and scores on constructed shadow statistics with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from securemed.audit.leakage import attack_metrics
from securemed.audit.lira import confidence_logit, lira_scores


def _shadows(n: int, shadows: int, seed: int = 0):
    """Confidence ~ N(2, 1) for shadows that trained on an example, N(0, 1) otherwise."""
    rng = np.random.default_rng(seed)
    shadow_in = rng.random((shadows, n)) < 0.5
    shadow_in[0], shadow_in[1] = True, False  # every example has both sides
    shadow = np.where(shadow_in, rng.normal(2, 1, (shadows, n)), rng.normal(0, 1, (shadows, n)))
    return shadow, shadow_in, rng


def test_the_online_score_is_the_log_likelihood_ratio_of_the_fits() -> None:
    shadow = np.array([[3.0], [1.0], [0.5], [-0.5]])
    shadow_in = np.array([[True], [True], [False], [False]])
    score = lira_scores(np.array([1.0]), shadow, shadow_in, online=True, global_variance=False)
    # in: mean 2, std sqrt(2); out: mean 0, std sqrt(0.5)
    expected = norm.logpdf(1.0, 2, np.sqrt(2)) - norm.logpdf(1.0, 0, np.sqrt(0.5))
    assert score[0] == pytest.approx(expected)


def test_the_offline_score_is_the_tail_of_the_out_fit() -> None:
    shadow = np.array([[0.5], [-0.5], [9.0]])
    shadow_in = np.array([[False], [False], [True]])
    score = lira_scores(np.array([1.0]), shadow, shadow_in, online=False, global_variance=False)
    assert score[0] == pytest.approx(-norm.logsf(1.0, 0, np.sqrt(0.5)))


@pytest.mark.parametrize("online", [True, False])
def test_members_score_higher_than_non_members(online: bool) -> None:
    shadow, shadow_in, rng = _shadows(n=2000, shadows=16)
    members = rng.random(2000) < 0.5
    target = np.where(members, rng.normal(2, 1, 2000), rng.normal(0, 1, 2000))
    scores = lira_scores(target, shadow, shadow_in, online=online)
    auc = attack_metrics(scores[members], scores[~members]).roc_auc
    # the optimal test between N(2, 1) and N(0, 1) has AUC Phi(2 / sqrt(2)) = 0.921
    assert auc == pytest.approx(0.921, abs=0.02)


def test_examples_without_shadows_on_a_side_are_refused() -> None:
    with pytest.raises(ValueError, match="more shadow models"):
        lira_scores(np.zeros(1), np.zeros((2, 1)), np.ones((2, 1), bool), online=True)


def test_confidence_logits_stay_finite_at_certainty() -> None:
    logits = confidence_logit(np.array([0.0, 0.5, 1.0]))
    assert np.all(np.isfinite(logits)) and logits[1] == 0.0
