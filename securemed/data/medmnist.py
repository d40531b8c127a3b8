"""Load MedMNIST-layout ``.npz`` files (ChestMNIST, PneumoniaMNIST, ...) from a local path.

Nothing is downloaded: a user who has the files points SecureMed at them, and they come back in
the same shape and dtype as the synthetic data, (N, 1, H, W) float32 images in [0, 1] and
(N, C) float32 labels, so every model and job takes either without change.

The layout is the one the MedMNIST package writes: ``{train,val,test}_images`` as uint8
(N, H, W) grayscale or (N, H, W, 3) RGB, and ``{train,val,test}_labels`` as (N, C) multi-hot
(ChestMNIST) or (N, 1) class ids (the single-label data sets), which become one-hot.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from securemed.errors import DataError

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")

# ITU-R BT.601 luma weights: what a grayscale conversion of a clinical RGB image usually means.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class LabelInfo:
    """How a file's labels are laid out: multi-hot columns, or class ids made one-hot."""

    num_classes: int
    multi_label: bool


def read_label_info(path: str | Path) -> LabelInfo:
    """Inspect the labels of every split (cheap: images are not read).

    Single-label files are one-hot over ``max id + 1`` classes taken across all splits, so a
    class missing from one split still gets its column.

    Raises:
        DataError: missing file or key, or labels of an unknown shape.
    """
    with _open(path) as archive:
        raw = [_raw_labels(archive, split, path) for split in SPLITS]
    widths = {labels.shape[1] for labels in raw}
    if len(widths) != 1:
        raise DataError(f"{path}: splits disagree on the number of label columns: {widths}")
    if widths.pop() > 1:
        return LabelInfo(num_classes=raw[0].shape[1], multi_label=True)
    top = max((int(labels.max()) for labels in raw if labels.size), default=0)
    return LabelInfo(num_classes=max(top + 1, 2), multi_label=False)


def load_split(
    path: str | Path, split: Split, *, info: LabelInfo | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return one split as ``(images, labels)``: (N, 1, H, W) float32 in [0, 1], (N, C) float32.

    Args:
        path: the ``.npz`` file.
        split: ``"train"``, ``"val"`` or ``"test"``.
        info: label layout from :func:`read_label_info`; read from the file when omitted.

    Raises:
        DataError: missing file or keys, wrong dtypes or shapes, or lengths that disagree.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    info = info or read_label_info(path)
    with _open(path) as archive:
        images = to_float_images(_array(archive, f"{split}_images", path), name=f"{split}_images")
        raw = _raw_labels(archive, split, path)
    if images.shape[0] != raw.shape[0]:
        raise DataError(
            f"{path}: {split}_images has {images.shape[0]} images but {split}_labels has "
            f"{raw.shape[0]} rows; the file is corrupt or mixes splits"
        )
    return images, _to_targets(raw, info, name=f"{split}_labels")


def to_float_images(raw: np.ndarray, *, name: str = "images") -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, 3) -> float32 (N, 1, H, W) in [0, 1]; RGB -> luminance."""
    if raw.dtype != np.uint8:
        raise DataError(f"{name} must be uint8 as MedMNIST stores them, got {raw.dtype}")
    if raw.ndim == 4 and raw.shape[-1] == 3:
        gray = raw.astype(np.float32) @ _LUMA
    elif raw.ndim == 3:
        gray = raw.astype(np.float32)
    else:
        raise DataError(f"{name} must be (N, H, W) or (N, H, W, 3), got shape {raw.shape}")
    return (gray / 255.0)[:, None, :, :]


def _to_targets(raw: np.ndarray, info: LabelInfo, *, name: str) -> np.ndarray:
    if info.multi_label:
        if raw.size and not np.isin(raw, (0, 1)).all():
            raise DataError(f"{name}: multi-label columns must hold only 0 and 1")
        return raw.astype(np.float32)
    ids = raw[:, 0]
    if ids.size and (ids.min() < 0 or ids.max() >= info.num_classes):
        raise DataError(f"{name}: class ids must lie in [0, {info.num_classes})")
    return np.eye(info.num_classes, dtype=np.float32)[ids.astype(np.int64)]


def _open(path: str | Path) -> np.lib.npyio.NpzFile:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"no MedMNIST file at {file}; pass the path of a local .npz file")
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{file} is not a readable .npz file: {error}") from error


def _array(archive: np.lib.npyio.NpzFile, key: str, path: str | Path) -> np.ndarray:
    if key not in archive.files:
        raise DataError(
            f"{path} has no {key!r}; a MedMNIST file holds "
            "{train,val,test}_{images,labels}, found: " + ", ".join(sorted(archive.files))
        )
    try:
        return np.asarray(archive[key])
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot read {key!r}: {error}") from error


def _raw_labels(archive: np.lib.npyio.NpzFile, split: Split, path: str | Path) -> np.ndarray:
    labels = _array(archive, f"{split}_labels", path)
    if labels.ndim == 1:
        labels = labels[:, None]
    # Some exports store class ids as floats; accept them when they are whole numbers.
    whole_floats = (
        labels.ndim == 2
        and np.issubdtype(labels.dtype, np.floating)
        and bool(np.all(labels == np.round(labels)))
    )
    if whole_floats:
        return labels.astype(np.int64)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: {split}_labels must be integer (N, C) or (N, 1), "
            f"got {labels.dtype} {labels.shape}"
        )
    return labels
