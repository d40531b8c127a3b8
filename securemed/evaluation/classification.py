"""Multi-label classification metrics for the chest X-ray models.

Scoring (``predict_scores``) and measuring (``classification_metrics``) are separate so a
metric can be checked on known label/score pairs without a model, and a model's scores can
be reused for other analyses (calibration, fairness slices). It does not pick thresholds per
class or compute confidence intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from securemed.errors import DataError


@dataclass(frozen=True)
class ClassificationMetrics:
    """How well scores rank and threshold multi-hot labels.

    Attributes:
        macro_auroc: mean AUROC over the classes where it is defined; ``None`` when no class
            has both positive and negative test labels.
        per_class_auroc: AUROC of each class; ``None`` for a class whose test labels are all
            one value (AUROC is undefined there, and counting it as 0.5 would hide that).
        accuracy: mean per-label accuracy: the fraction of all (image, class) decisions
            that are right at ``threshold``. Dominated by the negatives when findings are
            rare, hence reported next to AUROC, not instead of it.
        exact_match: fraction of images whose every label is right at ``threshold``.
        threshold: a score at or above it counts as a positive prediction.
        num_samples: number of images scored.
    """

    macro_auroc: float | None
    per_class_auroc: dict[str, float | None]
    accuracy: float
    exact_match: float
    threshold: float
    num_samples: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (``None`` for undefined AUROC), ready for ``json.dump``."""
        return asdict(self)


def predict_scores(model: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Sigmoid probabilities of every class for every image, shape ``(N, num_classes)``.

    The model runs in eval mode without gradients, in batches to bound memory; its previous
    train/eval mode is restored afterwards.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    if len(images) == 0:
        raise DataError("no images to score")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            chunks = [
                torch.sigmoid(model(images[start : start + batch_size])).float().cpu()
                for start in range(0, len(images), batch_size)
            ]
    finally:
        model.train(was_training)
    return torch.cat(chunks).numpy()


def classification_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    class_names: Sequence[str],
    threshold: float = 0.5,
) -> ClassificationMetrics:
    """Compare multi-hot ``labels`` with ``scores``, both ``(N, num_classes)``.

    Raises:
        DataError: shapes disagree with each other or with ``class_names``, or labels are
            not 0/1.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != scores.shape:
        raise DataError(
            f"labels {labels.shape} and scores {scores.shape} must both be (N, num_classes)"
        )
    if len(labels) == 0:
        raise DataError("no labels to evaluate against")
    if labels.shape[1] != len(class_names):
        raise DataError(f"{len(class_names)} class names for {labels.shape[1]} label columns")
    if not np.isin(labels, (0, 1)).all():
        raise DataError("labels must be multi-hot: every value 0 or 1")
    if not np.isfinite(scores).all():
        raise DataError("scores contain NaN or infinity; the model has diverged")
    labels = labels.astype(bool)

    per_class: dict[str, float | None] = {}
    for column, name in enumerate(class_names):
        truth = labels[:, column]
        if truth.all() or not truth.any():
            per_class[name] = None
        else:
            per_class[name] = float(roc_auc_score(truth, scores[:, column]))
    defined = [value for value in per_class.values() if value is not None]

    correct = (scores >= threshold) == labels
    return ClassificationMetrics(
        macro_auroc=float(np.mean(defined)) if defined else None,
        per_class_auroc=per_class,
        accuracy=float(correct.mean()),
        exact_match=float(correct.all(axis=1).mean()),
        threshold=float(threshold),
        num_samples=len(labels),
    )


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    class_names: Sequence[str],
    threshold: float = 0.5,
    batch_size: int = 256,
) -> ClassificationMetrics:
    """Score ``images`` with ``model`` and measure the scores against ``labels``."""
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    if len(images) != len(labels):
        raise DataError(
            f"images and labels differ in length ({len(images)} images, {len(labels)} labels)"
        )
    scores = predict_scores(model, images, batch_size=batch_size)
    return classification_metrics(labels, scores, class_names=class_names, threshold=threshold)
