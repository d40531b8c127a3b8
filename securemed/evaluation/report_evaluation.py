"""How good, and how robust, a report model's reports are on held-out films.

Clean metrics: BLEU-1..4 and ROUGE-L against the reference reports, and clinical F1 (the
findings the generated report asserts, read by the labeler, against those the reference
asserts). Robust metrics: the same after each film is attacked with PGD inside an L-infinity
ball, climbing the loss of the film's own reference report (the attacker pushes the model away
from the right report); every model in a comparison is attacked at the same budget.

The baseline every table carries is the report that occurs most often in the training set,
written for every film: a model has only learnt to look at films if it beats it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from securemed.adversarial import pgd
from securemed.evaluation.report_labeler import clinical_f1
from securemed.evaluation.text_metrics import corpus_bleu, rouge_l
from securemed.models.report_generator import ReportGenerator
from securemed.report_training.dataset import PairedReports
from securemed.text.tokenizer import ReportTokenizer


def generate_reports(
    model: ReportGenerator,
    tokenizer: ReportTokenizer,
    images: torch.Tensor,
    *,
    batch_size: int = 50,
    num_beams: int = 1,
) -> list[str]:
    """The model's report for every film, decoded to text."""
    model.eval()
    reports: list[str] = []
    for start in range(0, len(images), batch_size):
        ids = model.generate(images[start : start + batch_size], num_beams=num_beams)
        reports.extend(tokenizer.decode(row.tolist()) for row in ids)
    return reports


def report_losses(
    model: ReportGenerator,
    tokenizer: ReportTokenizer,
    films: PairedReports,
    *,
    finding_weight: float,
    batch_size: int = 64,
) -> np.ndarray:
    """Each film's training loss (its report's tokens plus the finding head): the quantity
    DP-SGD clips, and the membership attacks' statistic."""
    tokens = films.tokens(tokenizer, model.config.max_report_tokens)
    was_training = model.training
    model.eval()
    losses = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for begin in range(0, len(films), batch_size):
            window = slice(begin, begin + batch_size)
            losses.append(
                model.per_example_loss(
                    films.images[window],
                    tokens[window],
                    films.findings[window],
                    finding_weight=finding_weight,
                )
            )
    model.train(was_training)
    return torch.cat(losses).numpy().astype(np.float64)


def score_reports(
    generated: Sequence[str], references: Sequence[str], truth: torch.Tensor
) -> dict[str, Any]:
    """BLEU-1..4, ROUGE-L and clinical F1 (macro and per finding) of ``generated``."""
    clinical = clinical_f1(generated, truth.bool().tolist())
    scores: dict[str, Any] = dict(corpus_bleu(generated, references))
    scores["rouge_l"] = rouge_l(generated, references)
    scores["clinical_macro_f1"] = clinical.macro_f1
    scores["clinical_f1"] = clinical.per_finding_f1
    return scores


def pgd_attack_reports(
    model: ReportGenerator,
    images: torch.Tensor,
    tokens: torch.Tensor,
    *,
    epsilon: float,
    steps: int,
    batch_size: int = 50,
    seed: int = 0,
) -> torch.Tensor:
    """Films moved by PGD (L-infinity ``epsilon``) to raise the loss of their own report."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    attacked = []
    for start in range(0, len(images), batch_size):
        reference = tokens[start : start + batch_size]

        def loss_fn(batch: torch.Tensor, reference: torch.Tensor = reference) -> torch.Tensor:
            return model.per_example_loss(batch, reference)

        attacked.append(
            pgd(
                loss_fn,
                images[start : start + batch_size],
                epsilon=epsilon,
                steps=steps,
                generator=generator,
            )
        )
    return torch.cat(attacked)


def most_common_report(texts: Sequence[str]) -> str:
    """The training set's most frequent report (ties: the first seen)."""
    if not texts:
        raise ValueError("the baseline needs at least one training report")
    return Counter(texts).most_common(1)[0][0]
