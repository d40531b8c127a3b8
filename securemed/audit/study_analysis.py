"""Every attack of a membership study, scored on the same target models, and the DP audit.

Given ``K`` models trained on balanced random halves of a set of examples
(:mod:`securemed.audit.membership`) and each model's confidence on every example:

- the **loss** attack and, with a reference model, the **NLL-gap** attack score each target
  model on its own; **LiRA** online and offline and **RMIA** score each target against the
  other ``K - 1``;
- all of them are pooled over the ``K`` targets and summarised by
  :func:`securemed.audit.leakage.attack_metrics` on the population's examples;
- the **canary audit** turns one attack's scores on the canaries into an empirical lower bound
  on epsilon. The attack is fixed in advance (:data:`AUDIT_ATTACK`): reporting the best of
  several bounds would be a multiple comparison that inflates the claim.

Observations pooled over ``K`` models are not independent draws (the same canary recurs in
every model), so the Clopper-Pearson interval is the usual approximation audits make; with a
correctly configured DP run the bound stays below the accountant's epsilon in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_curve

from securemed.audit.attacks import loss_threshold_scores, nll_gap_scores
from securemed.audit.leakage import AttackMetrics, attack_metrics, epsilon_lower_bound_from_scores
from securemed.audit.membership import (
    leave_one_out_lira,
    leave_one_out_rmia,
    split_by_membership,
)

#: every attack, in the order reports list them
ATTACKS = ("loss", "nll_gap", "lira_online", "lira_offline", "rmia")
#: the attack whose canary scores give the epsilon lower bound
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
    attack: str
    epsilon_lower_bound: float
    accountant_epsilon: float | None
    canaries: int
    #: (model, canary) pairs the bound is computed from (half of them choose the threshold)
    observations: int
    delta: float
    alpha: float


@dataclass(frozen=True)
class VariantAudit:
    """One fine-tuning variant's leakage: every attack's metrics and scores, and the audit."""

    name: str
    attacks: dict[str, AttackResult]
    #: ``(models, examples)`` scores of every attack, population then canaries
    scores: dict[str, np.ndarray]
    canary_audit: CanaryAudit | None


def attack_scores(
    statistic: np.ndarray,
    masks: np.ndarray,
    reference: np.ndarray | None,
    *,
    population: int | None = None,
) -> dict[str, np.ndarray]:
    """Every attack's ``(models, examples)`` scores from each model's confidence statistic
    (higher: more confident; for text the negated NLL) and the reference model's. RMIA
    compares each example with the first ``population`` examples (default: all)."""
    statistic = np.asarray(statistic, dtype=float)
    scores = {"loss": np.stack([loss_threshold_scores(-row) for row in statistic])}
    if reference is not None:
        scores["nll_gap"] = np.stack(
            [nll_gap_scores(-row, -np.asarray(reference)) for row in statistic]
        )
    scores["lira_online"] = leave_one_out_lira(statistic, masks, online=True)
    scores["lira_offline"] = leave_one_out_lira(statistic, masks, online=False)
    scores["rmia"] = leave_one_out_rmia(statistic, masks, population=slice(0, population))
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
    """Attack metrics on the first ``population`` examples; the canary audit on the rest."""
    masks = np.asarray(masks, dtype=bool)
    if not 0 < population <= masks.shape[1]:
        raise ValueError(f"population must lie in (0, {masks.shape[1]}], got {population}")
    scores = attack_scores(statistic, masks, reference, population=population)
    attacks = {}
    for attack, matrix in scores.items():
        members, others = split_by_membership(matrix[:, :population], masks[:, :population])
        labels = np.concatenate([np.ones(len(members)), np.zeros(len(others))])
        fpr, tpr, _ = roc_curve(labels, np.concatenate([members, others]))
        attacks[attack] = AttackResult(attack, attack_metrics(members, others), fpr, tpr)
    audit = None
    if population < masks.shape[1]:
        canaries = scores[AUDIT_ATTACK][:, population:]
        members, others = split_by_membership(canaries, masks[:, population:])
        audit = CanaryAudit(
            attack=AUDIT_ATTACK,
            epsilon_lower_bound=epsilon_lower_bound_from_scores(
                members, others, delta=delta, alpha=alpha, seed=seed
            ),
            accountant_epsilon=accountant_epsilon,
            canaries=masks.shape[1] - population,
            observations=canaries.size,
            delta=delta,
            alpha=alpha,
        )
    return VariantAudit(name, attacks, scores, audit)
