"""The clinical-notes leakage study: what a small LM fine-tuned on notes gives away.

The set-up users ask for first: a hospital fine-tunes a language model on its clinical notes.
How much does an attacker learn about which notes (and so which patients) were in the
training set, and what do regularization and DP-SGD buy? The study:

1. generates public notes (the tokenizer's and the base model's training text, a validation
   set for early stopping and a test set for utility) and, disjoint from them, an audit
   population of notes plus canaries (:mod:`securemed.audit.canaries`);
2. builds the base LM from :class:`NotesModelSettings` and pretrains it on the public notes, or
   loads one from a local folder: the base is also the NLL-gap attack's reference model,
   since it never saw the population;
3. for every fine-tuning variant (baseline, regularized, DP-SGD), trains ``models`` copies of
   the base on random halves of the population, the canaries drawn for the one-run audit
   (:func:`securemed.audit.membership.audit_masks`), and records each copy's NLL on every
   population note and canary (:func:`train_member_model`, one call per Ray task in
   ``jobs/audit.py``).

The attacks and the report are in :mod:`securemed.audit.study_analysis` and
:mod:`securemed.audit.study_report`. Nothing here imports Ray.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from securemed.audit.canaries import make_canaries
from securemed.audit.membership import audit_masks
from securemed.audit.study_analysis import MemberOutcome
from securemed.audit.study_config import StudyConfig, VariantSettings, member_seed
from securemed.audit.study_report import StudyDescription
from securemed.config import DPSGDConfig, StrictConfig
from securemed.data.clinical_notes import generate_clinical_notes
from securemed.notes_lm.model import EncodedNotes, NotesLM, NotesLMConfig, notes_nll
from securemed.notes_lm.training import FineTuneRecipe, FineTuneResult, Progress, fine_tune


class NotesModelSettings(StrictConfig):
    """The base LM: built from these sizes, or loaded from ``path`` (a local folder)."""

    path: str | None = Field(
        default=None, description="a local causal-LM folder (config.json, weights, tokenizer.json)"
    )
    vocab_size: int = Field(default=1000, ge=300)
    hidden_size: int = Field(default=64, ge=8)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=4, ge=1)
    intermediate_size: int = Field(default=256, ge=8)
    max_length: int = Field(default=256, ge=16)

    def lm_config(self) -> NotesLMConfig:
        return NotesLMConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            layers=self.layers,
            heads=self.heads,
            intermediate_size=self.intermediate_size,
            max_length=self.max_length,
        )


class BaseTraining(StrictConfig):
    """Pretraining of a base built from config, on the public notes (skipped for a loaded one)."""

    epochs: int = Field(default=4, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    batch_size: int = Field(default=32, ge=1)


class NotesVariant(VariantSettings):
    """One way of fine-tuning the LM: the shared settings plus dropout."""

    dropout: float = Field(default=0.0, ge=0, lt=1)

    def recipe(self, *, delta: float) -> FineTuneRecipe:
        privacy = None
        if self.target_epsilon is not None:
            privacy = DPSGDConfig(
                target_epsilon=self.target_epsilon, delta=delta, max_grad_norm=self.max_grad_norm
            )
        return FineTuneRecipe(
            name=self.name,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            weight_decay=self.weight_decay,
            dropout=self.dropout,
            patience=self.patience,
            privacy=privacy,
        )


DEFAULT_VARIANTS = (
    NotesVariant(name="baseline", epochs=12, learning_rate=3e-3, batch_size=16),
    NotesVariant(
        name="regularized", epochs=12, learning_rate=3e-3, batch_size=16,
        weight_decay=0.1, dropout=0.1, patience=1,
    ),
    NotesVariant(
        name="dp", epochs=10, learning_rate=1e-3, batch_size=96, target_epsilon=8.0,
    ),
)  # fmt: skip


class NotesAuditConfig(StudyConfig):
    """Everything the study does; the defaults finish in under 20 minutes on 2 cores."""

    style: Literal["simple", "mimic", "mixed"] = "mixed"
    population: int = Field(default=400, ge=8, description="notes whose membership is audited")
    canaries: int = Field(default=64, ge=4)
    public_notes: int = Field(default=800, ge=8, description="tokenizer and base pretraining")
    validation_notes: int = Field(default=100, ge=4, description="early stopping")
    test_notes: int = Field(default=150, ge=4, description="utility: held-out NLL")
    model: NotesModelSettings = NotesModelSettings()
    base: BaseTraining = BaseTraining()
    variants: tuple[NotesVariant, ...] = DEFAULT_VARIANTS


@dataclass(frozen=True)
class NotesStudy:
    """The study's data and base model, as shipped to every training task."""

    config: NotesAuditConfig
    lm: NotesLM
    public: EncodedNotes
    validation: EncodedNotes
    test: EncodedNotes
    #: the population's notes first, then the canaries
    audit_set: EncodedNotes
    #: ``(models, population + canaries)``: which model trains on which note
    masks: np.ndarray

    @property
    def canary_columns(self) -> slice:
        return slice(self.config.population, self.config.population + self.config.canaries)

    def with_base(self, state: dict[str, torch.Tensor]) -> NotesStudy:
        """The study with the pretrained base's weights in place."""
        model = type(self.lm.model)(self.lm.model.config)
        model.load_state_dict(state)
        lm = NotesLM(model, self.lm.tokenizer, max_length=self.lm.max_length)
        return replace(self, lm=lm)


def prepare_study(config: NotesAuditConfig) -> NotesStudy:
    """Generate the notes, build or load the base, draw the membership masks."""
    seeds = np.random.SeedSequence(config.seed).generate_state(4)
    public_seed, population_seed, canary_seed, mask_seed = (int(seed) for seed in seeds)
    texts = [
        note.text
        for note in generate_clinical_notes(
            config.public_notes + config.validation_notes + config.test_notes,
            seed=public_seed,
            style=config.style,
        )
    ]
    cut = config.public_notes + config.validation_notes
    public, validation, test = (
        texts[: config.public_notes],
        texts[config.public_notes : cut],
        texts[cut:],
    )
    population = [
        note.text
        for note in generate_clinical_notes(
            config.population, seed=population_seed, style=config.style
        )
    ]
    canaries = make_canaries(config.canaries, seed=canary_seed)
    if config.model.path is None:
        lm = NotesLM.build(config.model.lm_config(), public)
    else:
        lm = NotesLM.load(config.model.path, max_length=config.model.max_length)
    masks = audit_masks(config.models, config.population, config.canaries, seed=mask_seed)
    return NotesStudy(
        config=config,
        lm=lm,
        public=lm.encode(public),
        validation=lm.encode(validation),
        test=lm.encode(test),
        audit_set=lm.encode(population + canaries),
        masks=masks,
    )


def pretrain_base(study: NotesStudy, progress: Progress | None = None) -> FineTuneResult:
    """The base built from config, trained on the public notes (non-private: public data)."""
    base = study.config.base
    recipe = FineTuneRecipe(
        name="base",
        epochs=base.epochs,
        learning_rate=base.learning_rate,
        batch_size=base.batch_size,
    )
    return fine_tune(
        study.lm.model,
        study.public,
        study.validation,
        recipe,
        seed=study.config.seed,
        progress=progress,
    )


def reference_nll(study: NotesStudy) -> np.ndarray:
    """The base's NLL on every audited note: the NLL-gap attack's reference."""
    return notes_nll(study.lm.model, study.audit_set)


def train_member_model(
    study: NotesStudy, variant: str, index: int, progress: Progress | None = None
) -> MemberOutcome:
    """Fine-tune copy ``index`` of the base by ``variant`` on its half of the audit set."""
    seed = member_seed(study.config, variant, index)
    settings = {entry.name: entry for entry in study.config.variants}
    started = time.perf_counter()
    members = np.flatnonzero(study.masks[index])
    result = fine_tune(
        study.lm.model,
        study.audit_set.subset(members),
        study.validation,
        settings[variant].recipe(delta=study.config.delta),
        seed=seed,
        progress=progress,
    )
    model = type(study.lm.model)(study.lm.model.config)
    model.load_state_dict(result.state)
    return MemberOutcome(
        variant=variant,
        index=index,
        audit_nll=notes_nll(model, study.audit_set),
        utility=float(np.mean(notes_nll(model, study.test))),
        epsilon=result.epsilon,
        noise_multiplier=result.noise_multiplier,
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        seconds=time.perf_counter() - started,
        pid=os.getpid(),
    )


def describe_study(
    config: NotesAuditConfig, *, parameters: int, base_test_nll: float
) -> StudyDescription:
    """What REPORT.md says about the study: the set-up, and the base LM as the reference."""
    origin = "loaded from a local folder" if config.model.path else "pretrained on public notes"
    setup = (
        f"A small causal LM (GPT-NeoX, {parameters:,} parameters) was {origin} and fine-tuned "
        f"{len(config.variants)} ways on {config.population} synthetic clinical notes with PHI "
        f"plus {config.canaries} canaries (each with a random secret). For each variant "
        f"{config.models} copies were fine-tuned on random halves of the notes; every copy is "
        "attacked in turn, the others serving as LiRA's shadow models, so each attack is scored "
        f"on {config.models} x {config.population} (model, note) pairs, half of them members. "
        f"Utility is the mean NLL per token on {config.test_notes} held-out notes (lower is "
        "better)."
    )
    return StudyDescription(
        title="Membership inference on a clinical-notes language model",
        setup=setup,
        example="note",
        examples="notes",
        utility_name="test NLL (nats/token)",
        utility_key="test_nll",
        reference_model=("base (not fine-tuned)", base_test_nll),
    )
