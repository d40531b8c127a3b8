"""A study's TensorBoard scalars: means and metrics only, under stable tags."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.audit.membership import audit_masks
from securemed.audit.study_analysis import MemberOutcome, audit_variant
from securemed.audit.study_report import VariantRecord, copy_scalars, variant_scalars


def _outcome(index: int, losses: np.ndarray) -> MemberOutcome:
    return MemberOutcome(
        variant="dp", index=index, audit_nll=losses, utility=0.7, epsilon=1.0,
        noise_multiplier=1.1, epochs_run=3, best_epoch=3, seconds=2.0, pid=1,
    )  # fmt: skip


def test_a_copy_logs_its_mean_loss_on_its_members_and_on_the_rest() -> None:
    members = np.array([True, False, True, False])
    scalars = copy_scalars(_outcome(0, np.array([1.0, 5.0, 3.0, 7.0])), members)
    assert scalars["audit/copy_train_loss"] == 2.0
    assert scalars["audit/copy_heldout_loss"] == 6.0
    assert scalars["audit/copy_utility"] == 0.7 and scalars["audit/copy_epsilon"] == 1.0


def test_a_variant_logs_every_attack_and_the_canary_bound() -> None:
    rng = np.random.default_rng(0)
    masks = audit_masks(6, 40, 8, seed=0)
    statistic = rng.normal(0, 1, masks.shape) + masks
    audit = audit_variant(
        "dp", statistic, masks, population=40, reference=None, accountant_epsilon=1.0,
        delta=1e-5, alpha=0.05,
    )  # fmt: skip
    outcomes = [_outcome(i, -row) for i, row in enumerate(statistic)]
    scalars = variant_scalars(VariantRecord(audit, outcomes))
    assert scalars["audit/utility"] == pytest.approx(0.7)
    assert scalars["audit/accountant_epsilon"] == 1.0
    assert audit.canary_audit is not None
    assert scalars["audit/canary_epsilon_lower_bound"] == audit.canary_audit.epsilon_lower_bound
    for attack in audit.attacks:
        for metric in ("roc_auc", "attack_success", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"):
            assert 0.0 <= scalars[f"audit/{attack}/{metric}"] <= 1.0, (attack, metric)
