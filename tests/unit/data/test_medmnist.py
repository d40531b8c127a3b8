"""MedMNIST .npz loading and the image sources jobs read from."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from securemed.data.medmnist import load_split, read_label_info
from securemed.data.sources import TEST_INDEX_OFFSET, MedMNISTSource, SyntheticSource
from securemed.data.synthetic import FINDINGS, SyntheticChestXRays
from securemed.errors import DataError

SIZES = {"train": 6, "val": 2, "test": 3}


def _write(path: Path, *, rgb: bool, multi_label: bool, **overrides: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for split, n in SIZES.items():
        shape = (n, 28, 28, 3) if rgb else (n, 28, 28)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        if multi_label:
            arrays[f"{split}_labels"] = rng.integers(0, 2, size=(n, 14), dtype=np.uint8)
        else:
            arrays[f"{split}_labels"] = (np.arange(n) % 3)[:, None].astype(np.uint8)
    arrays.update(overrides)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_multi_label_grayscale_file_loads_as_float_images_and_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "chest.npz", rgb=False, multi_label=True)
    images, labels = load_split(path, "train")
    raw = np.load(path)
    assert images.shape == (6, 1, 28, 28)
    assert images.dtype == labels.dtype == np.float32
    np.testing.assert_allclose(images[:, 0] * 255.0, raw["train_images"], atol=1e-3)
    np.testing.assert_array_equal(labels, raw["train_labels"])
    assert read_label_info(path).multi_label


def test_single_label_rgb_file_gives_luminance_and_one_hot(tmp_path: Path) -> None:
    path = _write(tmp_path / "derma.npz", rgb=True, multi_label=False)
    images, labels = load_split(path, "test")
    raw = np.load(path)["test_images"].astype(np.float32)
    luminance = (0.299 * raw[..., 0] + 0.587 * raw[..., 1] + 0.114 * raw[..., 2]) / 255.0
    assert images.shape == (3, 1, 28, 28)
    np.testing.assert_allclose(images[:, 0], luminance, atol=1e-5)
    np.testing.assert_array_equal(labels, np.eye(3, dtype=np.float32)[[0, 1, 2]])
    assert images.min() >= 0.0
    assert images.max() <= 1.0


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no MedMNIST file"):
        load_split(tmp_path / "absent.npz", "train")


def test_file_that_is_not_an_npz_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable"):
        load_split(path, "train")


def test_missing_key_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="train_labels"):
        load_split(path, "train")


def test_mismatched_lengths_raise_data_error(tmp_path: Path) -> None:
    short = np.zeros((5, 14), np.uint8)
    path = _write(tmp_path / "bad.npz", rgb=False, multi_label=True, train_labels=short)
    with pytest.raises(DataError, match="6 images but"):
        load_split(path, "train")


def test_float_images_are_refused(tmp_path: Path) -> None:
    floats = np.zeros((6, 28, 28), np.float32)
    path = _write(tmp_path / "float.npz", rgb=False, multi_label=True, train_images=floats)
    with pytest.raises(DataError, match="uint8"):
        load_split(path, "train")


def test_medmnist_source_trains_on_train_plus_val_and_tests_on_test(tmp_path: Path) -> None:
    path = _write(tmp_path / "chest.npz", rgb=False, multi_label=True)
    source = MedMNISTSource(path)
    assert source.labels("train").shape == (8, 14)
    assert source.labels("test").shape == (3, 14)
    assert source.images("test", np.array([2, 0])).shape == (2, 1, 28, 28)
    assert len(source.class_names) == 14
    assert MedMNISTSource(path, include_val=False).labels("train").shape == (6, 14)


def test_medmnist_source_is_lazy_and_pickles_without_its_arrays(tmp_path: Path) -> None:
    path = _write(tmp_path / "chest.npz", rgb=False, multi_label=True)
    MedMNISTSource(tmp_path / "not-yet-there.npz")  # constructing reads nothing
    source = MedMNISTSource(path)
    source.images("train", np.arange(8))
    shipped = pickle.dumps(source)
    assert len(shipped) < 1000
    np.testing.assert_array_equal(pickle.loads(shipped).labels("train"), source.labels("train"))


def test_synthetic_source_test_split_never_overlaps_train() -> None:
    source = SyntheticSource(train_samples=10, test_samples=4, seed=2)
    generator = SyntheticChestXRays(seed=2)
    assert source.class_names == FINDINGS
    np.testing.assert_array_equal(source.labels("train"), generator.labels(np.arange(10)))
    expected = generator.images(TEST_INDEX_OFFSET + np.array([1, 3]))
    np.testing.assert_array_equal(source.images("test", np.array([1, 3])), expected)
    # The test films stay the same whatever the size of the training set.
    bigger = SyntheticSource(train_samples=50, test_samples=4, seed=2)
    np.testing.assert_array_equal(bigger.labels("test"), source.labels("test"))


def test_synthetic_source_pickles_small_and_refuses_out_of_range_indices() -> None:
    source = SyntheticSource(train_samples=100, test_samples=10)
    source.labels("train")
    assert len(pickle.dumps(source)) < 1000
    with pytest.raises(DataError):
        source.images("train", np.array([100]))
    with pytest.raises(DataError):
        SyntheticSource(train_samples=0, test_samples=10)


def test_synthetic_source_groups_films_by_patient_and_keeps_test_patients_apart() -> None:
    source = SyntheticSource(train_samples=200, test_samples=40, seed=2)
    train, test = source.patient_ids("train"), source.patient_ids("test")
    assert train.shape == (200,) and test.shape == (40,) and train.dtype == np.int64
    np.testing.assert_array_equal(
        train, SyntheticSource(train_samples=200, test_samples=5, seed=2).patient_ids("train")
    )
    assert np.unique(train).size < 150  # patients with several films
    assert not set(train.tolist()) & set(test.tolist())


def test_medmnist_source_makes_every_image_its_own_patient(tmp_path: Path) -> None:
    source = MedMNISTSource(_write(tmp_path / "chest.npz", rgb=False, multi_label=True))
    np.testing.assert_array_equal(source.patient_ids("train"), np.arange(8))  # train + val
    np.testing.assert_array_equal(source.patient_ids("test"), np.arange(3))
    assert source.patient_ids("train").dtype == np.int64
