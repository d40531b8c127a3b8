"""The report-generator leakage study: what the chest X-ray report model gives away.

A hospital fine-tunes the report generator on its private films and their reports, from a
start that saw only public films (as ``make train-report``'s ``dp`` variant does). Which
private films can an attacker tell were in the fine-tuning set? The study:

1. renders synthetic films with reports: the public split (the start's training data), the
   audited private films, canaries, validation films for early stopping and test films for
   utility. A canary is a private film paired with another film's report asserting different
   findings (:func:`swap_reports`): a member canary is learnt against its picture;
2. trains the start on the public split once, without DP, or loads ``init_checkpoint``; the
   start never saw a private film, so it is also the NLL-gap attack's reference model;
3. for every variant (baseline, regularized, DP-SGD) fine-tunes ``models`` copies of the start
   on random halves of the private films, the canaries drawn for the one-run audit
   (:func:`~securemed.audit.membership.audit_masks`), with the report trainer of
   ``make train-report`` (:class:`~securemed.report_training.trainer.ReportTrainer`), and
   records each copy's training loss on every audited film (the loss DP-SGD clips: report
   tokens plus the finding head) and the clinical F1 of its greedy reports on the test films.

Nothing here imports Ray: ``jobs/audit.py report`` runs the start and the copies as tasks.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from securemed.audit.membership import audit_masks
from securemed.audit.study_analysis import MemberOutcome
from securemed.audit.study_config import StudyConfig, VariantSettings, member_seed
from securemed.audit.study_report import StudyDescription
from securemed.config import DPSGDConfig
from securemed.errors import ConfigError
from securemed.evaluation.report_evaluation import generate_reports, report_losses, score_reports
from securemed.models.early_stopping import run_epochs
from securemed.models.report_checkpoint import load_report_checkpoint
from securemed.models.report_generator import ReportGenerator
from securemed.privacy.local_training import LARGEST_ALPHA_WARNING
from securemed.report_training.config import (
    OptimisationConfig,
    ReportDataConfig,
    ReportModelSettings,
)
from securemed.report_training.dataset import PairedReports, load_split
from securemed.report_training.pretraining import pretrain_on_public_split
from securemed.report_training.trainer import ReportTrainer
from securemed.text.tokenizer import ReportTokenizer

DEFAULT_REPORT_VARIANTS = (
    VariantSettings(name="baseline", epochs=10, learning_rate=2e-3, batch_size=16),
    VariantSettings(
        name="regularized", epochs=10, learning_rate=2e-3, batch_size=16,
        weight_decay=0.05, patience=1,
    ),
    VariantSettings(
        name="dp", epochs=10, learning_rate=2e-3, batch_size=64, target_epsilon=8.0,
    ),
)  # fmt: skip


class ReportAuditConfig(StudyConfig):
    """Everything the report study does; the defaults take minutes on 2 cores."""

    image_size: int = Field(default=64, ge=32, le=512)
    difficulty: float = Field(default=0.5, ge=0, le=1)
    public_films: int = Field(default=3000, ge=8, description="the start's training films")
    population: int = Field(default=400, ge=8, description="private films audited")
    canaries: int = Field(default=40, ge=4, description="films paired with a wrong report")
    validation_films: int = Field(default=64, ge=4, description="early stopping")
    test_films: int = Field(default=128, ge=4, description="utility: clinical F1")
    model: ReportModelSettings = ReportModelSettings(vocab_size=300)
    init_checkpoint: Path | None = Field(
        default=None, description="a report checkpoint to start from; default: pretrain one"
    )
    pretrain_epochs: int = Field(default=3, ge=0)
    pretrain_learning_rate: float = Field(default=2e-3, gt=0)
    pretrain_batch_size: int = Field(default=32, ge=2)
    finding_weight: float = Field(default=1.0, ge=0)
    eval_batch_size: int = Field(default=64, ge=1)
    accountant: Literal["rdp", "prv"] = "prv"
    variants: tuple[VariantSettings, ...] = DEFAULT_REPORT_VARIANTS

    @field_validator("init_checkpoint")
    @classmethod
    def _a_folder(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_dir():
            raise ValueError(f"{path} is not a folder (a report checkpoint is one)")
        return path

    def data(self) -> ReportDataConfig:
        """The synthetic splits: public, private (population then canaries), then held-out."""
        return ReportDataConfig(
            image_size=self.image_size,
            difficulty=self.difficulty,
            train_samples=self.public_films,
            private_samples=self.population + self.canaries,
            test_samples=self.validation_films + self.test_films,
            seed=self.seed,
        )


@dataclass(frozen=True)
class ReportStudy:
    """The study's films and reports and the start's checkpoint, as shipped to every task."""

    config: ReportAuditConfig
    #: the private films, population then canaries (reports swapped)
    audit: PairedReports
    validation: PairedReports
    test: PairedReports
    #: ``(models, population + canaries)``: which copy fine-tunes on which film
    masks: np.ndarray
    #: the start's checkpoint folder (None until :func:`with_start`)
    start: str | None = None

    def with_start(self, folder: Path) -> ReportStudy:
        """The study with its starting checkpoint, checked to fit the films."""
        loaded = load_report_checkpoint(folder)
        if loaded.config.image_size != self.config.image_size:
            raise ConfigError(
                f"{folder} takes {loaded.config.image_size} px films but the study renders "
                f"{self.config.image_size} px; make image_size equal"
            )
        return replace(self, start=str(Path(folder).resolve()))


def swap_reports(films: PairedReports) -> PairedReports:
    """Each film paired with the report of the next film (cyclically) asserting different
    findings: the report its picture contradicts. Films whose findings all agree keep the
    next film's report (only tiny sets have that)."""
    count = len(films)
    chosen = []
    for index in range(count):
        others = [(index + shift) % count for shift in range(1, count)] or [index]
        differing = [j for j in others if not torch.equal(films.findings[j], films.findings[index])]
        chosen.append((differing or others)[0])
    return PairedReports(
        films.images,
        tuple(films.texts[j] for j in chosen),
        films.findings[torch.as_tensor(chosen)],
    )


def prepare_study(config: ReportAuditConfig) -> ReportStudy:
    """Render the private and held-out films, make the canaries, draw the masks."""
    data = config.data()
    private = load_split(data, "private")
    held_out = load_split(data, "test")
    population = private.subset(range(config.population))
    canaries = swap_reports(private.subset(range(config.population, len(private))))
    audit = PairedReports(
        torch.cat([population.images, canaries.images]),
        population.texts + canaries.texts,
        torch.cat([population.findings, canaries.findings]),
    )
    mask_seed = int(np.random.SeedSequence([config.seed, 2]).generate_state(1)[0])
    return ReportStudy(
        config=config,
        audit=audit,
        validation=held_out.subset(range(config.validation_films)),
        test=held_out.subset(range(config.validation_films, len(held_out))),
        masks=audit_masks(config.models, config.population, config.canaries, seed=mask_seed),
    )


def pretrain_start(config: ReportAuditConfig, folder: Path) -> Path:
    """The start: trained without DP on the public split (private films never seen)."""
    return pretrain_on_public_split(
        config.data(),
        config.model,
        folder,
        epochs=config.pretrain_epochs,
        learning_rate=config.pretrain_learning_rate,
        batch_size=config.pretrain_batch_size,
        finding_weight=config.finding_weight,
        seed=config.seed,
    )


@dataclass(frozen=True)
class StartMeasure:
    """The start, measured once before the copies are trained."""

    #: its loss on every audited film: the NLL-gap attack's reference
    losses: np.ndarray
    #: its clinical F1 on the test films: what fine-tuning has to beat
    clinical_f1: float
    parameters: int


def measure_start(study: ReportStudy) -> StartMeasure:
    """The start's losses, clinical F1 and size, from one load of its checkpoint."""
    model, tokenizer = _load_start(study)
    return StartMeasure(
        losses=_losses(model, tokenizer, study.audit, study.config),
        clinical_f1=_clinical_f1(model, tokenizer, study.test, study.config),
        parameters=sum(parameter.numel() for parameter in model.parameters()),
    )


def train_member_model(study: ReportStudy, variant: str, index: int) -> MemberOutcome:
    """Fine-tune copy ``index`` of the start by ``variant`` on its half of the audited films."""
    config = study.config
    seed = member_seed(config, variant, index)
    settings = {entry.name: entry for entry in config.variants}[variant]
    started = time.perf_counter()
    model, tokenizer = _load_start(study)
    members = np.flatnonzero(study.masks[index])
    privacy = None
    if settings.target_epsilon is not None:
        privacy = DPSGDConfig(
            target_epsilon=settings.target_epsilon,
            delta=config.delta,
            max_grad_norm=settings.max_grad_norm,
            accountant=config.accountant,
        )
    torch.manual_seed(seed)
    model.train()  # Opacus refuses a model in eval mode, and checkpoints load in eval mode
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LARGEST_ALPHA_WARNING)
        trainer = ReportTrainer(
            model,
            study.audit.subset(members),
            tokenizer,
            optimisation=OptimisationConfig(
                epochs=settings.epochs,
                batch_size=max(2, settings.batch_size),
                learning_rate=settings.learning_rate,
                weight_decay=settings.weight_decay,
                finding_weight=config.finding_weight,
                workers=1,
                seed=seed,
            ),
            epochs=settings.epochs,
            privacy=privacy,
        )
        run = run_epochs(
            model,
            epochs=settings.epochs,
            train_epoch=trainer.train_epoch,
            validation_loss=lambda: float(
                np.mean(_losses(model, tokenizer, study.validation, config))
            ),
            patience=settings.patience,
        )
        epsilon = trainer.epsilon() if privacy is not None else None
    model.load_state_dict(run.state)
    return MemberOutcome(
        variant=variant,
        index=index,
        audit_nll=_losses(model, tokenizer, study.audit, config),
        utility=_clinical_f1(model, tokenizer, study.test, config),
        epsilon=epsilon,
        noise_multiplier=trainer.noise_multiplier,
        epochs_run=run.epochs_run,
        best_epoch=run.best_epoch,
        seconds=time.perf_counter() - started,
        pid=os.getpid(),
    )


def describe_study(
    config: ReportAuditConfig, *, parameters: int, start_f1: float
) -> StudyDescription:
    """What REPORT.md says about the study: the set-up, and the start as the reference."""
    origin = (
        "loaded from a checkpoint"
        if config.init_checkpoint
        else f"trained without DP on {config.public_films} public films"
    )
    setup = (
        f"The chest X-ray report generator ({parameters:,} parameters), {origin}, was "
        f"fine-tuned {len(config.variants)} ways on {config.population} synthetic private "
        f"{config.image_size} px films with their reports plus {config.canaries} canaries "
        "(films paired with a report of different findings). For each variant "
        f"{config.models} copies were fine-tuned on random halves of the films; every copy is "
        "attacked in turn, the others serving as LiRA's shadow models, so each attack is "
        f"scored on {config.models} x {config.population} (model, film) pairs, half of them "
        "members. The statistic is each film's training loss (report tokens plus the finding "
        f"head). Utility is the clinical F1 of greedy reports on {config.test_films} test films."
    )
    return StudyDescription(
        title="Membership inference on the chest X-ray report generator",
        setup=setup,
        example="film",
        examples="films",
        utility_name="clinical F1",
        utility_key="clinical_f1",
        reference_model=("start (not fine-tuned)", start_f1),
    )


def _load_start(study: ReportStudy) -> tuple[ReportGenerator, ReportTokenizer]:
    if study.start is None:
        raise ValueError("the study has no start yet: call with_start() first")
    loaded = load_report_checkpoint(study.start)
    return loaded.model, loaded.tokenizer


def _losses(
    model: ReportGenerator,
    tokenizer: ReportTokenizer,
    films: PairedReports,
    config: ReportAuditConfig,
) -> np.ndarray:
    return report_losses(
        model, tokenizer, films,
        finding_weight=config.finding_weight, batch_size=config.eval_batch_size,
    )  # fmt: skip


def _clinical_f1(
    model: ReportGenerator,
    tokenizer: ReportTokenizer,
    films: PairedReports,
    config: ReportAuditConfig,
) -> float:
    generated = generate_reports(model, tokenizer, films.images, batch_size=config.eval_batch_size)
    return float(score_reports(generated, films.texts, films.findings)["clinical_macro_f1"])
