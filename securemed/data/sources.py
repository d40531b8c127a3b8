"""Where a job's images come from, behind one protocol: synthetic films or a MedMNIST file.

Jobs and hospitals ask an :class:`ImageSource` for the labels of a split (to partition it), for
its patient ids (to keep a patient in one hospital and to make the patient the privacy unit),
and for the images of the indices they hold (to train on them). Sources are shipped to Ray actors,
so they are cheap to construct and to pickle: nothing heavy is computed or loaded until asked,
and caches are dropped from the pickled state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from securemed.data.medmnist import LabelInfo, load_split, read_label_info
from securemed.data.synthetic import SyntheticChestXRays, assign_patients
from securemed.errors import DataError

SourceSplit = Literal["train", "test"]

# Synthetic test films are drawn from indices at and above this offset, so they never overlap a
# training set of any size and stay the same films whatever train_samples is.
TEST_INDEX_OFFSET = 1 << 40


class ImageSource(Protocol):
    """A labelled image data set with a train and a test split."""

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def labels(self, split: SourceSplit) -> np.ndarray:
        """(N, C) float32 labels of every sample of ``split``."""
        ...

    def images(self, split: SourceSplit, indices: np.ndarray) -> np.ndarray:
        """(n, 1, S, S) float32 images in [0, 1] of the given positions of ``split``."""
        ...

    def patient_ids(self, split: SourceSplit) -> np.ndarray:
        """(N,) int64 patient id of every sample of ``split``; equal ids, same patient."""
        ...


class SyntheticSource:
    """Synthetic chest X-rays: train = generator indices [0, train_samples), test far above.

    Films belong to patients (:func:`securemed.data.synthetic.assign_patients`), one to ten
    studies each; test patients are never training patients (their ids start at
    ``TEST_INDEX_OFFSET``).
    """

    def __init__(
        self,
        *,
        train_samples: int,
        test_samples: int,
        image_size: int = 64,
        difficulty: float = 0.5,
        seed: int = 0,
    ) -> None:
        for name, value in (("train_samples", train_samples), ("test_samples", test_samples)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise DataError(f"{name} must be a positive integer, got {value!r}")
        if train_samples > TEST_INDEX_OFFSET:
            raise DataError(f"train_samples must be at most {TEST_INDEX_OFFSET}")
        self.generator = SyntheticChestXRays(
            image_size=image_size, difficulty=difficulty, seed=seed
        )
        self.sizes: dict[str, int] = {"train": int(train_samples), "test": int(test_samples)}
        self._labels: dict[str, np.ndarray] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.generator.class_names

    def labels(self, split: SourceSplit) -> np.ndarray:
        if split not in self._labels:
            self._labels[split] = self.generator.labels(self._generator_indices(split, None))
        return self._labels[split]

    def images(self, split: SourceSplit, indices: np.ndarray) -> np.ndarray:
        return self.generator.images(self._generator_indices(split, indices))

    def patient_ids(self, split: SourceSplit) -> np.ndarray:
        return assign_patients(
            _split_size(self.sizes, split),
            seed=self.generator.seed,
            first_id=TEST_INDEX_OFFSET if split == "test" else 0,
        )

    def _generator_indices(self, split: SourceSplit, indices: np.ndarray | None) -> np.ndarray:
        size = _split_size(self.sizes, split)
        positions = np.arange(size) if indices is None else _check_positions(indices, size)
        return positions + (TEST_INDEX_OFFSET if split == "test" else 0)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_labels": {}}


class MedMNISTSource:
    """A local MedMNIST ``.npz``: train = train + val, test = test.

    The federated jobs have no model-selection step that would use ``val``, and under DP every
    extra record lowers the noise each one needs, so ``val`` joins the training split; pass
    ``include_val=False`` to keep the published split for comparison with MedMNIST baselines.
    The file is read on first use, not on construction, and never pickled.

    MedMNIST files carry no patient ids (ChestMNIST drops those of ChestX-ray14), so
    :meth:`patient_ids` makes every image its own patient. Patient-level privacy on them is
    then record-level privacy: it does not protect a real patient with several images, and
    a patient's images may land in different hospitals.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        include_val: bool = True,
        class_names: tuple[str, ...] | None = None,
    ) -> None:
        self.path = Path(path)
        self.include_val = include_val
        self._class_names = tuple(class_names) if class_names is not None else None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._info: LabelInfo | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        info = self._label_info()
        if self._class_names is None:
            return tuple(f"class_{i}" for i in range(info.num_classes))
        if len(self._class_names) != info.num_classes:
            raise DataError(
                f"{self.path} has {info.num_classes} classes but {len(self._class_names)} "
                "class names were given"
            )
        return self._class_names

    def labels(self, split: SourceSplit) -> np.ndarray:
        return self._split(split)[1]

    def images(self, split: SourceSplit, indices: np.ndarray) -> np.ndarray:
        images = self._split(split)[0]
        return images[_check_positions(indices, images.shape[0])]

    def patient_ids(self, split: SourceSplit) -> np.ndarray:
        """One patient per image (the file has no patient ids; see the class docstring)."""
        return np.arange(self._split(split)[1].shape[0], dtype=np.int64)

    def _label_info(self) -> LabelInfo:
        if self._info is None:
            self._info = read_label_info(self.path)
        return self._info

    def _split(self, split: SourceSplit) -> tuple[np.ndarray, np.ndarray]:
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        if split not in self._cache:
            info = self._label_info()
            parts = [load_split(self.path, split, info=info)]
            if split == "train" and self.include_val:
                parts.append(load_split(self.path, "val", info=info))
            images = np.concatenate([p[0] for p in parts])
            labels = np.concatenate([p[1] for p in parts])
            self._cache[split] = (images, labels)
        return self._cache[split]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}


def _split_size(sizes: dict[str, int], split: str) -> int:
    if split not in sizes:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    return sizes[split]


def _check_positions(indices: np.ndarray, size: int) -> np.ndarray:
    positions = np.asarray(indices)
    if positions.ndim != 1 or (positions.size and not np.issubdtype(positions.dtype, np.integer)):
        raise DataError(
            f"indices must be a 1-D integer array, got {positions.dtype} {positions.shape}"
        )
    if positions.size and (positions.min() < 0 or positions.max() >= size):
        raise DataError(f"indices must lie in [0, {size}) for this split")
    return positions.astype(np.int64, copy=False)
