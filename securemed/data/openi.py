"""Real paired data in the Open-I / IU X-ray layout: a CSV of image path, findings, impression.

A user with the Indiana University chest X-ray collection (or any archive exported the same
way) points SecureMed at ``reports.csv`` with the columns ``image``, ``findings`` and
``impression``; image paths are relative to the CSV's folder. Everything is checked before
training starts: missing columns, missing or unreadable images, and reports with neither
section are refused with the row number (never the report text, which may hold PHI).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from securemed.errors import DataError

REQUIRED_COLUMNS = ("image", "findings", "impression")


@dataclass(frozen=True)
class PairedRecord:
    """One study: its image file and its report's two sections."""

    image: Path
    findings: str
    impression: str

    @property
    def text(self) -> str:
        return f"FINDINGS: {self.findings} IMPRESSION: {self.impression}"


def read_openi_csv(path: str | Path) -> list[PairedRecord]:
    """Read and check every row of an Open-I-layout CSV.

    Raises:
        DataError: the file is missing or lacks a column, an image does not exist, or a row
            has an empty report (both sections blank). Messages name rows, not contents.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"report CSV {path} does not exist") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path} lacks the column(s) {', '.join(missing)}; an Open-I CSV needs "
                f"{', '.join(REQUIRED_COLUMNS)}"
            )
        records = []
        for row_number, row in enumerate(reader, start=2):  # line 1 is the header
            image = path.parent / (row["image"] or "").strip()
            if not row["image"] or not image.is_file():
                raise DataError(f"{path}, row {row_number}: the image file does not exist")
            findings = (row["findings"] or "").strip()
            impression = (row["impression"] or "").strip()
            if not findings and not impression:
                raise DataError(f"{path}, row {row_number}: the report has no text")
            records.append(PairedRecord(image, findings, impression))
    if not records:
        raise DataError(f"{path} holds no studies")
    return records


def load_image(record: PairedRecord, size: int) -> np.ndarray:
    """The study's image as a (1, size, size) float32 array in [0, 1] (grayscale, resized)."""
    try:
        with Image.open(record.image) as image:
            grey = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError):
        raise DataError(f"{record.image.name} is not a readable image") from None
    return (np.asarray(grey, dtype=np.float32) / 255.0)[None]
