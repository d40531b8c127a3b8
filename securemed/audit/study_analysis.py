"""Every attack of a membership study, scored on the same target models, and the DP audit.

Given ``K`` models trained on the examples of :func:`securemed.audit.membership.audit_masks`
and each model's confidence on every example:

- the **loss** attack and, with a reference model, the **NLL-gap** attack score each target
  model on its own; **LiRA** online and offline and **RMIA** score each target against the
  other ``K - 1``, on the population (balanced random halves);
- all of them are pooled over the ``K`` targets and summarised by
  :func:`securemed.audit.leakage.attack_metrics` on the population's examples;
- the **canary audit** turns one attack's scores on the canaries into an empirical lower bound
  on epsilon by the one-run audit (:func:`securemed.audit.leakage.one_run_audit`). The attack
  is fixed in advance (:data:`AUDIT_ATTACK`: reporting the best of several bounds would be a
  multiple comparison that inflates the claim): LiRA online, each audited copy scored against
  the reference copies alone (:func:`canary_scores`), since the audit is void if a guess reads
  any audited copy's membership, and the leave-one-out shadows would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_curve

from securemed.audit.attacks import loss_threshold_scores, nll_gap_scores
from securemed.audit.leakage import AttackMetrics, attack_metrics, one_run_audit
from securemed.audit.lira import lira_scores
from securemed.audit.membership import (
    leave_one_out_lira,
    leave_one_out_rmia,
    reference_copies,
    split_by_membership,
)

#: every attack, in the order reports list them
ATTACKS = ("loss", "nll_gap", "lira_online", "lira_offline", "rmia")
#: the attack whose canary scores give the epsilon lower bound (against the reference copies)
AUDIT_ATTACK = "lira_online"


@dataclass(frozen=True)
class MemberOutcome:
    """What one trained copy gives the audit: its loss on every audited example, and utility.

    The loss is a negative log-likelihood (nats per token for text, the labels' binary
    cross-entropy for films), so every attack reads it the same way.
    """

    variant: str
    index: int
    #: the copy's loss on every audited example, population then canaries
    audit_nll: np.ndarray
    #: the study's utility measure on held-out data (test NLL for text, macro-AUROC for films)
    utility: float
    epsilon: float | None
    noise_multiplier: float | None
    epochs_run: int
    best_epoch: int
    seconds: float
    #: the process that trained it (a Ray worker's, when run as a task)
    pid: int


@dataclass(frozen=True)
class AttackResult:
    name: str
    metrics: AttackMetrics
    #: the ROC curve on the population: false and true positive rates
    fpr: np.ndarray
    tpr: np.ndarray


@dataclass(frozen=True)
class CanaryAudit:
    """The one-run audit of one variant's canaries."""

    attack: str
    epsilon_lower_bound: float
    accountant_epsilon: float | None
    canaries: int
    #: copies whose canary memberships were guessed (the rest were the attack's references)
    audited_copies: int
    #: audited (copy, canary) memberships, the guesses the bound came from, and how many right
    coins: int
    guesses: int
    correct: int
    #: ``(models, canaries)`` the attack's score of each audited membership (NaN: reference)
    scores: np.ndarray
    #: ``(models, canaries)`` +1 guessed in, -1 guessed out, 0 abstained or a reference copy
    guess: np.ndarray
    delta: float
    alpha: float


@dataclass(frozen=True)
class VariantAudit:
    """One fine-tuning variant's leakage: every attack's metrics and scores, and the audit."""

    name: str
    attacks: dict[str, AttackResult]
    #: ``(models, population)`` scores of every attack
    scores: dict[str, np.ndarray]
    canary_audit: CanaryAudit | None


def attack_scores(
    statistic: np.ndarray, masks: np.ndarray, reference: np.ndarray | None, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Every attack's ``(models, examples)`` scores from each model's confidence statistic
    (higher: more confident; for text the negated NLL) and the reference model's, on examples
    each in exactly half of the models. ``seed`` picks the model each example's larger side
    drops in the leave-one-out attacks."""
    statistic = np.asarray(statistic, dtype=float)
    scores = {"loss": np.stack([loss_threshold_scores(-row) for row in statistic])}
    if reference is not None:
        scores["nll_gap"] = np.stack(
            [nll_gap_scores(-row, -np.asarray(reference)) for row in statistic]
        )
    scores["lira_online"] = leave_one_out_lira(statistic, masks, online=True, seed=seed)
    scores["lira_offline"] = leave_one_out_lira(statistic, masks, online=False, seed=seed)
    scores["rmia"] = leave_one_out_rmia(statistic, masks, seed=seed)
    return scores


def canary_scores(statistic: np.ndarray, reference_in: np.ndarray) -> np.ndarray:
    """``(models, canaries)`` LiRA online scores of the audited copies (the rows after the
    first :func:`~securemed.audit.membership.reference_copies`) with the reference copies as
    shadows; NaN on the reference rows. Only the references' membership is an argument: the
    one-run audit holds only for scores that never read an audited one."""
    statistic = np.asarray(statistic, dtype=float)
    reference_in = np.asarray(reference_in, dtype=bool)
    references = reference_copies(len(statistic))
    if reference_in.shape != (references, statistic.shape[1]):
        raise ValueError(
            f"reference_in must be the first {references} copies' membership, "
            f"shape {(references, statistic.shape[1])}, got {reference_in.shape}"
        )
    scores = np.full(statistic.shape, np.nan)
    for copy in range(references, len(statistic)):
        scores[copy] = lira_scores(
            statistic[copy], statistic[:references], reference_in, online=True
        )
    return scores


def audit_variant(
    name: str,
    statistic: np.ndarray,
    masks: np.ndarray,
    *,
    population: int,
    reference: np.ndarray | None = None,
    accountant_epsilon: float | None = None,
    delta: float,
    alpha: float,
    seed: int = 0,
) -> VariantAudit:
    """Attack metrics on the first ``population`` examples; the canary audit on the rest.

    Args:
        statistic: ``(models, examples)`` each model's confidence on every example.
        masks: ``(models, examples)`` from :func:`securemed.audit.membership.audit_masks`.
        reference: the reference model's confidence on every example (None: no NLL gap).
        seed: picks the model each example's larger side drops in the leave-one-out attacks.
    """
    statistic = np.asarray(statistic, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    if not 0 < population <= masks.shape[1]:
        raise ValueError(f"population must lie in (0, {masks.shape[1]}], got {population}")
    scores = attack_scores(
        statistic[:, :population],
        masks[:, :population],
        None if reference is None else np.asarray(reference)[:population],
        seed=seed,
    )
    attacks = {}
    for attack, matrix in scores.items():
        members, others = split_by_membership(matrix, masks[:, :population])
        labels = np.concatenate([np.ones(len(members)), np.zeros(len(others))])
        fpr, tpr, _ = roc_curve(labels, np.concatenate([members, others]))
        attacks[attack] = AttackResult(attack, attack_metrics(members, others), fpr, tpr)
    audit = None
    if population < masks.shape[1]:
        audit = canary_audit(
            statistic[:, population:], masks[:, population:],
            accountant_epsilon=accountant_epsilon, delta=delta, alpha=alpha,
        )  # fmt: skip
    return VariantAudit(name, attacks, scores, audit)


def canary_audit(
    statistic: np.ndarray,
    masks: np.ndarray,
    *,
    accountant_epsilon: float | None,
    delta: float,
    alpha: float,
) -> CanaryAudit:
    """The one-run audit of :data:`AUDIT_ATTACK` on the canaries: ``(models, canaries)``
    confidences and memberships."""
    references = reference_copies(len(statistic))
    scores = canary_scores(statistic, masks[:references])
    result = one_run_audit(scores[references:], masks[references:], delta=delta, alpha=alpha)
    guess = np.zeros(scores.shape, dtype=int)
    guess[references:] = result.guess
    return CanaryAudit(
        attack=AUDIT_ATTACK,
        epsilon_lower_bound=result.epsilon_lower_bound,
        accountant_epsilon=accountant_epsilon,
        canaries=statistic.shape[1],
        audited_copies=len(statistic) - references,
        coins=result.coins,
        guesses=result.guesses,
        correct=result.correct,
        scores=scores,
        guess=guess,
        delta=delta,
        alpha=alpha,
    )
