"""RMIA's pairwise likelihood ratios: hand-computed cases, and constructed models with and
without leakage."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.audit.leakage import attack_metrics
from securemed.audit.membership import balanced_masks, leave_one_out_rmia, split_by_membership
from securemed.audit.rmia import rmia_scores


def test_scores_are_the_share_of_the_population_an_example_s_ratio_beats() -> None:
    # Pr(x) = 0.25, 0.2, 0.4 over two identical references; LR = 2, 1, 1
    target = np.log([0.5, 0.2, 0.4])
    references = np.log([[0.25, 0.2, 0.4], [0.25, 0.2, 0.4]])
    assert np.allclose(rmia_scores(target, references), [1.0, 2 / 3, 2 / 3])
    # gamma 1.5: x0 needs LR(z) <= 4/3 (two of three), the others LR(z) <= 2/3 (none)
    assert np.allclose(rmia_scores(target, references, gamma=1.5), [2 / 3, 0.0, 0.0])


def test_pr_x_averages_likelihoods_of_the_references_used_only() -> None:
    target = np.log([0.4, 0.6])
    references = np.log([[0.2, 0.4], [0.6, 0.4]])
    # x1: LR 1.5. x0: with both references Pr = 0.4 (LR 1); with the first only 0.2 (LR 2)
    both = rmia_scores(target, references)
    first = rmia_scores(target, references, used=np.array([[True, True], [False, True]]))
    assert np.allclose(both, [0.5, 1.0])
    assert np.allclose(first, [1.0, 0.5])


def test_bad_shapes_no_reference_or_gamma_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        rmia_scores(np.zeros(3), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="at least one reference"):
        rmia_scores(np.zeros(2), np.zeros((2, 2)), used=np.array([[True, False], [True, False]]))
    with pytest.raises(ValueError, match="gamma"):
        rmia_scores(np.zeros(2), np.zeros((2, 2)), gamma=0.0)


def _models(leak: float, *, offsets: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihoods of 8 models on 1,500 examples: each example its own difficulty, each
    model its own overall confidence, training on an example adds ``leak``."""
    rng = np.random.default_rng(seed)
    masks = balanced_masks(8, 1500, seed=seed + 1)
    difficulty = rng.normal(-1.0, 0.8, 1500)
    confidence = rng.normal(0.0, offsets, (8, 1))
    statistic = difficulty + confidence + leak * masks + rng.normal(0, 0.3, masks.shape)
    return statistic, masks


def test_leave_one_out_rmia_finds_leakage_and_invents_none() -> None:
    statistic, masks = _models(0.5, offsets=1.0)
    found = attack_metrics(*split_by_membership(leave_one_out_rmia(statistic, masks), masks))
    # the models' own overall confidence (spread 1) hides the leak from a global threshold
    threshold = attack_metrics(*split_by_membership(statistic, masks))
    assert threshold.roc_auc < 0.7 < found.roc_auc
    # and no more than is there: without equal sides the target's own membership shrinks
    # its side of Pr(x) and inflates members' ratios (AUC 0.88 here instead of 0.82)
    assert found.roc_auc < 0.85
    clean, masks = _models(0.0, offsets=1.0)
    none = attack_metrics(*split_by_membership(leave_one_out_rmia(clean, masks), masks))
    assert 0.46 < none.roc_auc < 0.54
