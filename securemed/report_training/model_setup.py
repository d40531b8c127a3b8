"""The tokenizer and the untrained (or pretrained) report model a training job starts from."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from securemed.errors import ConfigError
from securemed.models.pretrained import build_report_model, load_t5_tokenizer
from securemed.models.report_generator import ReportGenerator
from securemed.report_training.config import ReportJobConfig
from securemed.text.tokenizer import ReportTokenizer


def job_tokenizer(job: ReportJobConfig, train_texts: Sequence[str]) -> ReportTokenizer:
    """A pretrained T5's own tokenizer (its weights are tied to it), else a BPE vocabulary
    learnt from the training reports (nothing is downloaded)."""
    if job.model.text_pretrained is not None:
        return load_t5_tokenizer(job.model.text_pretrained)
    return ReportTokenizer.train(train_texts, vocab_size=job.model.vocab_size)


def build_job_model(job: ReportJobConfig, tokenizer: ReportTokenizer) -> ReportGenerator:
    """The model the first variant trains: from the config's sizes, with the pretrained
    folders it names loaded, and a from-scratch T5 sized to the tokenizer."""
    base = job.model.report_model_config(job.data.image_size)
    text = job.model.text_pretrained
    if text is None:
        base = dataclasses.replace(base, vocab_size=tokenizer.vocab_size)
    model, _ = build_report_model(
        base,
        vision=job.model.vision_pretrained,
        text=text,
        tokenizer=tokenizer if text is None else None,
    )
    if model.config.image_size != job.data.image_size:
        raise ConfigError(
            f"the pretrained vision tower takes {model.config.image_size} px films: set "
            f"data.image_size to {model.config.image_size} (it is {job.data.image_size})"
        )
    return model
