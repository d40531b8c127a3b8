"""Loss-threshold and NLL-gap scores on constructed losses."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.audit.attacks import loss_attack, loss_threshold_scores, nll_gap_scores


def test_lower_loss_scores_higher() -> None:
    assert list(loss_threshold_scores([0.1, 2.0, 1.0])) == [-0.1, -2.0, -1.0]


def test_loss_attack_separates_members_with_lower_loss() -> None:
    metrics = loss_attack([0.1, 0.2, 0.3], [1.0, 2.0, 3.0])
    assert metrics.roc_auc == 1.0 and metrics.tpr_at_fpr[0.01] == 1.0


def test_nll_gap_removes_per_note_difficulty_the_loss_attack_cannot() -> None:
    # every note has its own difficulty d; members are fitted 0.5 nats better than the
    # reference model knows them. The difficulty spread hides that from the loss attack.
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(1.0, 6.0, size=4000)
    member = rng.random(4000) < 0.5
    reference = difficulty + rng.normal(0, 0.05, 4000)
    target = difficulty - 0.5 * member + rng.normal(0, 0.05, 4000)
    gap = nll_gap_scores(target, reference)
    by_gap = loss_attack(-gap[member], -gap[~member])
    by_loss = loss_attack(target[member], target[~member])
    assert by_gap.roc_auc > 0.99
    assert by_loss.roc_auc < 0.65


def test_bad_inputs_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="same examples"):
        nll_gap_scores([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        loss_threshold_scores([1.0, float("nan")])
    with pytest.raises(ValueError, match="one value per example"):
        loss_threshold_scores(np.zeros((2, 2)))
