"""Multi-label metrics on label/score pairs whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from securemed.errors import DataError
from securemed.evaluation import (
    ClassificationMetrics,
    classification_metrics,
    evaluate,
    predict_scores,
)

NAMES = ("effusion", "nodule")
LABELS = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])


def test_perfect_scores_give_auroc_one_and_full_accuracy() -> None:
    metrics = classification_metrics(LABELS, LABELS * 0.8 + 0.1, class_names=NAMES)
    assert metrics.macro_auroc == 1.0
    assert metrics.per_class_auroc == {"effusion": 1.0, "nodule": 1.0}
    assert metrics.accuracy == 1.0 and metrics.exact_match == 1.0
    assert metrics.num_samples == 4


def test_reversed_scores_give_auroc_zero_and_no_right_label() -> None:
    metrics = classification_metrics(LABELS, 1.0 - LABELS, class_names=NAMES)
    assert metrics.macro_auroc == 0.0
    assert metrics.accuracy == 0.0 and metrics.exact_match == 0.0


def test_accuracy_is_per_label_and_exact_match_is_per_image() -> None:
    scores = LABELS.astype(float)
    scores[0, 1] = 0.9  # one wrong label out of eight, in the first image
    metrics = classification_metrics(LABELS, scores, class_names=NAMES)
    assert metrics.accuracy == pytest.approx(7 / 8)
    assert metrics.exact_match == pytest.approx(3 / 4)


def test_threshold_is_inclusive_and_configurable() -> None:
    scores = np.full(LABELS.shape, 0.3)
    at_default = classification_metrics(LABELS, scores, class_names=NAMES)
    lowered = classification_metrics(LABELS, scores, class_names=NAMES, threshold=0.3)
    assert at_default.accuracy == pytest.approx(4 / 8)  # all predicted negative
    assert lowered.accuracy == pytest.approx(4 / 8)  # all predicted positive
    assert lowered.exact_match == pytest.approx(1 / 4)  # only the [1, 1] image


def test_class_with_single_valued_labels_has_no_auroc_and_is_left_out_of_the_macro() -> None:
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.7], [0.8, 0.3], [0.1, 0.2]])
    metrics = classification_metrics(labels, scores, class_names=NAMES)
    assert metrics.per_class_auroc == {"effusion": 1.0, "nodule": None}
    assert metrics.macro_auroc == 1.0


def test_macro_auroc_is_none_when_no_class_has_both_values() -> None:
    labels = np.ones((3, 2))
    metrics = classification_metrics(labels, np.full((3, 2), 0.7), class_names=NAMES)
    assert metrics.macro_auroc is None
    assert metrics.accuracy == 1.0


def test_macro_auroc_is_the_mean_of_defined_classes() -> None:
    scores = np.column_stack([LABELS[:, 0] * 0.8 + 0.1, 1.0 - LABELS[:, 1]])
    metrics = classification_metrics(LABELS, scores, class_names=NAMES)
    assert metrics.per_class_auroc == {"effusion": 1.0, "nodule": 0.0}
    assert metrics.macro_auroc == 0.5


def test_to_dict_is_json_serialisable_with_none_for_undefined_auroc() -> None:
    labels = np.array([[1, 0], [0, 0]])
    metrics = classification_metrics(labels, np.array([[0.9, 0.1], [0.1, 0.1]]), class_names=NAMES)
    restored = json.loads(json.dumps(metrics.to_dict()))
    assert restored["per_class_auroc"] == {"effusion": 1.0, "nodule": None}
    assert set(restored) == {
        "macro_auroc",
        "per_class_auroc",
        "accuracy",
        "exact_match",
        "threshold",
        "num_samples",
    }


@pytest.mark.parametrize(
    ("labels", "scores", "names", "message"),
    [
        (LABELS, np.zeros((3, 2)), NAMES, "must both be"),
        (LABELS, np.zeros(LABELS.shape), ("only_one",), "class names"),
        (LABELS * 2, np.zeros(LABELS.shape), NAMES, "0 or 1"),
        (LABELS, np.full(LABELS.shape, np.nan), NAMES, "NaN"),
        (np.zeros((0, 2)), np.zeros((0, 2)), NAMES, "no labels"),
    ],
)
def test_malformed_inputs_raise_data_error(
    labels: np.ndarray, scores: np.ndarray, names: tuple[str, ...], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        classification_metrics(labels, scores, class_names=names)


class Brightness(nn.Module):
    """Scores class c by the mean brightness of image half c: a model with known answers."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        half = images.shape[-1] // 2
        left = images[..., :half].mean(dim=(1, 2, 3))
        right = images[..., half:].mean(dim=(1, 2, 3))
        return torch.stack([left, right], dim=1) * 20 - 10


def brightness_data() -> tuple[torch.Tensor, np.ndarray]:
    images = torch.zeros((len(LABELS), 1, 4, 4))
    images[LABELS[:, 0] == 1, :, :, :2] = 1.0
    images[LABELS[:, 1] == 1, :, :, 2:] = 1.0
    return images, LABELS


def test_predict_scores_are_sigmoid_probabilities_in_batches_and_restore_train_mode() -> None:
    images, _ = brightness_data()
    model = Brightness().train()
    scores = predict_scores(model, images, batch_size=3)
    assert scores.shape == (4, 2)
    assert ((scores > 0) & (scores < 1)).all()
    np.testing.assert_allclose(scores, torch.sigmoid(model(images)).detach().numpy(), rtol=1e-6)
    assert model.training


def test_evaluate_combines_scoring_and_metrics() -> None:
    images, labels = brightness_data()
    metrics = evaluate(Brightness(), images, torch.from_numpy(labels), class_names=NAMES)
    assert isinstance(metrics, ClassificationMetrics)
    assert metrics.macro_auroc == 1.0 and metrics.exact_match == 1.0


def test_evaluate_refuses_images_and_labels_of_different_lengths() -> None:
    images, labels = brightness_data()
    with pytest.raises(DataError, match="differ in length"):
        evaluate(Brightness(), images[:3], labels, class_names=NAMES)
