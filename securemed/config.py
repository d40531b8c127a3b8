"""Validated configuration for every SecureMed job.

Configs are YAML files checked by the pydantic models below, so a typo or an impossible value
fails at start-up with a message naming the field, never half-way through a federated run.
Unknown keys are refused for the same reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from securemed.errors import ConfigError

ModelName = Literal["simple_cnn", "resnet18", "densenet121"]


class StrictConfig(BaseModel):
    """Unknown keys refused, values frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=StrictConfig)


class DataConfig(StrictConfig):
    """Where the images come from: generated chest X-rays or a MedMNIST-layout `.npz` file."""

    source: Literal["synthetic", "medmnist"] = "synthetic"
    path: Path | None = Field(default=None, description="MedMNIST .npz file (source=medmnist)")
    image_size: Literal[64, 128, 224] = 64
    difficulty: float = Field(default=0.5, ge=0.0, le=1.0)
    # DP-SGD's utility grows with the records each hospital holds: 30,000 films (about 7,500
    # a hospital) let epsilon 8 reach 0.91 macro-AUROC in 5 rounds; 20,000 stopped near 0.80.
    train_samples: int = Field(default=30_000, ge=10)
    test_samples: int = Field(default=2000, ge=10)
    seed: int = 0

    @model_validator(mode="after")
    def _path_matches_source(self) -> DataConfig:
        if self.source == "medmnist" and self.path is None:
            raise ValueError("data.path is required when data.source is 'medmnist'")
        if self.source == "synthetic" and self.path is not None:
            raise ValueError("data.path is only used with data.source 'medmnist'")
        return self


class PartitionConfig(StrictConfig):
    """How the training set is split across hospitals."""

    scheme: Literal["iid", "dirichlet", "quantity"] = "dirichlet"
    alpha: float = Field(default=0.5, gt=0.0, description="Dirichlet concentration (label skew)")
    beta: float = Field(default=1.0, gt=0.0, description="Dirichlet concentration of sizes")
    min_samples: int = Field(default=64, ge=1, description="smallest partition allowed")


class TrainingConfig(StrictConfig):
    """Local optimisation at each hospital (and for the central baseline)."""

    model: ModelName = "simple_cnn"
    optimizer: Literal["adam", "sgd"] = Field(
        default="adam",
        description="Adam converges in the few local steps a DP round allows; SGD for studies",
    )
    batch_size: int = Field(default=64, ge=1, description="expected batch size (Poisson)")
    learning_rate: float = Field(default=0.005, gt=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="SGD only")
    weight_decay: float = Field(default=0.0, ge=0.0, description="L2 penalty on the weights")
    local_epochs: int = Field(default=2, ge=1)


class DPSGDConfig(StrictConfig):
    """DP-SGD with Opacus: one noise source (a target epsilon or a fixed noise multiplier),
    the clipping norm and the accountant. Shared by federated and report training."""

    enabled: bool = True
    target_epsilon: float | None = Field(default=8.0, gt=0.0)
    noise_multiplier: float | None = Field(default=None, gt=0.0)
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    max_grad_norm: float = Field(default=1.0, gt=0.0)
    accountant: Literal["rdp", "prv"] = "prv"

    @model_validator(mode="after")
    def _one_noise_source(self) -> DPSGDConfig:
        if self.enabled and (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError(
                "set exactly one of privacy.target_epsilon and privacy.noise_multiplier "
                "(use `target_epsilon: null` to give a noise multiplier)"
            )
        return self


class PrivacyConfig(DPSGDConfig):
    """DP-SGD for federated training; `enabled: false` trains without privacy (baselines).

    ``unit: patient`` samples and clips by patient, so epsilon protects a patient with all of
    their studies; ``record`` protects one image. The ledger enforces ``budget_epsilon``
    (default: the target) across rounds, crashes and resumes.
    """

    unit: Literal["record", "patient"] = "patient"
    budget_epsilon: float | None = Field(
        default=None, gt=0.0, description="per-hospital budget; default: target_epsilon"
    )
    on_budget_exhausted: Literal["exclude", "raise_noise"] = Field(
        default="exclude",
        description="a hospital that would overspend sits the round out, or trains with more "
        "noise (the smallest multiplier that fits the budget)",
    )
    dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the ledger key of the hospital's data: every run on it spends one lifetime "
        "budget; default: the data file's SHA-256, or one run only for generated data",
    )
    state_dir: Path = Field(
        default=Path("var/privacy"),
        description="where a hospital keeps its privacy ledger for real data (outside runs/, "
        "on the hospital's own machine)",
    )
    public_dataset_size: bool = Field(
        default=True,
        description="the hospital's record count is public, as DP-SGD accounting assumes: it is "
        "sent for FedAvg weighting. false: neither the count nor the epsilon (a function of "
        "it through the sampling rate) leaves, and hospitals are weighted equally",
    )
    insecure_reproducible_seed: int | None = Field(
        default=None,
        ge=0,
        description="experiments and tests only: DP noise and sampling follow from this seed, "
        "so anyone holding the config can regenerate them and the epsilon is no guarantee "
        "(results say so). null (the default): fresh OS randomness every step",
    )

    @property
    def budget(self) -> float | None:
        """The epsilon no hospital may exceed (None without DP, or with a fixed noise
        multiplier and no ``budget_epsilon``: the ledger then records spend but caps nothing)."""
        if not self.enabled:
            return None
        return self.budget_epsilon if self.budget_epsilon is not None else self.target_epsilon


class SecureAggregationConfig(StrictConfig):
    """Bonawitz et al. secure aggregation over the SecAgg+ graph; see securemed.secagg."""

    enabled: bool = True
    neighbours: int | None = Field(default=None, ge=1, description="k; default about 3 log2 n")
    threshold: int | None = Field(default=None, ge=1, description="t > k/2; default k/2 + 1")
    min_survivors: int | None = Field(default=None, ge=2, description="fewer: round aborted")
    clip: float = Field(default=1.0, gt=0.0, description="coordinate range before quantizing")
    bits: int = Field(default=16, ge=1, le=31)
    norm_bound: float | None = Field(
        default=None, gt=0.0, description="L2 bound each hospital enforces before masking"
    )
    client_dp_noise_multiplier: float | None = Field(
        default=None,
        gt=0.0,
        description="client-level DP: the released sum carries integer Skellam noise of "
        "standard deviation z times one hospital's integer sensitivity",
    )
    client_dp_budget_epsilon: float | None = Field(
        default=None,
        gt=0.0,
        description="client-level DP: each hospital's lifetime budget for it; null records "
        "the spend without a cap",
    )
    bucket_size: int | None = Field(
        default=None, ge=2, description="secure bucketing: robust rules compare bucket means"
    )
    phase_timeout_s: float = Field(default=60.0, gt=0.0)
    min_participants: int = Field(
        default=3,
        ge=2,
        description="a hospital refuses a secure sum over fewer hospitals (its own floor; with "
        "two, each learns the other's update from the sum)",
    )

    @model_validator(mode="after")
    def _buckets_hold_enough(self) -> SecureAggregationConfig:
        if self.bucket_size is not None and self.bucket_size < self.min_participants:
            raise ValueError(
                f"bucket_size {self.bucket_size} is below min_participants "
                f"{self.min_participants}: hospitals would refuse every bucket"
            )
        return self


class RobustConfig(StrictConfig):
    """How updates are combined, and the norm anomaly detector."""

    rule: Literal[
        "fedavg",
        "median",
        "trimmed_mean",
        "krum",
        "multi_krum",
        "bulyan",
        "foolsgold",
        "centered_clipping",
    ] = "fedavg"
    byzantine: int = Field(default=0, ge=0, description="f, the Byzantine inputs to tolerate")
    params: dict[str, float | int] = Field(
        default_factory=dict, description="rule parameters (tau for centered_clipping, ...)"
    )
    anomaly_z: float = Field(default=3.0, gt=0.0, description="flag norms above this z-score")


class AttackConfig(StrictConfig):
    """A malicious hospital, for robustness experiments."""

    hospital: int = Field(ge=1, description="which hospital (1-based) misbehaves")
    attack: Literal["sign_flip", "scaling", "gaussian_noise", "label_flip", "alie"]
    params: dict[str, float | int | str] = Field(default_factory=dict)


class FederationConfig(StrictConfig):
    """Rounds, participation and the aggregator's limits."""

    hospitals: int = Field(default=4, ge=1)
    rounds: int = Field(default=5, ge=1)
    participation: float = Field(default=1.0, gt=0.0, le=1.0)
    round_deadline_s: float = Field(default=300.0, gt=0.0)
    max_message_mb: int = Field(default=256, ge=1, le=2047)
    bind_host: str = Field(
        default="127.0.0.1",
        description="aggregator listen address; 0.0.0.0 when hospitals run on other nodes",
    )
    seed: int = 0
    site_resource_prefix: str | None = Field(
        default=None,
        min_length=1,
        description="pin hospital-N's actor to the nodes that advertise the Ray resource "
        "<prefix>hospital-N (the aggregator to <prefix>aggregator); each hospital then reads its "
        "key from security.pki_dir on its own node; null = no pinning",
    )


class BaselineConfig(StrictConfig):
    """The centrally trained, non-private model the federated one is compared against."""

    enabled: bool = True
    epochs: int = Field(default=3, ge=1)


class SecurityConfig(StrictConfig):
    """Where the federation's certificates live."""

    pki_dir: Path | None = Field(
        default=None,
        description="a `securemed pki init` folder; default: a fresh CA in the run folder",
    )
    server_name: str = Field(default="localhost", description="a name in the aggregator's cert")


class JobConfig(StrictConfig):
    """Everything `jobs/federated.py` needs."""

    data: DataConfig = DataConfig()
    partition: PartitionConfig = PartitionConfig()
    training: TrainingConfig = TrainingConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    federation: FederationConfig = FederationConfig()
    secure_aggregation: SecureAggregationConfig = SecureAggregationConfig()
    robust: RobustConfig = RobustConfig()
    attacks: list[AttackConfig] = Field(default_factory=list)
    security: SecurityConfig = SecurityConfig()
    baseline: BaselineConfig = BaselineConfig()

    @model_validator(mode="after")
    def _consistent(self) -> JobConfig:
        hospitals = self.federation.hospitals
        bad = sorted({a.hospital for a in self.attacks if a.hospital > hospitals})
        if bad:
            raise ValueError(f"attacks name hospitals {bad}, but there are only {hospitals}")
        secure = self.secure_aggregation
        if secure.client_dp_noise_multiplier is not None and not secure.enabled:
            raise ValueError(
                "client-level DP is distributed noise under secure aggregation: enable "
                "secure_aggregation"
            )
        if secure.client_dp_noise_multiplier is not None and secure.norm_bound is None:
            raise ValueError(
                "secure_aggregation.client_dp_noise_multiplier needs norm_bound: the noise is "
                "calibrated to it"
            )
        selected = max(1, round(self.federation.participation * hospitals))
        if secure.enabled and selected < secure.min_participants:
            raise ValueError(
                f"secure aggregation needs at least {secure.min_participants} hospitals a round "
                f"(secure_aggregation.min_participants), but {hospitals} hospitals at "
                f"participation {self.federation.participation} select {selected}: hospitals "
                "would refuse every round (the secure sum of one update is that update, and of "
                "two, each hospital learns the other's)"
            )
        if self.federation.site_resource_prefix is not None and self.security.pki_dir is None:
            raise ValueError(
                "federation.site_resource_prefix makes each hospital read its key on its own "
                "node: set security.pki_dir to where its site mounts its certificate (a run's "
                "own CA would hold every key on the driver's node)"
            )
        return self


def describe_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def validate_as(cls: type[ConfigT], raw: dict[str, Any], *, origin: str = "config") -> ConfigT:
    """Validate a mapping as ``cls``, raising :class:`ConfigError` that lists every bad field."""
    try:
        return cls.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{origin} is invalid:\n{describe_errors(error)}") from None


def load_as(cls: type[ConfigT], path: str | Path | None) -> ConfigT:
    """Read and validate a YAML config file as ``cls``; ``None`` gives the defaults."""
    if path is None:
        return cls()
    return validate_as(cls, read_yaml_mapping(path), origin=f"config file {path}")


def parse_config(raw: dict[str, Any], *, origin: str = "config") -> JobConfig:
    """Validate a federated job's config mapping."""
    return validate_as(JobConfig, raw, origin=origin)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file (empty for an empty file), or a clear error."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return raw


def load_config(path: str | Path | None) -> JobConfig:
    """Read and validate a federated job's YAML config; ``None`` gives the defaults."""
    return load_as(JobConfig, path)
