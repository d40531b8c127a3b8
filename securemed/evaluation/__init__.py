"""Model evaluation: multi-label classification metrics on held-out images."""

from securemed.evaluation.classification import (
    ClassificationMetrics,
    classification_metrics,
    evaluate,
    predict_scores,
)

__all__ = ["ClassificationMetrics", "classification_metrics", "evaluate", "predict_scores"]
