"""RMIA (Zarifzadeh, Liu and Shokri, ICML 2024): membership by pairwise likelihood ratios.

LiRA asks how a model's confidence on ``x`` compares with shadow models' confidences on the same
``x``. RMIA also compares ``x`` with other examples ``z`` of the population: with
``Pr(x | theta)`` the target model's likelihood of ``x`` and ``Pr(x)`` its average over reference
models, the ratio ``LR(x) = Pr(x | theta) / Pr(x)`` says how much more likely the target makes
``x`` than models in general do, and

    score(x) = fraction of population examples z with LR(x) / LR(z) >= gamma

says how exceptional that is for this target. Normalising by the population makes scores
comparable across targets (some models are simply more confident on everything), which is why
RMIA stays strong with few reference models, the regime a laptop study is in.

Likelihoods come in as log-likelihoods (``-loss``: the negated NLL per token for text, the
labels' negated cross-entropy for films) and are combined in log space. Pure arithmetic; the
reference models are trained elsewhere (as Ray tasks).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def rmia_scores(
    target: np.ndarray,
    references: np.ndarray,
    *,
    used: np.ndarray | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA scores in [0, 1] (higher: more likely a member) for each example.

    Args:
        target: (n,) the target model's log-likelihood of each example.
        references: (models, n) each reference model's log-likelihood of each example.
        used: (models, n) which reference values enter ``Pr(x)`` (default: all).
        gamma: how much larger than ``LR(z)`` ``LR(x)`` must be to count (1 in the paper's
            main results).
    """
    target = np.asarray(target, dtype=float)
    references = np.asarray(references, dtype=float)
    used = np.ones(references.shape, bool) if used is None else np.asarray(used, dtype=bool)
    if references.shape != used.shape or references.shape[1:] != target.shape:
        raise ValueError("references and used must be (models, n) for a target of shape (n,)")
    if not np.all(used.any(axis=0)):
        raise ValueError("every example needs at least one reference model")
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    # log Pr(x): the log of the mean likelihood over the references used for x
    log_marginal = logsumexp(np.where(used, references, -np.inf), axis=0) - np.log(used.sum(axis=0))
    log_ratio = target - log_marginal
    others = np.sort(log_ratio)
    # LR(x) / LR(z) >= gamma  <=>  log LR(z) <= log LR(x) - log gamma
    return np.searchsorted(others, log_ratio - np.log(gamma), side="right") / len(others)
