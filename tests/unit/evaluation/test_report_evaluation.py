"""Report evaluation: scores on known pairs, the baseline, and PGD on the report loss."""

from __future__ import annotations

import pytest
import torch

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.evaluation.report_evaluation import (
    generate_reports,
    most_common_report,
    pgd_attack_reports,
    score_reports,
)
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.report_training.dataset import finding_labels, pad_token_ids
from securemed.text import ReportTokenizer

REPORTS = [
    r.text for r in ReportWriter(SyntheticChestXRays(image_size=32, seed=3)).reports(range(6))
]


def test_the_references_themselves_score_perfectly() -> None:
    scores = score_reports(REPORTS, REPORTS, finding_labels(REPORTS))
    assert scores["bleu4"] == pytest.approx(1.0) and scores["rouge_l"] == pytest.approx(1.0)
    assert scores["clinical_macro_f1"] == 1.0
    assert set(scores["clinical_f1"]) == {
        "cardiomegaly", "pleural_effusion", "consolidation", "pneumothorax", "nodule",
    }  # fmt: skip


def test_a_report_that_misses_a_finding_loses_clinical_f1() -> None:
    truth = finding_labels(["FINDINGS: Large left pneumothorax. IMPRESSION: Pneumothorax."] * 2)
    missed = ["FINDINGS: No pneumothorax. IMPRESSION: Normal."] * 2
    assert score_reports(missed, ["x"] * 2, truth)["clinical_f1"]["pneumothorax"] == 0.0


def test_the_baseline_is_the_most_frequent_training_report() -> None:
    assert most_common_report(["b", "a", "b", "c"]) == "b"
    with pytest.raises(ValueError, match="at least one"):
        most_common_report([])


def test_pgd_stays_in_budget_and_raises_the_loss_of_the_true_report() -> None:
    torch.manual_seed(0)
    config = ReportModelConfig(
        image_size=32, vision_width=8, d_model=32, d_ff=64, encoder_layers=1,
        decoder_layers=1, heads=2, vocab_size=300, max_report_tokens=64,
    )  # fmt: skip
    model = ReportGenerator(config)
    generator = SyntheticChestXRays(image_size=32, seed=3)
    images = torch.from_numpy(generator.images(torch.arange(6).numpy()))
    tokenizer = ReportTokenizer.train(REPORTS * 10, vocab_size=300)
    tokens = pad_token_ids([tokenizer.encode(t, max_length=64) for t in REPORTS])
    attacked = pgd_attack_reports(model, images, tokens, epsilon=0.03, steps=5, batch_size=4)
    assert float((attacked - images).abs().max()) <= 0.03 + 1e-6
    assert float(model.per_example_loss(attacked, tokens).mean()) > float(
        model.per_example_loss(images, tokens).mean()
    )
    reports = generate_reports(model, tokenizer, images, batch_size=4)
    assert len(reports) == 6 and all(isinstance(r, str) for r in reports)
