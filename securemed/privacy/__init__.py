"""Differential privacy: DP-SGD local training at record or patient level, and its accounting."""

from securemed.privacy.budget import (
    BudgetDecision,
    BudgetOrchestrator,
    PrivacyBudget,
    RoundPlan,
    project_epsilon,
)
from securemed.privacy.ledger import LedgerEntry, PrivacyLedger
from securemed.privacy.local_training import (
    LocalResult,
    LocalTrainer,
    train_central,
)
from securemed.privacy.patient_level import PatientIndex, PatientSampler, PrivacyUnit

__all__ = [
    "BudgetDecision",
    "BudgetOrchestrator",
    "LedgerEntry",
    "LocalResult",
    "LocalTrainer",
    "PatientIndex",
    "PatientSampler",
    "PrivacyBudget",
    "PrivacyLedger",
    "PrivacyUnit",
    "RoundPlan",
    "project_epsilon",
    "train_central",
]
