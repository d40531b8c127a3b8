"""The classifier leakage study: what the chest X-ray classifier gives away about its films.

A hospital trains the multi-label classifier (the model the federation trains) on its films.
Which films, and so which patients, can an attacker tell were in training, and what do
regularization and DP-SGD buy? The study:

1. renders synthetic films: an audit population, canaries, a validation set for early
   stopping and test films for utility. A canary is a film with every label flipped
   (:func:`mislabel`): a member canary is learnt against its picture, so a model that
   memorizes is caught on it, which makes canaries the DP audit's worst cases;
2. for every variant (baseline, regularized, DP-SGD) trains ``models`` copies of the
   classifier on random halves of the population, the canaries drawn for the one-run audit
   (:func:`~securemed.audit.membership.audit_masks`), with the federation's own
   :class:`~securemed.privacy.LocalTrainer` (Opacus DP-SGD at record level when the variant has
   a target epsilon), one epoch per round;
3. records each copy's loss on every audited film and its macro-AUROC on the test films
   (:func:`train_member_model`, one call per Ray task in ``jobs/audit.py``).

The loss is the films' binary cross-entropy, the negative log-likelihood of their labels, so
the attacks and the report of :mod:`securemed.audit.study_analysis` and
:mod:`securemed.audit.study_report` apply as they do to text. There is no public base model,
so the NLL-gap attack has no reference here. Nothing here imports Ray.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from securemed.audit.membership import audit_masks
from securemed.audit.study_analysis import MemberOutcome
from securemed.audit.study_config import StudyConfig, VariantSettings, member_seed
from securemed.audit.study_report import StudyDescription
from securemed.config import ModelName, PrivacyConfig, TrainingConfig
from securemed.data.sources import SyntheticSource
from securemed.evaluation.classification import evaluate
from securemed.models import build_model
from securemed.models.early_stopping import run_epochs
from securemed.privacy import LocalTrainer
from securemed.privacy.local_training import LARGEST_ALPHA_WARNING, per_example_loss

DEFAULT_CLASSIFIER_VARIANTS = (
    VariantSettings(name="baseline", epochs=30, learning_rate=3e-3, batch_size=32),
    VariantSettings(
        name="regularized", epochs=30, learning_rate=3e-3, batch_size=32,
        weight_decay=1e-3, patience=3,
    ),
    VariantSettings(
        name="dp", epochs=30, learning_rate=3e-3, batch_size=64, target_epsilon=8.0,
    ),
)  # fmt: skip


class ClassifierAuditConfig(StudyConfig):
    """Everything the classifier study does; the defaults take minutes on 2 cores."""

    image_size: int = Field(default=32, ge=32, le=512)
    difficulty: float = Field(default=0.3, ge=0, le=1)
    models: int = Field(default=16, ge=6, description="per variant; each the target in turn")
    population: int = Field(default=1000, ge=8, description="films whose membership is audited")
    canaries: int = Field(default=100, ge=4, description="films with every label flipped")
    validation_films: int = Field(default=200, ge=4, description="early stopping")
    test_films: int = Field(default=400, ge=4, description="utility: macro-AUROC")
    model: ModelName = "simple_cnn"
    optimizer: Literal["adam", "sgd"] = "adam"
    accountant: Literal["rdp", "prv"] = "prv"
    variants: tuple[VariantSettings, ...] = DEFAULT_CLASSIFIER_VARIANTS


@dataclass(frozen=True)
class ClassifierStudy:
    """The study's films, as shipped to every training task."""

    config: ClassifierAuditConfig
    class_names: tuple[str, ...]
    #: the population's films first, then the canaries (labels flipped)
    audit_images: torch.Tensor
    audit_labels: torch.Tensor
    validation_images: torch.Tensor
    validation_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: np.ndarray
    #: ``(models, population + canaries)``: which model trains on which film
    masks: np.ndarray


def mislabel(labels: torch.Tensor) -> torch.Tensor:
    """Every finding flipped: the label a film's picture contradicts most."""
    return 1.0 - labels


def prepare_study(config: ClassifierAuditConfig) -> ClassifierStudy:
    """Render the films, make the canaries, draw the membership masks."""
    audited = config.population + config.canaries
    source = SyntheticSource(
        train_samples=audited + config.validation_films,
        test_samples=config.test_films,
        image_size=config.image_size,
        difficulty=config.difficulty,
        seed=config.seed,
    )
    images = torch.from_numpy(source.images("train", np.arange(source.sizes["train"])))
    labels = torch.from_numpy(source.labels("train")).to(torch.float32)
    audit_labels = labels[:audited].clone()
    audit_labels[config.population :] = mislabel(audit_labels[config.population :])
    mask_seed = int(np.random.SeedSequence([config.seed, 1]).generate_state(1)[0])
    return ClassifierStudy(
        config=config,
        class_names=source.class_names,
        audit_images=images[:audited],
        audit_labels=audit_labels,
        validation_images=images[audited:],
        validation_labels=labels[audited:],
        test_images=torch.from_numpy(source.images("test", np.arange(config.test_films))),
        test_labels=source.labels("test"),
        masks=audit_masks(config.models, config.population, config.canaries, seed=mask_seed),
    )


def train_member_model(study: ClassifierStudy, variant: str, index: int) -> MemberOutcome:
    """Train copy ``index`` of the classifier by ``variant`` on its half of the audited films.

    One :class:`~securemed.privacy.LocalTrainer` round per epoch, as a hospital trains in the
    federation; like there, each round starts a fresh optimizer, so Adam's moments restart
    every epoch (what the audited federated model sees too).
    """
    config = study.config
    seed = member_seed(config, variant, index)
    settings = {entry.name: entry for entry in config.variants}[variant]
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(config.model, num_classes=len(study.class_names))
    members = torch.from_numpy(np.flatnonzero(study.masks[index]))
    trainer = LocalTrainer(
        model,
        study.audit_images[members],
        study.audit_labels[members],
        training=TrainingConfig(
            model=config.model,
            optimizer=config.optimizer,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            local_epochs=1,
        ),
        privacy=_privacy(settings, config),
        total_rounds=settings.epochs,
        # a study on generated films: a copy retrained on --resume must be the same copy, so
        # its noise follows the study's seed (the audit measures the mechanism; nobody's data
        # is protected by these copies' epsilon)
        insecure_seed=seed,
    )
    spent: list[float | None] = [None]

    def train_epoch() -> None:
        result = trainer.train_round(model.state_dict())
        model.load_state_dict(result.state)
        spent[0] = result.epsilon

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LARGEST_ALPHA_WARNING)
        run = run_epochs(
            model,
            epochs=settings.epochs,
            train_epoch=train_epoch,
            validation_loss=lambda: float(
                np.mean(film_losses(model, study.validation_images, study.validation_labels))
            ),
            patience=settings.patience,
        )
    model.load_state_dict(run.state)
    auroc = evaluate(
        model, study.test_images, study.test_labels, class_names=study.class_names
    ).macro_auroc
    return MemberOutcome(
        variant=variant,
        index=index,
        audit_nll=film_losses(model, study.audit_images, study.audit_labels),
        utility=math.nan if auroc is None else float(auroc),
        epsilon=spent[0],
        noise_multiplier=trainer.noise_multiplier,
        epochs_run=run.epochs_run,
        best_epoch=run.best_epoch,
        seconds=time.perf_counter() - started,
        pid=os.getpid(),
    )


def describe_study(config: ClassifierAuditConfig, *, parameters: int) -> StudyDescription:
    """What REPORT.md says about the study."""
    setup = (
        f"The multi-label chest X-ray classifier ({config.model}, {parameters:,} parameters) "
        f"was trained {len(config.variants)} ways, from scratch, on {config.population} "
        f"synthetic {config.image_size} px films plus {config.canaries} canaries (films with "
        f"every finding flipped). For each variant {config.models} copies were trained on "
        "random halves of the films with the federation's local trainer; every copy is "
        "attacked in turn, the others serving as LiRA's shadow models, so each attack is "
        f"scored on {config.models} x {config.population} (model, film) pairs, half of them "
        f"members. Utility is the macro-AUROC on {config.test_films} test films."
    )
    return StudyDescription(
        title="Membership inference on the chest X-ray classifier",
        setup=setup,
        example="film",
        examples="films",
        utility_name="macro-AUROC",
        utility_key="macro_auroc",
    )


def film_losses(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Each film's binary cross-entropy (mean over findings): the NLL of its labels."""
    model.eval()
    with torch.no_grad():
        losses = per_example_loss(model(images), labels.to(torch.float32))
    return losses.numpy().astype(np.float64)


def _privacy(settings: VariantSettings, config: ClassifierAuditConfig) -> PrivacyConfig:
    return PrivacyConfig(
        enabled=settings.target_epsilon is not None,
        unit="record",
        target_epsilon=settings.target_epsilon if settings.target_epsilon else 8.0,
        max_grad_norm=settings.max_grad_norm,
        delta=config.delta,
        accountant=config.accountant,
    )
