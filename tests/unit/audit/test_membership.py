"""The balanced shadow design and leave-one-out LiRA on constructed model statistics."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.audit.leakage import attack_metrics
from securemed.audit.membership import (
    audit_masks,
    balanced_masks,
    leave_one_out_lira,
    reference_copies,
    split_by_membership,
)


def test_every_example_is_in_exactly_half_of_the_models() -> None:
    masks = balanced_masks(8, 500, seed=0)
    assert masks.shape == (8, 500)
    assert np.all(masks.sum(axis=0) == 4)
    # the halves differ between examples (not the same four models every time)
    assert len({tuple(column) for column in masks.T}) > 50
    assert np.array_equal(masks, balanced_masks(8, 500, seed=0))
    assert not np.array_equal(masks, balanced_masks(8, 500, seed=1))


def test_the_population_is_split_in_halves_and_the_references_hold_half_of_each_canary() -> None:
    masks = audit_masks(8, 300, 50, seed=0)
    assert masks.shape == (8, 350) and reference_copies(8) == 4
    assert np.all(masks[:, :300].sum(axis=0) == 4)
    assert np.all(masks[:4, 300:].sum(axis=0) == 2)
    # three references: one or two of them hold each canary, never none or all
    odd = audit_masks(6, 300, 400, seed=0)[:3, 300:].sum(axis=0)
    assert set(odd.tolist()) == {1, 2}
    assert np.array_equal(masks, audit_masks(8, 300, 50, seed=0))
    assert not np.array_equal(masks, audit_masks(8, 300, 50, seed=1))


def test_audited_canaries_are_independent_fair_coins() -> None:
    """The one-run audit's premise. 4 x 20,000 coins: a fair coin's mean has spread 0.0018,
    a correlation between independent rows 0.007; the margins are over four times that."""
    masks = audit_masks(8, 10, 20_000, seed=4)[:, 10:]
    audited = masks[4:]
    assert abs(audited.mean() - 0.5) < 0.01
    correlation = np.corrcoef(masks.astype(float))
    # each audited copy against every other copy, reference or audited
    pairs = [(row, other) for row in range(4, 8) for other in range(8) if other != row]
    assert all(abs(correlation[row, other]) < 0.03 for row, other in pairs)
    # nothing ties the audited copies to each other: every count from none to all occurs
    assert set(audited.sum(axis=0).tolist()) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("models", [0, 1, 3])
def test_an_odd_or_tiny_number_of_models_is_refused(models: int) -> None:
    with pytest.raises(ValueError, match="even"):
        balanced_masks(models, 10, seed=0)


def test_leave_one_out_lira_finds_a_per_example_shift_the_global_threshold_misses() -> None:
    # each example has its own typical confidence (spread 3), and training on it adds 1:
    # a single threshold over all examples barely sees that, LiRA's per-example fits do.
    rng = np.random.default_rng(0)
    models, examples = 16, 2000
    masks = balanced_masks(models, examples, seed=1)
    typical = rng.normal(0, 3, examples)
    statistic = typical + 1.0 * masks + rng.normal(0, 0.5, (models, examples))
    online = leave_one_out_lira(statistic, masks, online=True)
    offline = leave_one_out_lira(statistic, masks, online=False)
    by_lira = attack_metrics(*split_by_membership(online, masks))
    by_offline = attack_metrics(*split_by_membership(offline, masks))
    by_threshold = attack_metrics(*split_by_membership(statistic, masks))
    # the optimal test's AUC here is Phi(1 / (0.5 sqrt 2)) = 0.921
    assert by_lira.roc_auc > 0.88
    assert by_offline.roc_auc > 0.85
    assert by_threshold.roc_auc < 0.65
    assert by_lira.tpr_at_fpr[0.01] > 5 * by_threshold.tpr_at_fpr[0.01]


def test_no_membership_signal_gives_chance() -> None:
    rng = np.random.default_rng(2)
    masks = balanced_masks(8, 3000, seed=3)
    statistic = rng.normal(0, 1, 3000) + rng.normal(0, 0.5, (8, 3000))
    metrics = attack_metrics(
        *split_by_membership(leave_one_out_lira(statistic, masks, online=True), masks)
    )
    assert abs(metrics.roc_auc - 0.5) < 0.02


def test_shapes_are_checked() -> None:
    masks = balanced_masks(6, 10, seed=0)
    with pytest.raises(ValueError, match="models, examples"):
        leave_one_out_lira(np.zeros((6, 9)), masks, online=True)
    with pytest.raises(ValueError, match="six models"):
        leave_one_out_lira(np.zeros((4, 10)), balanced_masks(4, 10, seed=0), online=True)
    with pytest.raises(ValueError, match="exactly half"):
        leave_one_out_lira(np.zeros((6, 10)), np.ones((6, 10), dtype=bool), online=True)
    with pytest.raises(ValueError, match="differ in shape"):
        split_by_membership(np.zeros((4, 9)), masks)
