"""Differential privacy: DP-SGD local training at record or patient level, and its accounting."""

from securemed.privacy.local_training import (
    LocalResult,
    LocalTrainer,
    train_central,
)
from securemed.privacy.patient_level import PatientIndex, PatientSampler, PrivacyUnit

__all__ = [
    "LocalResult",
    "LocalTrainer",
    "PatientIndex",
    "PatientSampler",
    "PrivacyUnit",
    "train_central",
]
