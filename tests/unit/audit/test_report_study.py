"""The report-generator study's pieces in-process: the films and canaries it prepares, the
start, and copies fine-tuned plainly, with early stopping and with DP-SGD."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from securemed.audit.report_study import (
    ReportAuditConfig,
    ReportStudy,
    measure_start,
    prepare_study,
    pretrain_start,
    swap_reports,
    train_member_model,
)
from securemed.audit.study_config import VariantSettings
from securemed.errors import ConfigError
from securemed.report_training.config import ReportModelSettings
from securemed.report_training.dataset import PairedReports, load_split

TINY = ReportAuditConfig(
    image_size=32,
    public_films=48,
    population=24,
    canaries=6,
    validation_films=6,
    test_films=8,
    models=6,
    model=ReportModelSettings(d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1, heads=2,
                              vision_width=8, max_report_tokens=64, vocab_size=300),
    pretrain_epochs=1,
    variants=(
        VariantSettings(name="plain", epochs=3, learning_rate=0.005, batch_size=4),
        # a learning rate high enough to overfit within 20 epochs, so early stopping stops
        VariantSettings(name="stopped", epochs=20, learning_rate=0.05, batch_size=4,
                        weight_decay=0.05, patience=1),
        VariantSettings(name="private", epochs=1, learning_rate=0.005, batch_size=4,
                        target_epsilon=4.0),
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> ReportStudy:
    folder = tmp_path_factory.mktemp("report-study") / "start"
    return prepare_study(TINY).with_start(pretrain_start(TINY, folder))


def test_the_audited_films_are_the_private_split_with_the_canaries_reports_swapped(
    study,
) -> None:
    private = load_split(TINY.data(), "private")
    assert len(study.audit) == 30 and study.masks.shape == (6, 30)
    assert np.all(study.masks[:, :24].sum(axis=0) == 3)
    assert torch.equal(study.audit.images, private.images)
    assert study.audit.texts[:24] == private.texts[:24]
    # every canary carries a report whose findings its own film does not show
    swapped = study.audit.findings[24:] != private.findings[24:]
    assert swapped.any(dim=1).sum() >= 5
    held_out = load_split(TINY.data(), "test")
    assert study.validation.texts + study.test.texts == held_out.texts
    assert len(study.validation) == 6 and len(study.test) == 8


def test_swap_reports_gives_each_film_another_film_s_different_report() -> None:
    findings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    films = PairedReports(torch.zeros(3, 1, 4, 4), ("a", "b", "c"), findings)
    swapped = swap_reports(films)
    assert swapped.texts == ("c", "c", "a")
    assert torch.equal(swapped.images, films.images)


def test_copies_fine_tune_their_half_and_report_what_the_audit_needs(study) -> None:
    start = measure_start(study)
    reference = start.losses
    assert reference.shape == (30,) and np.all(np.isfinite(reference))
    assert 0.0 <= start.clinical_f1 <= 1.0 and start.parameters > 0
    plain = train_member_model(study, "plain", 0)
    assert plain.audit_nll.shape == (30,) and plain.epsilon is None
    members = study.masks[0]
    # fine-tuning lowers the loss of the films it trained on more than of the others
    drop = reference - plain.audit_nll
    assert drop[members].mean() > drop[~members].mean()
    assert 0.0 <= plain.utility <= 1.0 and plain.epochs_run == 3
    stopped = train_member_model(study, "stopped", 1)
    assert stopped.best_epoch < stopped.epochs_run == stopped.best_epoch + 1 < 20
    # the model it returns is the best epoch's: the same copy fine-tuned for exactly that long
    variants = list(TINY.variants)
    variants[1] = variants[1].model_copy(update={"epochs": stopped.best_epoch, "patience": None})
    shorter = replace(study, config=TINY.model_copy(update={"variants": tuple(variants)}))
    assert np.allclose(train_member_model(shorter, "stopped", 1).audit_nll, stopped.audit_nll)
    private = train_member_model(study, "private", 2)
    assert private.epsilon is not None and 0 < private.epsilon <= 4.0 + 1e-6
    assert private.noise_multiplier is not None and private.noise_multiplier > 0


def test_a_study_needs_a_start_that_fits_its_films(study, tmp_path) -> None:
    with pytest.raises(ValueError, match="no start yet"):
        measure_start(prepare_study(TINY))
    bigger = TINY.model_copy(update={"image_size": 64})
    assert study.start is not None
    with pytest.raises(ConfigError, match="takes 32 px films"):
        prepare_study(bigger).with_start(Path(study.start))
    with pytest.raises(ValueError, match="unknown variant"):
        train_member_model(study, "other", 0)
