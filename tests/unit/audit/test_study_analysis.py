"""Every attack on the same constructed models, and the canary audit's bound."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.audit.membership import audit_masks, leave_one_out_rmia
from securemed.audit.study_analysis import ATTACKS, AUDIT_ATTACK, audit_variant, canary_scores


def _models(shift: float, *, models: int = 8, canaries: int = 100, seed: int = 0):
    """500 population examples then ``canaries``. Confidence = each example's difficulty +
    ``shift`` when trained on + noise; the reference model sees the difficulty alone."""
    rng = np.random.default_rng(seed)
    masks = audit_masks(models, 500, canaries, seed=seed)
    examples = masks.shape[1]
    difficulty = rng.normal(0, 2, examples)
    statistic = difficulty + shift * masks + rng.normal(0, 0.3, (models, examples))
    reference = difficulty + rng.normal(0, 0.3, examples)
    return statistic, masks, reference


def test_a_leaking_model_is_found_by_every_attack_and_the_audit_bounds_epsilon_above_one() -> None:
    statistic, masks, reference = _models(2.0)
    audit = audit_variant(
        "leaky", statistic, masks, population=500, reference=reference, delta=1e-5, alpha=0.05
    )
    assert set(audit.attacks) == set(ATTACKS)
    for name in ("nll_gap", "lira_online", "lira_offline", "rmia"):
        assert audit.attacks[name].metrics.roc_auc > 0.95, name
    # the loss attack alone is confounded by the examples' difficulty
    assert audit.attacks["loss"].metrics.roc_auc < audit.attacks["nll_gap"].metrics.roc_auc
    assert audit.scores["lira_online"].shape == (8, 500)
    canary = audit.canary_audit
    assert canary is not None and canary.attack == AUDIT_ATTACK and canary.canaries == 100
    # four reference copies, four audited: 400 coins, every one guessed right
    assert canary.audited_copies == 4 and canary.coins == canary.guesses == canary.correct == 400
    assert canary.epsilon_lower_bound > 1.0
    assert np.all(np.isnan(canary.scores[:4])) and np.all(canary.guess[:4] == 0)


def test_a_model_that_ignores_its_training_set_leaks_nothing_measurable() -> None:
    statistic, masks, reference = _models(0.0, seed=1)
    audit = audit_variant(
        "private", statistic, masks, population=500, reference=reference,
        accountant_epsilon=1.0, delta=1e-5, alpha=0.05,
    )  # fmt: skip
    for name, result in audit.attacks.items():
        assert abs(result.metrics.roc_auc - 0.5) < 0.05, name
    assert audit.canary_audit is not None
    assert audit.canary_audit.epsilon_lower_bound <= audit.canary_audit.accountant_epsilon


def test_the_canary_guesses_never_read_an_audited_copy_s_membership() -> None:
    statistic, masks, _ = _models(2.0)
    flipped = masks.copy()
    flipped[4:, 500:] = ~flipped[4:, 500:]
    first, other = (
        audit_variant("x", statistic, m, population=500, delta=1e-5, alpha=0.05).canary_audit
        for m in (masks, flipped)
    )
    assert first is not None and other is not None
    # the same scores and guesses; only whether the guesses were right differs
    assert np.array_equal(first.scores, other.scores, equal_nan=True)
    assert np.array_equal(first.guess, other.guess)
    assert first.correct == 400 and other.correct == 0
    # the scores take the references' membership and nothing else
    with pytest.raises(ValueError, match="first 4 copies"):
        canary_scores(statistic[:, 500:], masks[:, 500:])


def test_a_gaussian_mechanism_on_every_canary_is_never_overclaimed() -> None:
    """Every (copy, canary) statistic is N(mu * member, 1), independently: each copy is the
    Gaussian mechanism, (4.38, 1e-5)-DP per canary at mu = 1 (analytic Gaussian), so the
    study-level audit, with LiRA fitted on only four references, must stay below it."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        masks = audit_masks(8, 20, 1000, seed=seed)
        statistic = 1.0 * masks + rng.normal(0, 1, masks.shape)
        audit = audit_variant("dp", statistic, masks, population=20, delta=1e-5, alpha=0.05)
        assert audit.canary_audit is not None
        assert 0.5 < audit.canary_audit.epsilon_lower_bound < 4.38


def test_without_a_reference_model_there_is_no_nll_gap_and_without_canaries_no_audit() -> None:
    statistic, masks, _ = _models(1.0, canaries=0)
    audit = audit_variant("x", statistic, masks, population=500, delta=1e-5, alpha=0.05)
    assert "nll_gap" not in audit.attacks and audit.canary_audit is None


def test_a_population_outside_the_examples_is_refused() -> None:
    statistic, masks, _ = _models(1.0)
    with pytest.raises(ValueError, match="population"):
        audit_variant("x", statistic, masks, population=601, delta=1e-5, alpha=0.05)


def test_the_canaries_do_not_move_the_population_s_attacks() -> None:
    statistic, masks, _ = _models(1.0)
    expected = leave_one_out_rmia(statistic[:, :500], masks[:, :500])
    # canaries far more confident than any example: as RMIA's z they would move every score
    statistic[:, 500:] += 10.0
    audit = audit_variant("x", statistic, masks, population=500, delta=1e-5, alpha=0.05)
    assert np.array_equal(audit.scores["rmia"], expected)
