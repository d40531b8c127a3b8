"""Validated configuration of the report model's training job (``jobs/train_report.py``).

One file describes the data, the model, the optimisation and a list of *variants* trained one
after another (standard, adversarial, DP, or combinations), so ``make train-report`` produces
the comparison table from one config. A typo or an impossible combination fails at start-up
with the field named, as in :mod:`securemed.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from securemed.config import DPSGDConfig, StrictConfig, load_as, validate_as
from securemed.errors import ConfigError
from securemed.models.report_generator import ReportModelConfig

#: the usual L-infinity budget for 8-bit images, written out as the YAML config writes it
FOUR_OVER_255 = 0.0156863

AttackName = Literal["fgsm", "pgd", "deepfool"]


class ReportDataConfig(StrictConfig):
    """Films paired with reports: generated, or an Open-I / IU X-ray CSV."""

    source: Literal["synthetic", "openi"] = "synthetic"
    path: Path | None = Field(default=None, description="the Open-I CSV (source=openi)")
    image_size: int = Field(default=64, ge=32, le=512)
    difficulty: float = Field(default=0.5, ge=0.0, le=1.0, description="synthetic only")
    train_samples: int = Field(default=8000, ge=8, description="synthetic: films to train on")
    private_samples: int = Field(
        default=4000, ge=0, description="a disjoint split that DP variants train on"
    )
    test_samples: int = Field(default=300, ge=4)
    seed: int = 0

    @model_validator(mode="after")
    def _path_matches_source(self) -> ReportDataConfig:
        if self.source == "openi" and self.path is None:
            raise ValueError("data.path (the Open-I CSV) is required when data.source is 'openi'")
        if self.source == "synthetic" and self.path is not None:
            raise ValueError("data.path is only used with data.source 'openi'")
        return self


class ReportModelSettings(StrictConfig):
    """The sizes of :class:`ReportModelConfig`, and optional local pretrained folders."""

    vision: Literal["resnet", "vit"] = "resnet"
    vision_width: int = Field(default=16, ge=8)
    vision_layers: tuple[int, ...] = (1, 1, 1, 1)
    patch_size: int = Field(default=8, ge=1)
    d_model: int = Field(default=128, ge=8)
    d_ff: int = Field(default=256, ge=8)
    encoder_layers: int = Field(default=2, ge=1)
    decoder_layers: int = Field(default=2, ge=1)
    heads: int = Field(default=4, ge=1)
    vocab_size: int = Field(default=1000, ge=300, description="BPE vocabulary trained here")
    max_report_tokens: int = Field(default=96, ge=8)
    vision_pretrained: Path | None = Field(
        default=None, description="a local BiomedCLIP-layout folder (open_clip_config.json)"
    )
    text_pretrained: Path | None = Field(
        default=None, description="a local T5 folder (t5-base layout) with its tokenizer.json"
    )

    def report_model_config(self, image_size: int) -> ReportModelConfig:
        """The model's config before any pretrained folder overrides a half of it."""
        sizes = self.model_dump(exclude={"vision_pretrained", "text_pretrained"})
        try:
            return ReportModelConfig(image_size=image_size, **sizes)
        except ConfigError as error:
            raise ConfigError(f"model: {error}") from None


class OptimisationConfig(StrictConfig):
    """AdamW on the report loss plus the finding head's loss."""

    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=32, ge=2, description="global; expected batch under DP")
    learning_rate: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    finding_weight: float = Field(
        default=1.0, ge=0.0, description="weight of the finding head's loss (0 turns it off)"
    )
    workers: int = Field(default=2, ge=1, description="Ray Train CPU workers")
    cpus_per_worker: float = Field(default=1.0, gt=0.0)
    seed: int = 0


class AdversarialConfig(StrictConfig):
    """Adversarial examples mixed into each batch; the attacks take turns batch by batch."""

    share: float = Field(default=0.05, gt=0.0, le=1.0, description="of each batch")
    attacks: tuple[AttackName, ...] = ("fgsm", "pgd", "deepfool")
    epsilon: float = Field(
        default=FOUR_OVER_255, gt=0.0, description="L-infinity budget (FGSM, PGD)"
    )
    pgd_steps: int = Field(default=5, ge=1)
    deepfool_max_iter: int = Field(default=10, ge=1)
    deepfool_overshoot: float = Field(default=0.02, ge=0.0)
    deepfool_max_norm: float = Field(
        default=1.0, gt=0.0, description="L2 cap; 1.0 is a 4/255 L-infinity step's size at 64 px"
    )

    @model_validator(mode="after")
    def _some_attack(self) -> AdversarialConfig:
        if not self.attacks:
            raise ValueError("adversarial.attacks needs at least one of fgsm, pgd, deepfool")
        return self


class EvaluationConfig(StrictConfig):
    """Clean and robust metrics on the test split."""

    pgd_epsilon: float = Field(default=FOUR_OVER_255, ge=0.0, description="L-infinity budget")
    pgd_steps: int = Field(default=10, ge=1)
    robust_samples: int = Field(default=200, ge=1, description="test films attacked")
    num_beams: int = Field(default=1, ge=1)
    batch_size: int = Field(default=50, ge=1)


class VariantConfig(StrictConfig):
    """One model to train: which modes, and where it starts."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    adversarial: bool = False
    dp: bool = False
    init_from: str | None = Field(
        default=None, description="an earlier variant's name: fine-tune its weights"
    )
    epochs: int | None = Field(default=None, ge=1, description="default: optimisation.epochs")
    adversarial_share: float | None = Field(
        default=None, gt=0.0, le=1.0, description="default: adversarial.share"
    )

    @model_validator(mode="after")
    def _share_needs_adversarial(self) -> VariantConfig:
        if self.adversarial_share is not None and not self.adversarial:
            raise ValueError(f"{self.name}: adversarial_share needs adversarial: true")
        return self

    def adversarial_config(self, base: AdversarialConfig) -> AdversarialConfig | None:
        """The attack mix this variant trains with (its own share if it sets one), or None."""
        if not self.adversarial:
            return None
        if self.adversarial_share is None:
            return base
        return base.model_copy(update={"share": self.adversarial_share})

    @property
    def modes(self) -> tuple[str, ...]:
        modes = tuple(m for m, on in (("adversarial", self.adversarial), ("dp", self.dp)) if on)
        return modes or ("standard",)


def _default_variants() -> tuple[VariantConfig, ...]:
    return (
        VariantConfig(name="standard"),
        VariantConfig(name="adversarial", adversarial=True),
        VariantConfig(
            name="adversarial-ft",
            adversarial=True,
            adversarial_share=0.25,
            init_from="standard",
            epochs=1,
        ),
        VariantConfig(name="dp", dp=True, init_from="standard", epochs=2),
    )


class ReportJobConfig(StrictConfig):
    data: ReportDataConfig = ReportDataConfig()
    model: ReportModelSettings = ReportModelSettings()
    optimisation: OptimisationConfig = OptimisationConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    privacy: DPSGDConfig = DPSGDConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    variants: tuple[VariantConfig, ...] = Field(default_factory=_default_variants)

    @model_validator(mode="after")
    def _variants_are_consistent(self) -> ReportJobConfig:
        if not self.variants:
            raise ValueError("variants: name at least one model to train")
        seen: set[str] = set()
        for variant in self.variants:
            if variant.name in seen:
                raise ValueError(f"variants: the name {variant.name!r} is used twice")
            if variant.init_from is not None and variant.init_from not in seen:
                raise ValueError(
                    f"variants: {variant.name!r} starts from {variant.init_from!r}, which must "
                    "be an earlier variant"
                )
            seen.add(variant.name)
            if variant.dp:
                self._check_private_variant(variant)
        self.model.report_model_config(
            self.data.image_size
        )  # sizes checked now, not after training
        return self

    def _check_private_variant(self, variant: VariantConfig) -> None:
        """A DP variant trains on the private split only, and starts from no other DP model:
        epsilon then covers exactly that split (a second DP pass over it would compose)."""
        if not self.privacy.enabled:
            raise ValueError(f"variants: {variant.name!r} asks for DP but privacy.enabled is false")
        if self.data.private_samples == 0:
            raise ValueError(
                f"variants: {variant.name!r} trains with DP on the private split, which is "
                "empty: set data.private_samples above 0"
            )
        if variant.init_from is not None and self.variant(variant.init_from).dp:
            raise ValueError(
                f"variants: {variant.name!r} would continue DP training of "
                f"{variant.init_from!r} on the same split, so their epsilons compose; start "
                "it from a non-DP variant or from scratch"
            )

    def variant(self, name: str) -> VariantConfig:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ConfigError(f"no variant named {name!r} in this config")


def parse_report_config(raw: dict[str, Any], *, origin: str = "config") -> ReportJobConfig:
    """Validate a report job's config mapping."""
    return validate_as(ReportJobConfig, raw, origin=origin)


def load_report_config(path: str | Path | None) -> ReportJobConfig:
    """Read and validate a report job's YAML config; ``None`` gives the defaults."""
    return load_as(ReportJobConfig, path)
