"""What a privacy-utility sweep searches, and what every one of its trials shares.

A sweep config is validated like every other SecureMed config (:mod:`securemed.config`): a
range upside down, a log scale that starts at zero, a sampling rate above one or a fractional
number of rounds fails at start-up with the field named, never half-way through a sweep.

Each searched parameter is a :class:`Dimension`: a range (``{low: 0.5, high: 3, log: true}``),
a list of values (``{values: [0, 1, 2]}``) or a single number (fixed). A noise multiplier of 0
trains without DP: its epsilon is infinite, which puts the non-private model on the plot as the
utility ceiling. The length of a trial (``rounds`` for the federated classifier, ``epochs``
for the report model) is searched too; every round or epoch is reported, so it is the longest a
trial may run, and ASHA may stop it sooner.

Ray-free on purpose: ``jobs/sweep.py`` turns each dimension into a Ray Tune distribution, and
this module only says what may be searched and checks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from securemed.config import ModelName, PartitionConfig, StrictConfig
from securemed.report_training.config import ReportDataConfig, ReportModelSettings


class Dimension(StrictConfig):
    """One searched parameter: a range ``[low, high]`` (log-uniform with ``log: true``, for
    parameters that matter by their order of magnitude) or a list of ``values`` to choose from.
    A bare number in YAML is read as a single fixed value."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[float, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _number_is_fixed(cls, raw: Any) -> Any:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return {"values": (raw,)}
        if isinstance(raw, list | tuple):
            return {"values": tuple(raw)}
        return raw

    @model_validator(mode="after")
    def _one_form(self) -> Dimension:
        if self.values is not None:
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("give either low/high (a range) or values (a list), not both")
            if not self.values:
                raise ValueError("values must name at least one value")
            bounds = self.values
        else:
            if self.low is None or self.high is None:
                raise ValueError("give both low and high (a range), or values (a list)")
            if self.low > self.high:
                raise ValueError(f"low ({self.low:g}) is above high ({self.high:g}); swap them")
            if self.log and self.low <= 0:
                raise ValueError(
                    f"a log scale needs low > 0, got {self.low:g}; use log: false or a positive low"
                )
            bounds = (self.low, self.high)
        if not all(math.isfinite(value) for value in bounds):
            raise ValueError("bounds and values must be finite numbers")
        return self

    @property
    def smallest(self) -> float:
        return min(self.values) if self.values is not None else float(self.low)  # type: ignore[arg-type]

    @property
    def largest(self) -> float:
        return max(self.values) if self.values is not None else float(self.high)  # type: ignore[arg-type]

    def describe(self) -> str:
        """A short human form for tables and progress lines."""
        if self.values is not None:
            return "{" + ", ".join(f"{v:g}" for v in self.values) + "}"
        scale = " (log)" if self.log else ""
        return f"[{self.low:g}, {self.high:g}]{scale}"


@dataclass(frozen=True)
class _Rule:
    """What a parameter can be: its bounds and whether it counts something."""

    minimum: float
    inclusive: bool
    maximum: float | None = None
    integer: bool = False
    why: str = ""


_RULES: dict[str, _Rule] = {
    "noise_multiplier": _Rule(0.0, True, why="0 trains without DP"),
    "max_grad_norm": _Rule(0.0, False),
    "learning_rate": _Rule(0.0, False),
    "sampling_rate": _Rule(0.0, False, 1.0, why="the chance each record is in a batch"),
    "rounds": _Rule(1, True, integer=True),
    "local_epochs": _Rule(1, True, integer=True),
    "epochs": _Rule(1, True, integer=True),
}


def _check_rule(name: str, dimension: Dimension) -> Dimension:
    rule = _RULES[name]
    shown = [dimension.smallest, dimension.largest]
    if dimension.values is not None:
        shown = list(dimension.values)
    for value in shown:
        if rule.integer and value != int(value):
            raise ValueError(f"{name} counts whole {name}, got {value:g}")
        low_ok = value >= rule.minimum if rule.inclusive else value > rule.minimum
        if not low_ok:
            relation = ">=" if rule.inclusive else ">"
            reason = f" ({rule.why})" if rule.why else ""
            raise ValueError(f"{name} must be {relation} {rule.minimum:g}{reason}, got {value:g}")
        if rule.maximum is not None and value > rule.maximum:
            reason = f" ({rule.why})" if rule.why else ""
            raise ValueError(f"{name} must be at most {rule.maximum:g}{reason}, got {value:g}")
    return dimension


class SearchSpace(StrictConfig):
    """The DP-SGD knobs every sweep searches; subclasses add the trial's length."""

    #: the searched parameter that sets a trial's length (what ASHA's rungs count)
    length: ClassVar[str]
    #: searched parameters whose values are whole numbers
    integers: ClassVar[frozenset[str]] = frozenset({"rounds", "local_epochs", "epochs"})

    noise_multiplier: Dimension = Dimension(low=0.5, high=3.0, log=True)
    max_grad_norm: Dimension = Dimension(low=0.3, high=3.0, log=True)
    learning_rate: Dimension = Dimension(low=0.002, high=0.03, log=True)
    sampling_rate: Dimension = Dimension(low=0.02, high=0.2, log=True)

    @field_validator("*", mode="after")
    @classmethod
    def _within_rules(cls, value: Dimension, info: ValidationInfo) -> Dimension:
        assert info.field_name is not None
        return _check_rule(info.field_name, value)

    def dimensions(self) -> dict[str, Dimension]:
        """Every searched parameter by name, in declaration order."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    @property
    def max_length(self) -> int:
        """The most rounds (or epochs) any trial can run: ASHA's ``max_t``."""
        return int(getattr(self, self.length).largest)


class ClassifierSpace(SearchSpace):
    """The federated classifier: DP-SGD knobs, the number of rounds and the local epochs."""

    length: ClassVar[str] = "rounds"

    rounds: Dimension = Dimension(low=2, high=8)
    local_epochs: Dimension = Dimension(values=(1,))


class ReportSpace(SearchSpace):
    """DP fine-tuning of the report model: DP-SGD knobs and the number of epochs."""

    length: ClassVar[str] = "epochs"

    learning_rate: Dimension = Dimension(low=0.0005, high=0.01, log=True)
    sampling_rate: Dimension = Dimension(low=0.03, high=0.25, log=True)
    epochs: Dimension = Dimension(low=1, high=3)


class AshaConfig(StrictConfig):
    """ASHA's early stopping: a trial below the top ``1 / reduction_factor`` of the trials seen
    at a rung (after ``grace_period``, then every ``reduction_factor`` times as many rounds or
    epochs) is stopped."""

    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=2.0, gt=1.0)


class ClassifierSettings(StrictConfig):
    """What every classifier trial shares: the data, the federation and the audit.

    Small on purpose (32 px films, a few thousand of them): a trial takes seconds to tens of
    seconds on one core, so a sweep of dozens of trials fits on a laptop. The audit's members
    are ``audit_samples`` training films drawn across all hospitals, its non-members as many
    test films (never trained on, same distribution).
    """

    image_size: int = Field(default=32, ge=32, le=512)
    difficulty: float = Field(default=0.3, ge=0.0, le=1.0)
    train_samples: int = Field(default=3000, ge=20)
    test_samples: int = Field(default=400, ge=10)
    audit_samples: int = Field(default=300, ge=10, description="members, and as many non-members")
    hospitals: int = Field(default=4, ge=1)
    partition: PartitionConfig = PartitionConfig(scheme="iid", min_samples=16)
    model: ModelName = "simple_cnn"
    optimizer: Literal["adam", "sgd"] = "adam"
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    accountant: Literal["rdp", "prv"] = "prv"
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _audit_fits(self) -> ClassifierSettings:
        if self.audit_samples > min(self.train_samples, self.test_samples):
            raise ValueError(
                f"audit_samples ({self.audit_samples}) needs as many training and test films; "
                f"there are {self.train_samples} and {self.test_samples}"
            )
        return self


class ReportSettings(StrictConfig):
    """What every report trial shares: the data, the model it starts from and the audit.

    Trials DP-fine-tune one starting model on the private split, as the ``dp`` variant of
    ``make train-report`` does: ``init_checkpoint`` (for example a trained
    ``runs/report-<time>/standard/model``), or, without one, a model pretrained once on the
    public split for ``pretrain_epochs`` before the trials start. Members of the audit are
    private films, non-members test films.
    """

    data: ReportDataConfig = ReportDataConfig(
        image_size=64, train_samples=3000, private_samples=512, test_samples=128
    )
    # the default sizes of `make train-report`, with a vocabulary fitted to the synthetic
    # reports (300 tokens); measured here, 3 epochs on 3,000 films (about 2 minutes on one
    # core) reach a clinical F1 of 0.42, from which DP fine-tuning has room to move either way
    model: ReportModelSettings = ReportModelSettings(vocab_size=300)
    init_checkpoint: Path | None = Field(
        default=None, description="a report checkpoint to fine-tune; default: pretrain one"
    )
    pretrain_epochs: int = Field(default=3, ge=0)
    pretrain_learning_rate: float = Field(default=0.002, gt=0.0)
    pretrain_batch_size: int = Field(default=32, ge=2)
    finding_weight: float = Field(default=1.0, ge=0.0)
    audit_samples: int = Field(default=128, ge=10, description="members, and as many non-members")
    eval_batch_size: int = Field(default=64, ge=1)
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    accountant: Literal["rdp", "prv"] = "prv"
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _audit_fits(self) -> ReportSettings:
        data = self.data
        if data.private_samples == 0:
            raise ValueError("data.private_samples must be above 0: the trials train on it")
        if self.audit_samples > min(data.private_samples, data.test_samples):
            raise ValueError(
                f"audit_samples ({self.audit_samples}) needs as many private and test films; "
                f"there are {data.private_samples} and {data.test_samples}"
            )
        return self


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


class _SweepConfig(StrictConfig):
    space: SearchSpace
    asha: AshaConfig = AshaConfig()

    #: what :meth:`smoke` changes: a few seconds a trial, the same code paths
    smoke_changes: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="after")
    def _grace_within_length(self) -> _SweepConfig:
        longest = self.space.max_length
        if self.asha.grace_period > longest:
            raise ValueError(
                f"asha.grace_period ({self.asha.grace_period}) is longer than the longest "
                f"trial ({self.space.length} up to {longest}): ASHA could never stop one"
            )
        return self

    def smoke(self) -> Any:
        """This config shrunk to seconds a trial (validated again, like any config)."""
        changes = {**self.smoke_changes, "asha": {"grace_period": 1}}
        return type(self).model_validate(_merged(self.model_dump(), changes))


class ClassifierSweepConfig(_SweepConfig):
    """``python jobs/sweep.py classifier --config FILE``: the space, the settings, ASHA."""

    smoke_changes: ClassVar[dict[str, Any]] = {
        "space": {"rounds": {"low": 1, "high": 3}, "local_epochs": {"values": (1,)}},
        "settings": {
            "train_samples": 240,
            "test_samples": 120,
            "audit_samples": 60,
            "hospitals": 2,
        },
    }

    space: ClassifierSpace = ClassifierSpace()
    settings: ClassifierSettings = ClassifierSettings()


class ReportSweepConfig(_SweepConfig):
    """``python jobs/sweep.py report --config FILE``: the space, the settings, ASHA."""

    smoke_changes: ClassVar[dict[str, Any]] = {
        "space": {"epochs": {"low": 1, "high": 2}},
        "settings": {
            "data": {
                "image_size": 32,
                "train_samples": 64,
                "private_samples": 64,
                "test_samples": 16,
            },
            "model": {
                "d_model": 32,
                "d_ff": 64,
                "encoder_layers": 1,
                "decoder_layers": 1,
                "heads": 2,
                "vision_width": 8,
                "max_report_tokens": 64,
            },
            "pretrain_epochs": 1,
            "audit_samples": 16,
        },
    }

    space: ReportSpace = ReportSpace()
    settings: ReportSettings = ReportSettings()
