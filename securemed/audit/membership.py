"""The shadow-model design of a membership-inference study, and its attacks pooled over models.

Following Carlini et al. (2022), ``K`` models are trained on random halves of one population:
each example is put in the training set of exactly half of the models (:func:`balanced_masks`),
so every example has as many "in" as "out" models. Each model is then the target in turn and
the other ``K - 1`` are its shadows (:func:`leave_one_out_lira`): ``K`` targets' worth of
member and non-member scores from ``K`` trainings instead of ``K + 1`` per target, which is
what makes low-FPR numbers measurable on a laptop.

Leaving the target out unbalances its shadows: when it trained on an example, only
``K/2 - 1`` of the others did and ``K/2`` did not, and the side fitted from fewer models has the
noisier mean, which pulls members' likelihood ratios down (with 8 models and no leakage at
all, the pooled AUC came out 0.476). So the larger side drops one model at random, chosen per
example, and both fits always see ``K/2 - 1`` models. Attacks that need no shadows (loss, NLL gap)
are scored on the same ``K`` targets, so every attack is compared on the same pairs.

Canaries are split differently (:func:`audit_masks`): the DP audit bounds epsilon from guesses
of memberships that must be independent fair coins the guesses never read, and a balanced
column is neither (given the other copies, a copy's membership is known). So the first half
of the copies are the canaries' references, balanced among themselves and known to the attack,
and in the other half each canary's membership is a coin of its own.

Pure arithmetic on per-model statistics computed elsewhere (by Ray tasks in ``jobs/audit.py``).
"""

from __future__ import annotations

import numpy as np

from securemed.audit.lira import lira_scores
from securemed.audit.rmia import rmia_scores


def balanced_masks(models: int, examples: int, *, seed: int) -> np.ndarray:
    """``(models, examples)`` membership: each column has exactly ``models / 2`` True values,
    which models they are drawn at random per example."""
    if models < 2 or models % 2:
        raise ValueError(f"the number of models must be even and at least 2, got {models}")
    if examples < 1:
        raise ValueError(f"need at least one example, got {examples}")
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((models, examples)), axis=0)
    return order < models // 2


def reference_copies(models: int) -> int:
    """How many copies are the canary audit's references: the first half (the rest are
    audited, see :func:`audit_masks`)."""
    return models // 2


def audit_masks(models: int, population: int, canaries: int, *, seed: int) -> np.ndarray:
    """``(models, population + canaries)``: which copy trains on which audited example.

    The population is split by :func:`balanced_masks`, as the leave-one-out attacks need.
    The canaries serve the one-run audit (:func:`securemed.audit.leakage.one_run_audit`),
    which bounds epsilon from guesses of coins the guesser never sees: in the first
    :func:`reference_copies` copies (LiRA's shadows for the canaries, their membership known
    to the attack) each canary is in as near half of them as their number allows; in every
    other copy each canary is in or out by its own fair coin, independent of every other
    coin, copy and example. Those coins are what the audit bounds.
    """
    if min(population, canaries) < 0:
        raise ValueError(f"need counts >= 0, got {population} and {canaries}")
    population_seed, reference_seed, coin_seed = np.random.SeedSequence(seed).spawn(3)
    split = balanced_masks(models, population, seed=int(population_seed.generate_state(1)[0]))
    references = reference_copies(models)
    rng = np.random.default_rng(reference_seed)
    # an odd number of references: the extra one goes in or out by a coin per canary
    sizes = references // 2 + (references % 2) * rng.integers(0, 2, canaries)
    rank = np.argsort(np.argsort(rng.random((references, canaries)), axis=0), axis=0)
    coins = np.random.default_rng(coin_seed).random((models - references, canaries)) < 0.5
    return np.concatenate([split, np.concatenate([rank < sizes, coins])], axis=1)


def leave_one_out_lira(
    statistic: np.ndarray,
    masks: np.ndarray,
    *,
    online: bool,
    global_variance: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """``(models, examples)`` LiRA scores: row ``k`` scores model ``k`` against the others.

    Args:
        statistic: ``(models, examples)`` each model's confidence on each example (for text
            the negated NLL, for a classifier :func:`securemed.audit.lira.confidence_logit`).
        masks: ``(models, examples)`` which model trained on which example, from
            :func:`balanced_masks`.
        seed: picks the model each example's larger side drops.
    """
    statistic, masks = _checked(statistic, masks)
    rng = np.random.default_rng(seed)
    rows = []
    for target in range(len(statistic)):
        shadows = np.arange(len(statistic)) != target
        shadow_in = masks[shadows]
        rows.append(
            lira_scores(
                statistic[target],
                statistic[shadows],
                shadow_in,
                online=online,
                global_variance=global_variance,
                shadow_used=_equal_sides(shadow_in, masks[target], rng),
            )
        )
    return np.stack(rows)


def leave_one_out_rmia(
    statistic: np.ndarray,
    masks: np.ndarray,
    *,
    seed: int = 0,
) -> np.ndarray:
    """``(models, examples)`` RMIA scores: row ``k`` scores model ``k`` with the others as its
    reference models (both sides, equalised per example as for LiRA) and every example as a
    ``z`` it compares each example with.

    Args:
        statistic: ``(models, examples)`` each model's log-likelihood of each example
            (``-loss``).
        masks: ``(models, examples)`` from :func:`balanced_masks`.
        seed: picks the model each example's larger side drops.
    """
    statistic, masks = _checked(statistic, masks)
    rng = np.random.default_rng(seed)
    rows = []
    for target in range(len(statistic)):
        others = np.arange(len(statistic)) != target
        used = _equal_sides(masks[others], masks[target], rng)
        rows.append(rmia_scores(statistic[target], statistic[others], used=used))
    return np.stack(rows)


def _checked(statistic: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    statistic = np.asarray(statistic, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    if statistic.shape != masks.shape or statistic.ndim != 2:
        raise ValueError("statistic and masks must both be (models, examples)")
    if len(statistic) < 6:
        # two models a side at least: one model gives a mean but no spread
        raise ValueError("leave-one-out attacks need at least six models")
    if np.any(masks.sum(axis=0) * 2 != len(masks)):
        raise ValueError("every example must be in exactly half of the models (balanced_masks)")
    return statistic, masks


def _equal_sides(
    shadow_in: np.ndarray, target_in: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Drop one random shadow per example from the side the target's own membership enlarged
    (the "out" side when the target trained on the example, else the "in" side)."""
    larger = np.where(target_in, ~shadow_in, shadow_in)
    rank = np.argsort(np.where(larger, rng.random(larger.shape), np.inf), axis=0)
    dropped = np.zeros_like(larger)
    dropped[rank[0], np.arange(larger.shape[1])] = True
    return ~dropped


def split_by_membership(scores: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members' and non-members' scores pooled over all target models."""
    scores = np.asarray(scores, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    if scores.shape != masks.shape:
        raise ValueError(f"scores {scores.shape} and masks {masks.shape} differ in shape")
    return scores[masks], scores[~masks]
