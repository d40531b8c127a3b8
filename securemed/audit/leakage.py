"""What a membership-inference attacker gets, and the epsilon that implies: pure arithmetic.

An attack gives every example a score (higher: more likely a training member). From the
scores of members and non-members:

- :func:`attack_metrics`: ROC AUC, the best balanced accuracy over thresholds, and the TPR at
  low FPRs (0.1 %, 1 %), which is what matters for privacy: an attack that is right about a
  few patients with near certainty leaks more than its AUC suggests (Carlini et al. 2022).
- :func:`one_run_audit`: a lower bound on epsilon, with confidence ``1 - alpha``, from guesses
  of canaries' membership: the one-run audit of Steinke, Nasr and Jagielski (2023, "Privacy
  Auditing with One (1) Training Run"). It is a *lower* bound: the accountant's epsilon is
  the upper one, and a bound above it means the DP training or its accounting is broken.

Why this audit, and not Clopper-Pearson on (model, canary) pairs: Clopper-Pearson bounds a
rate from independent trials, and pairs pooled over copies are not independent (one model's
errors on its canaries move together; each canary recurs in every copy; the threshold was
fitted on the same canaries and models). Independent trials, one (model, canary) pair per
trained model, would take hundreds of copies. The one-run theorem needs only that each
audited membership ``S_i`` is an independent fair coin and that the mechanism is
(epsilon, delta)-DP with respect to each coin. Then for *any* guesses computed from the
mechanism's output alone, at most ``r`` of them (abstaining on the other coins), however the
outputs depend on each other, the number ``W`` of right guesses out of ``m`` coins obeys

    P[W >= v] <= P[B >= v] + 2 m delta max_{i >= 1} P[v - i <= B < v] / i,
    B ~ Binomial(r, q), q = e^eps / (1 + e^eps)

(their main theorem, in the form their appendix computes): ``r`` guesses are never right more
often than ``r`` independent guesses at the accuracy of eps-DP randomized response, plus
delta's share. The largest epsilon this rejects at level ``alpha`` is the bound (bisection
keeps the reported end rejected). Several trained copies are one mechanism over the union of
their coins, since each coin changes one copy's training set by one example, so their coins
pool, as long as no guess reads any of them: the studies draw the audited copies' canary
memberships as independent coins and score them against reference copies whose membership
the attack does know (:func:`securemed.audit.membership.audit_masks`).

The guesses follow the score's sign (positive: in, as a log-likelihood ratio's is), on the
``r`` scores farthest from 0, for each ``r`` in :data:`GUESS_FRACTIONS` of the coins; each
``r`` is tested at ``alpha / len(GUESS_FRACTIONS)`` (Bonferroni), so reporting the best is no
multiple comparison. Not done here: bounding delta, or anything valid when the coins were not
fair and independent, or when a score read one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit
from scipy.stats import binom
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


#: how many guesses the one-run audit tries, as fractions of its coins; fixed before any study
#: ran, each tried at ``alpha / len(GUESS_FRACTIONS)``
GUESS_FRACTIONS = (1.0, 0.5, 0.25, 0.125, 0.0625)


@dataclass(frozen=True)
class OneRunAudit:
    """The one-run audit's bound and the guesses it came from."""

    epsilon_lower_bound: float
    #: coins (audited canary memberships), guesses made on them, and how many were right
    coins: int
    guesses: int
    correct: int
    #: per coin, in the scores' shape: +1 guessed in, -1 guessed out, 0 abstained
    guess: np.ndarray


def one_run_p_value(*, coins: int, guesses: int, correct: int, epsilon: float,
                    delta: float) -> float:  # fmt: skip
    """An upper bound on the chance of ``correct`` or more right guesses out of ``guesses``
    on ``coins`` fair coins, under any (epsilon, delta)-DP mechanism (Steinke et al. 2023)."""
    if not 0 <= correct <= guesses <= coins:
        raise ValueError(f"need 0 <= correct <= guesses <= coins, got {correct}/{guesses}/{coins}")
    if epsilon < 0 or not 0 <= delta < 1:
        raise ValueError(f"need epsilon >= 0 and delta in [0, 1), got {epsilon} and {delta}")
    q = float(expit(epsilon))  # how often eps-DP randomized response is right
    tail = float(binom.sf(correct - 1, guesses, q))
    if delta == 0 or correct == 0:
        return min(tail, 1.0)
    below = np.arange(1, correct + 1)
    # P[correct - i <= Binomial < correct] / i for every i: the price of delta
    windows = (binom.sf(correct - below - 1, guesses, q) - tail) / below
    return min(tail + 2 * coins * delta * float(np.max(windows)), 1.0)


def one_run_epsilon(*, coins: int, guesses: int, correct: int, delta: float,
                    alpha: float) -> float:  # fmt: skip
    """The largest epsilon whose (epsilon, delta)-DP :func:`one_run_p_value` rejects at level
    ``alpha``; 0 when even epsilon 0 is not rejected. Bisection keeps the low end rejected, so
    the answer errs low."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")

    def rejected(epsilon: float) -> bool:
        p_value = one_run_p_value(
            coins=coins, guesses=guesses, correct=correct, epsilon=epsilon, delta=delta
        )
        return p_value <= alpha

    if guesses == 0 or not rejected(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while rejected(high):
        low, high = high, 2 * high
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if rejected(middle) else (low, middle)
    return low


def confident_guesses(scores: ArrayLike, count: int) -> np.ndarray:
    """Guesses on the ``count`` scores farthest from 0: +1 (in) where the score is positive,
    -1 (out) where negative; 0 (abstain) elsewhere and on a score of exactly 0. Ties go by
    position, so the guesses are a function of the scores alone."""
    flat = np.asarray(scores, dtype=float).ravel()
    if not 0 <= count <= flat.size:
        raise ValueError(f"cannot make {count} guesses on {flat.size} scores")
    surest = np.argsort(-np.abs(flat), kind="stable")[:count]
    guess = np.zeros(flat.size, dtype=int)
    guess[surest] = np.sign(flat[surest]).astype(int)
    return guess


def one_run_audit(
    scores: ArrayLike, included: ArrayLike, *, delta: float, alpha: float = 0.05
) -> OneRunAudit:
    """The one-run lower bound on epsilon from an attack's ``scores`` on coins ``included``.

    Args:
        scores: the attack's score of each coin (higher: more likely in); they must have been
            computed without reading any of the coins.
        included: the coins, same shape: each an independent fair coin (in or out).
        delta: the delta of the DP claim under test.
        alpha: the bound holds with probability at least ``1 - alpha``.
    """
    flat = np.asarray(scores, dtype=float).ravel()
    coins = np.asarray(included, dtype=bool).ravel()
    if flat.shape != coins.shape or flat.size < 2:
        raise ValueError("need at least two scores, one per coin")
    if not np.all(np.isfinite(flat)):
        raise ValueError("attack scores must be finite")
    level = alpha / len(GUESS_FRACTIONS)
    truth = np.where(coins, 1, -1)
    best: OneRunAudit | None = None
    for fraction in GUESS_FRACTIONS:
        count = int(fraction * flat.size)
        if count == 0:
            continue
        guess = confident_guesses(flat, count)
        correct = int(np.sum(guess == truth))
        bound = one_run_epsilon(
            coins=flat.size, guesses=count, correct=correct, delta=delta, alpha=level
        )
        # on a tie (a bound of 0 throughout) the most guesses are reported
        if best is None or bound > best.epsilon_lower_bound:
            best = OneRunAudit(bound, flat.size, count, correct, guess)
    assert best is not None  # the first fraction guesses every coin
    return replace(best, guess=best.guess.reshape(np.shape(scores)))


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
