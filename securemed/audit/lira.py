"""LiRA (Carlini et al. 2022): membership scores from Gaussian fits to shadow models' confidences.

For each target example, shadow models trained with it ("in") and without it ("out") give the
distribution of the model's confidence on it, as a logit ``log(p / (1 - p))`` of the probability
of the true label (or ``-loss`` for text), which is close to Gaussian. The target model's
confidence is then scored:

- **online**: the log likelihood ratio ``log N(c; mu_in, s_in) - log N(c; mu_out, s_out)``;
- **offline** (no "in" shadows, so shadows can be trained once, before the targets are known):
  how far ``c`` lies above the "out" distribution, ``-log P(Z > c)`` under ``N(mu_out, s_out)``.

With few shadows per example the per-example variances are noisy; ``global_variance`` uses one
variance per side pooled over all examples, as the paper recommends below ~64 shadows.
Pure arithmetic: the shadow models themselves are trained elsewhere (as Ray tasks).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

_MIN_STD = 1e-6


def confidence_logit(probability: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` of the true label's probability, kept finite at 0 and 1."""
    p = np.clip(np.asarray(probability, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def lira_scores(
    target: np.ndarray,
    shadow: np.ndarray,
    shadow_in: np.ndarray,
    *,
    online: bool,
    global_variance: bool = True,
    shadow_used: np.ndarray | None = None,
) -> np.ndarray:
    """Membership scores (higher: more likely a member) for each target example.

    Args:
        target: (n,) the target model's confidence on each example.
        shadow: (shadows, n) each shadow model's confidence on each example.
        shadow_in: (shadows, n) whether that shadow trained on that example.
        online: use the "in" fits too (likelihood ratio); else the offline one-sided test.
        global_variance: one pooled variance per side instead of one per example.
        shadow_used: (shadows, n) which shadow confidences enter the fits (default: all).
    """
    target = np.asarray(target, dtype=float)
    shadow = np.asarray(shadow, dtype=float)
    shadow_in = np.asarray(shadow_in, dtype=bool)
    used = np.ones_like(shadow_in) if shadow_used is None else np.asarray(shadow_used, dtype=bool)
    if not shadow.shape == shadow_in.shape == used.shape or shadow.shape[1:] != target.shape:
        raise ValueError(
            "shadow, shadow_in and shadow_used must be (shadows, n) for a target of shape (n,)"
        )
    mu_out, std_out = _fit(shadow, ~shadow_in & used, global_variance)
    if not online:
        return -norm.logsf(target, loc=mu_out, scale=std_out)
    mu_in, std_in = _fit(shadow, shadow_in & used, global_variance)
    return norm.logpdf(target, mu_in, std_in) - norm.logpdf(target, mu_out, std_out)


def _fit(
    shadow: np.ndarray, mask: np.ndarray, global_variance: bool
) -> tuple[np.ndarray, np.ndarray]:
    counts = mask.sum(axis=0)
    if np.any(counts == 0):
        raise ValueError(
            "every example needs at least one shadow on this side: train more shadow models"
        )
    mean = np.where(mask, shadow, 0.0).sum(axis=0) / counts
    squared = np.where(mask, (shadow - mean) ** 2, 0.0)
    if global_variance:
        std = np.full_like(mean, np.sqrt(squared.sum() / max(int(counts.sum()) - 1, 1)))
    else:
        std = np.sqrt(squared.sum(axis=0) / np.maximum(counts - 1, 1))
    return mean, np.maximum(std, _MIN_STD)
