"""Synthetic chest X-rays: determinism per index, shapes, prevalences, and findings on the film."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from securemed.data.synthetic import (
    FINDINGS,
    MAX_STUDIES_PER_PATIENT,
    ChestCase,
    SyntheticChestXRays,
    assign_patients,
)
from securemed.errors import DataError

SIZE = 64


def _frac(value: float) -> int:
    """Pixel index of body coordinate ``value`` on an unshifted, unrotated, unscaled film."""
    return int((value + 1.0) / 2.0 * SIZE)


def _straight(case: ChestCase, **findings: object) -> ChestCase:
    """The case with identity pose and no findings, plus any finding parameters given."""
    anatomy = dataclasses.replace(case.anatomy, scale=1.0, rotation=0.0, shift=(0.0, 0.0))
    return dataclasses.replace(
        case,
        anatomy=anatomy,
        present=(False,) * len(FINDINGS),
        findings=dataclasses.replace(case.findings, **findings),
    )


def _with(case: ChestCase, finding: str) -> ChestCase:
    present = tuple(name == finding for name in FINDINGS)
    return dataclasses.replace(case, present=present)


@pytest.fixture(scope="module")
def easy() -> SyntheticChestXRays:
    return SyntheticChestXRays(image_size=SIZE, difficulty=0.0, seed=3)


def test_same_seed_and_index_give_same_image() -> None:
    first = SyntheticChestXRays(seed=5).images(np.array([3, 7]))
    second = SyntheticChestXRays(seed=5).images(np.array([7]))
    np.testing.assert_array_equal(first[1], second[0])


def test_labels_of_an_index_do_not_depend_on_the_other_indices_asked() -> None:
    data = SyntheticChestXRays(seed=5)
    together = data.labels(np.arange(20))
    alone = np.concatenate([data.labels(np.array([i])) for i in range(20)])
    np.testing.assert_array_equal(together, alone)


def test_labels_agree_with_the_labels_used_to_render() -> None:
    data = SyntheticChestXRays(seed=9, difficulty=1.0)
    labels = data.labels(np.arange(50))
    rendered = np.array([data.case(i).labels for i in range(50)], dtype=np.float32)
    np.testing.assert_array_equal(labels, rendered)


def test_different_seeds_give_different_data() -> None:
    a = SyntheticChestXRays(seed=1).images(np.arange(2))
    b = SyntheticChestXRays(seed=2).images(np.arange(2))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("size", [64, 128, 224])
def test_images_are_float32_in_unit_range_with_channel_axis(size: int) -> None:
    images = SyntheticChestXRays(image_size=size).images(np.arange(3))
    assert images.shape == (3, 1, size, size)
    assert images.dtype == np.float32
    assert images.min() >= 0.0
    assert images.max() <= 1.0
    assert images.std() > 0.05  # an actual film, not a flat field


def test_labels_are_multi_hot_float32_with_realistic_prevalences() -> None:
    data = SyntheticChestXRays(seed=0)
    assert data.num_classes == len(FINDINGS) == 5
    assert data.class_names == FINDINGS
    labels = data.labels(np.arange(4000))
    assert labels.shape == (4000, 5)
    assert labels.dtype == np.float32
    assert set(np.unique(labels)) <= {0.0, 1.0}
    assert np.all((labels.mean(axis=0) > 0.12) & (labels.mean(axis=0) < 0.32))
    assert 0.30 <= (labels.sum(axis=1) == 0).mean() <= 0.45
    assert (labels.sum(axis=1) >= 2).mean() > 0.05  # findings co-occur


def test_label_noise_appears_only_when_difficulty_is_positive() -> None:
    clean = SyntheticChestXRays(difficulty=0.0)
    noisy = SyntheticChestXRays(difficulty=1.0)
    assert all(clean.case(i).labels == clean.case(i).present for i in range(300))
    assert any(noisy.case(i).labels != noisy.case(i).present for i in range(300))


def test_empty_index_array_gives_empty_batches() -> None:
    data = SyntheticChestXRays()
    assert data.images(np.array([], dtype=np.int64)).shape == (0, 1, 64, 64)
    assert data.labels(np.array([], dtype=np.int64)).shape == (0, 5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 16},
        {"image_size": 64.0},
        {"difficulty": 1.5},
        {"difficulty": -0.1},
        {"difficulty": "hard"},
        {"seed": -1},
        {"seed": 1.5},
    ],
)
def test_bad_arguments_raise_data_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(DataError):
        SyntheticChestXRays(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("indices", [np.array([-1]), np.array([0.5]), np.zeros((2, 2), int)])
def test_bad_indices_raise_data_error(indices: np.ndarray) -> None:
    with pytest.raises(DataError):
        SyntheticChestXRays().images(indices)


def test_cardiomegaly_widens_the_bright_cardiac_silhouette(easy: SyntheticChestXRays) -> None:
    case = _straight(easy.case(0))
    normal, enlarged = easy.render(case), easy.render(_with(case, "cardiomegaly"))
    row = _frac(case.anatomy.heart_center)
    threshold = 0.5 * (normal[row].max() + normal[row, _frac(-0.41)])
    assert (enlarged[row] > threshold).sum() > 1.25 * (normal[row] > threshold).sum()


def test_effusion_raises_intensity_at_its_own_lung_base(easy: SyntheticChestXRays) -> None:
    case = _straight(easy.case(1), effusion_side=-1)  # image left = patient right
    normal, effusion = easy.render(case), easy.render(_with(case, "pleural_effusion"))
    rows = slice(_frac(0.22), _frac(0.42))
    left, right = slice(_frac(-0.65), _frac(-0.25)), slice(_frac(0.25), _frac(0.65))
    change = effusion - normal
    assert change[rows, left].mean() > 0.08
    assert abs(change[rows, right].mean()) < 0.01


def test_pneumothorax_leaves_a_darker_rim_without_lung_markings(
    easy: SyntheticChestXRays,
) -> None:
    case = _straight(easy.case(2), pneumothorax_side=1)
    shifted = dataclasses.replace(
        case, anatomy=dataclasses.replace(case.anatomy, marking_phase=(0.0, 1.5))
    )
    apex = (slice(_frac(-0.55), _frac(-0.42)), slice(_frac(0.32), _frac(0.52)))
    normal, other_markings = easy.render(case), easy.render(shifted)
    collapsed = easy.render(_with(case, "pneumothorax"))
    collapsed_other = easy.render(_with(shifted, "pneumothorax"))
    assert collapsed[apex].mean() < normal[apex].mean() - 0.05
    # Markings change with their phase in a normal lung but are absent from the rim.
    in_lung = np.abs(normal - other_markings)[apex].mean()
    in_rim = np.abs(collapsed - collapsed_other)[apex].mean()
    assert in_lung > 0.005
    assert in_rim < 0.05 * in_lung


def test_consolidation_is_an_opacity_within_its_lobe(easy: SyntheticChestXRays) -> None:
    case = _straight(easy.case(4), consolidation_side=1, consolidation_center=(0.0, -0.2))
    normal, sick = easy.render(case), easy.render(_with(case, "consolidation"))
    cy = -0.02 - 0.2 * case.anatomy.lung_height
    blob = (slice(_frac(cy - 0.06), _frac(cy + 0.06)), slice(_frac(0.35), _frac(0.47)))
    far = (slice(_frac(cy - 0.06), _frac(cy + 0.06)), slice(_frac(-0.47), _frac(-0.35)))
    assert (sick - normal)[blob].mean() > 0.1
    np.testing.assert_array_equal(sick[far], normal[far])


def test_nodule_is_a_small_round_opacity(easy: SyntheticChestXRays) -> None:
    case = _straight(easy.case(5), nodule_side=-1, nodule_center=(0.2, -0.2))
    normal, sick = easy.render(case), easy.render(_with(case, "nodule"))
    cx = -(0.41 + 0.2 * case.anatomy.lung_width)
    cy = -0.02 - 0.2 * case.anatomy.lung_height
    change = sick - normal
    assert change[_frac(cy), _frac(cx)] > 0.15
    assert (change > 0.05).mean() < 0.02  # small: under 2 % of the film


def test_patient_ids_are_deterministic_from_the_seed_and_stable_as_the_set_grows() -> None:
    ids = assign_patients(500, seed=3)
    np.testing.assert_array_equal(ids, assign_patients(500, seed=3))
    assert not np.array_equal(ids, assign_patients(500, seed=4))
    longer = assign_patients(800, seed=3)
    last = ids[-1]
    np.testing.assert_array_equal(longer[: np.flatnonzero(ids == last)[0]], ids[ids < last])
    assert ids.dtype == np.int64 and ids.shape == (500,)


def test_studies_per_patient_are_skewed_one_for_many_up_to_ten_for_few() -> None:
    ids = assign_patients(20_000, seed=0)
    assert np.all(np.diff(ids) >= 0) and ids[0] == 0  # a patient's studies are one run
    studies = np.bincount(ids)[:-1]  # the last patient may be cut short
    assert studies.min() == 1 and studies.max() == MAX_STUDIES_PER_PATIENT
    assert 0.4 < np.mean(studies == 1) < 0.6
    assert 0.01 < np.mean(studies == MAX_STUDIES_PER_PATIENT) < 0.06
    assert 2.0 < studies.mean() < 3.0


def test_first_id_starts_another_set_of_patients() -> None:
    ids = assign_patients(50, seed=1, first_id=1000)
    assert ids.min() == 1000
    assert not np.array_equal(np.bincount(ids - 1000), np.bincount(assign_patients(50, seed=1)))
