"""Every attack on the same constructed models, and the canary audit's bound."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.audit.membership import balanced_masks, leave_one_out_rmia
from securemed.audit.study_analysis import ATTACKS, AUDIT_ATTACK, audit_variant


def _models(shift: float, *, models: int = 8, examples: int = 600, seed: int = 0):
    """Confidence = each example's difficulty + ``shift`` when trained on + noise; the
    reference model sees every example's difficulty without the shift."""
    rng = np.random.default_rng(seed)
    masks = balanced_masks(models, examples, seed=seed)
    difficulty = rng.normal(0, 2, examples)
    statistic = difficulty + shift * masks + rng.normal(0, 0.3, (models, examples))
    reference = difficulty + rng.normal(0, 0.3, examples)
    return statistic, masks, reference


def test_a_leaking_model_is_found_by_every_attack_and_the_audit_bounds_epsilon_above_zero() -> None:
    statistic, masks, reference = _models(2.0)
    audit = audit_variant(
        "leaky", statistic, masks, population=500, reference=reference, delta=1e-5, alpha=0.05
    )
    assert set(audit.attacks) == set(ATTACKS)
    for name in ("nll_gap", "lira_online", "lira_offline", "rmia"):
        assert audit.attacks[name].metrics.roc_auc > 0.95, name
    # the loss attack alone is confounded by the examples' difficulty
    assert audit.attacks["loss"].metrics.roc_auc < audit.attacks["nll_gap"].metrics.roc_auc
    assert audit.canary_audit is not None and audit.canary_audit.attack == AUDIT_ATTACK
    assert audit.canary_audit.canaries == 100 and audit.canary_audit.observations == 800
    assert audit.canary_audit.epsilon_lower_bound > 1.0
    assert audit.scores["lira_online"].shape == (8, 600)


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


def test_without_a_reference_model_there_is_no_nll_gap_and_without_canaries_no_audit() -> None:
    statistic, masks, _ = _models(1.0)
    audit = audit_variant("x", statistic, masks, population=600, delta=1e-5, alpha=0.05)
    assert "nll_gap" not in audit.attacks and audit.canary_audit is None


def test_a_population_outside_the_examples_is_refused() -> None:
    statistic, masks, _ = _models(1.0)
    with pytest.raises(ValueError, match="population"):
        audit_variant("x", statistic, masks, population=601, delta=1e-5, alpha=0.05)


def test_rmia_compares_examples_with_the_population_only_not_the_canaries() -> None:
    statistic, masks, _ = _models(1.0)
    # canaries far more confident than any note: as z they would push every score down
    statistic[:, 500:] += 10.0
    audit = audit_variant("x", statistic, masks, population=500, delta=1e-5, alpha=0.05)
    expected = leave_one_out_rmia(statistic, masks, population=slice(0, 500))
    assert np.array_equal(audit.scores["rmia"], expected)
    assert not np.array_equal(expected, leave_one_out_rmia(statistic, masks))
