"""What every membership study shares: how many copies, the DP audit's delta and confidence,
and the ways of training (variants) whose leakage it compares.

A study trains ``models`` copies per variant on balanced random halves of its population, with
its canaries drawn for the one-run audit (:func:`securemed.audit.membership.audit_masks`); each
copy is the attack's target in turn and the others its shadow models. The clinical-notes,
classifier and report studies all build on these.
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import Field, field_validator, model_validator

from securemed.config import StrictConfig

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class VariantSettings(StrictConfig):
    """One way of training; ``target_epsilon`` makes it DP-SGD (the unit is one example)."""

    name: str
    epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1, description="the expected Poisson batch under DP")
    weight_decay: float = Field(default=0.0, ge=0)
    patience: int | None = Field(default=None, ge=1, description="early stopping")
    target_epsilon: float | None = Field(default=None, gt=0)
    max_grad_norm: float = Field(default=1.0, gt=0)

    @field_validator("name")
    @classmethod
    def _file_safe(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("variant names are lowercase letters, digits, '-' and '_'")
        return name


class StudyConfig(StrictConfig):
    """The settings every study has; subclasses add the data, the model and ``variants``."""

    seed: int = 0
    models: int = Field(default=8, ge=6, description="per variant; each the target in turn")
    delta: float = Field(default=1e-5, gt=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=1, description="confidence of the epsilon bound")
    #: subclasses narrow the type and give the defaults
    variants: tuple[VariantSettings, ...] = ()

    @property
    def variant_names(self) -> list[str]:
        return [variant.name for variant in self.variants]

    @model_validator(mode="after")
    def _check_copies(self) -> StudyConfig:
        if self.models % 2:
            raise ValueError(
                f"models must be even (each population example in half of them), got {self.models}"
            )
        names = self.variant_names
        if not names or len(set(names)) != len(names):
            raise ValueError(f"variants need distinct names, got {names}")
        return self


def member_seed(config: StudyConfig, variant: str, index: int) -> int:
    """The seed of copy ``index`` of ``variant``: distinct per copy, the same on a rerun.

    Raises:
        ValueError: the study has no such variant, or no such copy.
    """
    names = config.variant_names
    if variant not in names:
        raise ValueError(f"unknown variant {variant!r}; the study has {sorted(names)}")
    if not 0 <= index < config.models:
        raise ValueError(f"model index must lie in [0, {config.models}), got {index}")
    position = list(names).index(variant)
    return int(np.random.SeedSequence([config.seed, position, index]).generate_state(1)[0])
