"""A report model trained without DP on the public split: where private fine-tuning starts.

DP fine-tuning (the ``dp`` variant of ``make train-report``, the report sweep's trials, the
report model's privacy audit) starts from a model that has seen only public films, so the
privacy spent on the private split is all DP-SGD's accountant has to count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from securemed.models.report_checkpoint import TrainingFacts, save_report_checkpoint
from securemed.report_training.config import (
    OptimisationConfig,
    ReportDataConfig,
    ReportJobConfig,
    ReportModelSettings,
)
from securemed.report_training.dataset import load_split
from securemed.report_training.model_setup import build_job_model, job_tokenizer
from securemed.report_training.trainer import ReportTrainer


def pretrain_on_public_split(
    data: ReportDataConfig,
    model: ReportModelSettings,
    folder: Path,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    finding_weight: float,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Train a fresh model (tokenizer fitted to the public reports) for ``epochs`` on the
    ``train`` split, in this process; save it to ``folder``. Zero epochs saves the freshly
    initialised model (a start that knows nothing)."""
    optimisation = OptimisationConfig(
        epochs=max(1, epochs),
        batch_size=batch_size,
        learning_rate=learning_rate,
        finding_weight=finding_weight,
        workers=1,
        seed=seed,
    )
    job = ReportJobConfig(data=data, model=model, optimisation=optimisation)
    public = load_split(data, "train")
    tokenizer = job_tokenizer(job, public.texts)
    torch.manual_seed(optimisation.seed)
    network = build_job_model(job, tokenizer)
    trainer = ReportTrainer(
        network, public, tokenizer, optimisation=optimisation, epochs=optimisation.epochs
    )
    for _ in range(epochs):
        stats = trainer.train_epoch()
        if progress is not None:
            progress(
                f"pretraining the starting report model: epoch {stats.epoch}/"
                f"{epochs}, loss {stats.loss:.3f} ({stats.seconds:.0f} s)"
            )
    facts = TrainingFacts(
        modes=("standard",),
        steps=trainer.global_step,
        epochs=epochs,
        train_examples=len(public),
        data={**data.model_dump(mode="json"), "split": "train", "init_from": None},
    )
    save_report_checkpoint(folder, network.eval(), tokenizer, facts)
    return folder
