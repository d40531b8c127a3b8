"""What a membership-inference attacker gets, and the epsilon that implies: pure arithmetic.

An attack gives every example a score (higher: more likely a training member). From the
scores of members and non-members:

- :func:`attack_metrics`: ROC AUC, the best balanced accuracy over thresholds, and the TPR at
  low FPRs (0.1 %, 1 %), which is what matters for privacy: an attack that is right about a
  few patients with near certainty leaks more than its AUC suggests (Carlini et al. 2022).
- :func:`epsilon_lower_bound`: a confidence lower bound on the epsilon of any (epsilon, delta)-DP
  mechanism that allows a test with the observed false positive and false negative counts
  (Jagielski et al. 2020; Nasr et al. 2021). For such a mechanism every test satisfies
  ``FPR + e^eps * FNR >= 1 - delta`` and ``FNR + e^eps * FPR >= 1 - delta``; with the rates
  replaced by their one-sided Clopper-Pearson upper bounds, the bound holds with probability at
  least ``1 - alpha`` (each rate gets ``alpha / 2``), so an audit never claims more leakage than
  its counts support. It is a *lower* bound: the accountant's epsilon is the upper one.

Choosing the threshold on the same counts the bound is computed from would bias it upwards;
:func:`epsilon_lower_bound_from_scores` picks the threshold on one half and bounds on the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve

#: the false positive rates at which the TPR is reported
LOW_FPRS = (0.001, 0.01)


@dataclass(frozen=True)
class AttackMetrics:
    roc_auc: float
    balanced_accuracy: float
    #: TPR at each of :data:`LOW_FPRS`: the largest TPR among thresholds whose FPR is at most it
    tpr_at_fpr: dict[float, float]


def attack_metrics(member_scores: ArrayLike, non_member_scores: ArrayLike) -> AttackMetrics:
    """ROC AUC, best balanced accuracy and TPR at :data:`LOW_FPRS` of an attack's scores."""
    labels, scores = _labelled(member_scores, non_member_scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    balanced = float(np.max((tpr + 1.0 - fpr) / 2.0))
    at_fpr = {target: float(np.max(tpr[fpr <= target])) for target in LOW_FPRS}
    return AttackMetrics(float(roc_auc_score(labels, scores)), balanced, at_fpr)


def clopper_pearson_upper(successes: int, trials: int, alpha: float) -> float:
    """One-sided upper confidence bound on a binomial rate at level ``1 - alpha``."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if successes == trials:
        return 1.0
    return float(beta.ppf(1.0 - alpha, successes + 1, trials - successes))


def epsilon_lower_bound(
    *, false_positives: int, negatives: int, false_negatives: int, positives: int,
    delta: float, alpha: float = 0.05,
) -> float:  # fmt: skip
    """The epsilon any (epsilon, delta)-DP mechanism must have to allow these error counts,
    with confidence ``1 - alpha``; 0 when the counts are consistent with no leakage."""
    if not 0 <= delta < 1:
        raise ValueError(f"delta must lie in [0, 1), got {delta}")
    fpr = clopper_pearson_upper(false_positives, negatives, alpha / 2)
    fnr = clopper_pearson_upper(false_negatives, positives, alpha / 2)
    candidates = [0.0]
    for first, second in ((fpr, fnr), (fnr, fpr)):
        if second > 0 and 1 - delta - first > second:
            candidates.append(math.log((1 - delta - first) / second))
    return max(candidates)


def epsilon_lower_bound_from_scores(
    member_scores: ArrayLike, non_member_scores: ArrayLike, *,
    delta: float, alpha: float = 0.05, seed: int = 0,
) -> float:  # fmt: skip
    """Threshold chosen on a random half of each group, the bound computed on the other half."""
    rng = np.random.default_rng(seed)
    members = rng.permutation(np.asarray(member_scores, dtype=float).ravel())
    others = rng.permutation(np.asarray(non_member_scores, dtype=float).ravel())
    if min(len(members), len(others)) < 2:
        raise ValueError("need at least two members and two non-members to split")
    fit_in, test_in = np.array_split(members, 2)
    fit_out, test_out = np.array_split(others, 2)
    best, best_threshold = -math.inf, math.inf
    for threshold in np.unique(np.concatenate([fit_in, fit_out])):
        bound = _bound_at(threshold, fit_in, fit_out, delta, alpha)
        if bound > best:
            best, best_threshold = bound, threshold
    return _bound_at(best_threshold, test_in, test_out, delta, alpha)


def _bound_at(
    threshold: float, members: np.ndarray, others: np.ndarray, delta: float, alpha: float
) -> float:
    return epsilon_lower_bound(
        false_positives=int(np.sum(others >= threshold)),
        negatives=len(others),
        false_negatives=int(np.sum(members < threshold)),
        positives=len(members),
        delta=delta,
        alpha=alpha,
    )


def _labelled(members: ArrayLike, others: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    member_scores = np.asarray(members, float).ravel()
    other_scores = np.asarray(others, float).ravel()
    if member_scores.size == 0 or other_scores.size == 0:
        raise ValueError("need scores of both members and non-members")
    scores = np.concatenate([member_scores, other_scores])
    if not np.all(np.isfinite(scores)):
        raise ValueError("attack scores must be finite")
    labels = np.concatenate([np.ones(member_scores.size), np.zeros(other_scores.size)])
    return labels, scores
