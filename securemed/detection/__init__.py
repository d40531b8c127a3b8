"""Anomaly detection on what hospitals submit, starting with update norms."""

from securemed.detection.norms import (
    MIN_HOSPITALS,
    NormAnomalyReport,
    NormHistoryDetector,
    RoundNormStats,
    detect_norm_anomalies,
)

__all__ = [
    "MIN_HOSPITALS",
    "NormAnomalyReport",
    "NormHistoryDetector",
    "RoundNormStats",
    "detect_norm_anomalies",
]
