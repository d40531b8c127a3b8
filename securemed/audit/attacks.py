"""Membership scores from a model's own losses: the attacks that need no shadow models.

- **Loss threshold** (Yeom et al. 2018): a model fits its training examples better than
  others, so a low loss says "member". The score is the negated loss.
- **NLL gap** (the reference-model attack on text; Carlini et al. 2021, Mireshghallah et al.
  2022): some notes are easy for any language model (short, templated), so a low NLL alone
  mostly finds easy notes. Subtracting the NLL a reference model that never saw the private
  data gives the same note calibrates each note's difficulty: the score is
  ``reference_nll - target_nll``, how much better the fine-tuned model knows this note than a
  model that cannot have memorised it.

Both return scores for :func:`securemed.audit.leakage.attack_metrics`; higher means more
likely a member. Pure arithmetic on losses computed elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from securemed.audit.leakage import AttackMetrics, attack_metrics


def loss_threshold_scores(losses: Sequence[float] | np.ndarray) -> np.ndarray:
    """The loss-threshold attack's scores: the negated per-example loss."""
    return -_finite(losses, "losses")


def nll_gap_scores(
    target_nll: Sequence[float] | np.ndarray, reference_nll: Sequence[float] | np.ndarray
) -> np.ndarray:
    """The NLL-gap attack's scores: the reference model's NLL minus the target model's."""
    target = _finite(target_nll, "target_nll")
    reference = _finite(reference_nll, "reference_nll")
    if target.shape != reference.shape:
        raise ValueError(
            f"target and reference NLLs must cover the same examples, got {target.shape} "
            f"and {reference.shape}"
        )
    return reference - target


def loss_attack(
    member_losses: Sequence[float] | np.ndarray, non_member_losses: Sequence[float] | np.ndarray
) -> AttackMetrics:
    """The loss-threshold attack's metrics, from members' and non-members' losses."""
    return attack_metrics(
        loss_threshold_scores(member_losses), loss_threshold_scores(non_member_losses)
    )


def _finite(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per example, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array
