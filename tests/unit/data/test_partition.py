"""Partitions across hospitals: disjoint, complete, sorted, seeded, and skewed as asked."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.data.partition import (
    dirichlet_partition,
    iid_partition,
    quantity_skew_partition,
)
from securemed.errors import DataError


def _assert_valid(parts: list[np.ndarray], num_samples: int, num_hospitals: int) -> None:
    assert len(parts) == num_hospitals
    for part in parts:
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates
    joined = np.concatenate(parts)
    assert joined.size == num_samples
    np.testing.assert_array_equal(np.sort(joined), np.arange(num_samples))


def _multi_labels(num_samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((num_samples, 5)) < [0.3, 0.2, 0.15, 0.1, 0.05]).astype(np.float32)


def _label_skew(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between each hospital's label mix and the global one."""

    def mix(rows: np.ndarray) -> np.ndarray:
        counts = np.append(rows.sum(axis=0), (rows.sum(axis=1) == 0).sum())
        return counts / counts.sum()

    overall = mix(labels)
    return float(np.mean([0.5 * np.abs(mix(labels[p]) - overall).sum() for p in parts]))


def test_iid_partition_is_disjoint_complete_and_balanced() -> None:
    parts = iid_partition(103, 4, seed=0)
    _assert_valid(parts, 103, 4)
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1


def test_same_seed_gives_same_partition_and_another_seed_does_not() -> None:
    labels = _multi_labels(500)
    for split in (
        lambda s: iid_partition(500, 5, seed=s),
        lambda s: dirichlet_partition(labels, 5, alpha=0.5, seed=s),
        lambda s: quantity_skew_partition(500, 5, beta=0.5, seed=s),
    ):
        same = zip(split(1), split(1), strict=True)
        assert all(np.array_equal(a, b) for a, b in same)
        assert not all(np.array_equal(a, b) for a, b in zip(split(1), split(2), strict=True))


def test_dirichlet_partition_is_disjoint_and_complete() -> None:
    labels = _multi_labels(800)
    _assert_valid(dirichlet_partition(labels, 6, alpha=0.3, seed=0), 800, 6)


def test_small_alpha_skews_label_mix_more_than_large_alpha() -> None:
    labels = _multi_labels(3000)
    skewed = np.mean(
        [_label_skew(labels, dirichlet_partition(labels, 5, alpha=0.1, seed=s)) for s in range(3)]
    )
    near_iid = np.mean(
        [_label_skew(labels, dirichlet_partition(labels, 5, alpha=100, seed=s)) for s in range(3)]
    )
    assert skewed > 3 * near_iid
    assert skewed > 0.15


def test_dirichlet_partition_respects_min_samples() -> None:
    labels = _multi_labels(1000)
    parts = dirichlet_partition(labels, 8, alpha=0.5, seed=0, min_samples=40)
    assert min(p.size for p in parts) >= 40


def test_dirichlet_partition_that_cannot_meet_min_samples_raises() -> None:
    labels = _multi_labels(200)
    with pytest.raises(DataError, match="raise alpha"):
        dirichlet_partition(labels, 10, alpha=0.01, seed=0, min_samples=19)


def test_dirichlet_partition_accepts_class_ids() -> None:
    ids = np.repeat(np.arange(4), 50)
    _assert_valid(dirichlet_partition(ids, 3, alpha=1.0, seed=0), 200, 3)


def test_rarest_positive_finding_decides_a_samples_group() -> None:
    # Class 1 is rare; a sample with classes 0 and 1 must travel with the class-1 samples.
    labels = np.zeros((60, 2), dtype=np.float32)
    labels[:50, 0] = 1
    labels[50:, 1] = 1
    labels[0, 1] = 1
    parts = dirichlet_partition(labels, 2, alpha=0.01, seed=4)
    holder = next(p for p in parts if 55 in p)
    assert 0 in holder


def test_quantity_skew_sizes_are_more_unequal_for_small_beta() -> None:
    def spread(beta: float) -> float:
        sizes = [
            np.array([p.size for p in quantity_skew_partition(2000, 6, beta=beta, seed=s)])
            for s in range(5)
        ]
        return float(np.mean([s.std() / s.mean() for s in sizes]))

    assert spread(0.2) > 3 * spread(100.0)


def test_quantity_skew_partition_is_complete_and_respects_min_samples() -> None:
    parts = quantity_skew_partition(300, 7, beta=0.05, seed=0, min_samples=20)
    _assert_valid(parts, 300, 7)
    assert min(p.size for p in parts) >= 20


@pytest.mark.parametrize(
    "call",
    [
        lambda: iid_partition(3, 4, seed=0),
        lambda: iid_partition(10, 0, seed=0),
        lambda: dirichlet_partition(_multi_labels(10), 2, alpha=0.0, seed=0),
        lambda: dirichlet_partition(_multi_labels(10), 2, alpha=float("nan"), seed=0),
        lambda: dirichlet_partition(_multi_labels(10), 11, alpha=1.0, seed=0),
        lambda: dirichlet_partition(np.zeros((2, 3, 4)), 2, alpha=1.0, seed=0),
        lambda: quantity_skew_partition(10, 3, beta=-1.0, seed=0),
        lambda: quantity_skew_partition(10, 3, beta=1.0, seed=0, min_samples=4),
        lambda: quantity_skew_partition(10, 3, beta=1.0, seed=0, min_samples=0),
    ],
)
def test_bad_arguments_raise_data_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError):
        call()


def _patient_ids(num_samples: int, seed: int = 0) -> np.ndarray:
    """1 to 10 studies per patient, a patient's studies scattered over the index range."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(num_samples), rng.integers(1, 11, size=num_samples))[:num_samples]
    return rng.permutation(ids)


def _assert_patients_not_split(parts: list[np.ndarray], patient_ids: np.ndarray) -> None:
    owners: dict[int, int] = {}
    for hospital, part in enumerate(parts):
        for patient in np.unique(patient_ids[part]).tolist():
            assert owners.setdefault(patient, hospital) == hospital, f"patient {patient} split"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_scheme_splits_a_patient_across_hospitals(seed: int) -> None:
    ids = _patient_ids(900, seed)
    labels = _multi_labels(900, seed)
    for parts in (
        iid_partition(900, 6, seed=seed, patient_ids=ids),
        dirichlet_partition(labels, 6, alpha=0.3, seed=seed, patient_ids=ids),
        dirichlet_partition(labels.argmax(axis=1), 6, alpha=0.3, seed=seed, patient_ids=ids),
        quantity_skew_partition(900, 6, beta=0.3, seed=seed, min_samples=30, patient_ids=ids),
    ):
        _assert_valid(parts, 900, 6)
        _assert_patients_not_split(parts, ids)


def test_patient_partitions_keep_their_shape_in_samples() -> None:
    ids = _patient_ids(2000)
    iid = iid_partition(2000, 5, seed=0, patient_ids=ids)
    assert max(p.size for p in iid) - min(p.size for p in iid) <= 10  # one patient at most
    skewed = quantity_skew_partition(2000, 5, beta=0.2, seed=0, min_samples=50, patient_ids=ids)
    assert min(p.size for p in skewed) >= 50
    sizes = np.array([p.size for p in skewed])
    assert sizes.std() / sizes.mean() > 0.3
    labels = _multi_labels(2000)
    alpha_small = dirichlet_partition(labels, 5, alpha=0.1, seed=0, patient_ids=ids)
    alpha_large = dirichlet_partition(labels, 5, alpha=100, seed=0, patient_ids=ids)
    assert _label_skew(labels, alpha_small) > 2 * _label_skew(labels, alpha_large)


def test_patient_partition_is_seeded_and_ids_do_not_change_the_plain_partition() -> None:
    ids = _patient_ids(300)
    first = iid_partition(300, 3, seed=5, patient_ids=ids)
    again = iid_partition(300, 3, seed=5, patient_ids=ids)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    # One sample per patient: still a valid, balanced iid partition.
    single = iid_partition(300, 3, seed=5, patient_ids=np.arange(300))
    _assert_valid(single, 300, 3)
    assert max(p.size for p in single) - min(p.size for p in single) <= 1


@pytest.mark.parametrize(
    "call",
    [
        lambda: iid_partition(10, 3, seed=0, patient_ids=np.zeros(10, dtype=np.int64)),
        lambda: iid_partition(10, 2, seed=0, patient_ids=np.zeros(9, dtype=np.int64)),
        lambda: iid_partition(10, 2, seed=0, patient_ids=np.zeros(10)),
        lambda: quantity_skew_partition(
            20, 2, beta=1.0, seed=0, min_samples=10, patient_ids=np.repeat([0, 1, 2], [15, 3, 2])
        ),
    ],
)
def test_patient_partitions_that_cannot_be_made_raise_data_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError):
        call()
