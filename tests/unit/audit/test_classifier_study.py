"""The classifier study's pieces in-process: the films and canaries it prepares, and copies
trained plainly, with early stopping and with DP-SGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from securemed.audit.classifier_study import (
    ClassifierAuditConfig,
    film_losses,
    mislabel,
    prepare_study,
    train_member_model,
)
from securemed.audit.study_config import VariantSettings
from securemed.data.sources import SyntheticSource

TINY = ClassifierAuditConfig(
    population=48,
    canaries=8,
    validation_films=16,
    test_films=40,
    models=6,
    variants=(
        VariantSettings(name="plain", epochs=12, learning_rate=0.01, batch_size=8),
        VariantSettings(name="stopped", epochs=12, learning_rate=0.01, batch_size=8,
                        weight_decay=0.01, patience=1),
        VariantSettings(name="private", epochs=2, learning_rate=0.01, batch_size=8,
                        target_epsilon=4.0),
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def study():
    return prepare_study(TINY)


def test_canaries_are_the_population_s_kind_of_film_with_every_label_flipped(study) -> None:
    source = SyntheticSource(train_samples=72, test_samples=40, image_size=32, difficulty=0.3)
    true = torch.from_numpy(source.labels("train"))
    assert torch.equal(study.audit_labels[:48], true[:48])
    assert torch.equal(study.audit_labels[48:], 1 - true[48:56])
    assert study.audit_images.shape == (56, 1, 32, 32)
    assert study.validation_images.shape[0] == 16 and study.test_images.shape[0] == 40
    assert study.masks.shape == (6, 56) and np.all(study.masks[:, :48].sum(axis=0) == 3)
    assert torch.equal(mislabel(torch.tensor([[0.0, 1.0]])), torch.tensor([[1.0, 0.0]]))


def test_a_plain_copy_fits_its_own_films_better_than_the_others(study) -> None:
    outcome = train_member_model(study, "plain", 0)
    assert outcome.audit_nll.shape == (56,) and np.all(np.isfinite(outcome.audit_nll))
    members, population = study.masks[0, :48], outcome.audit_nll[:48]
    # the signal every attack lives on: lower loss on the films it trained on (canaries,
    # learnt against their picture, are the DP audit's concern and left out here)
    assert population[members].mean() < population[~members].mean()
    assert outcome.epsilon is None and outcome.noise_multiplier is None
    assert outcome.epochs_run == outcome.best_epoch == 12
    assert 0.0 <= outcome.utility <= 1.0
    # a copy is reproducible: the resumed study retrains the same model
    again = train_member_model(study, "plain", 0)
    assert np.allclose(again.audit_nll, outcome.audit_nll)


def test_early_stopping_keeps_the_best_epoch_and_dp_reports_its_epsilon(study) -> None:
    stopped = train_member_model(study, "stopped", 1)
    assert stopped.best_epoch < stopped.epochs_run == stopped.best_epoch + 1 < 12
    # the model it returns is the best epoch's: the same copy trained for exactly that long
    variants = list(TINY.variants)
    variants[1] = variants[1].model_copy(update={"epochs": stopped.best_epoch, "patience": None})
    shorter = prepare_study(TINY.model_copy(update={"variants": tuple(variants)}))
    assert np.allclose(train_member_model(shorter, "stopped", 1).audit_nll, stopped.audit_nll)
    private = train_member_model(study, "private", 1)
    assert private.epsilon is not None and 0 < private.epsilon <= 4.0 + 1e-6
    assert private.noise_multiplier is not None and private.noise_multiplier > 0


def test_an_unknown_variant_or_copy_is_refused(study) -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        train_member_model(study, "other", 0)
    with pytest.raises(ValueError, match="model index"):
        train_member_model(study, "plain", 6)


def test_film_losses_are_each_film_s_cross_entropy() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    images, labels = torch.randn(3, 1, 2, 2), torch.tensor([[1, 0], [0, 1], [1, 1]])
    logits = model(images)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, labels.float(), reduction="none"
    ).mean(dim=1)
    assert np.allclose(film_losses(model, images, labels), expected.detach().numpy())
