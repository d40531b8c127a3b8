"""The Open-I / IU X-ray CSV layout, on small folders the tests write."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from securemed.data.openi import load_image, read_openi_csv
from securemed.errors import DataError


def _folder(tmp_path: Path, rows: list[dict[str, str]], images: int = 2) -> Path:
    (tmp_path / "images").mkdir()
    for i in range(images):
        pixels = (np.arange(40 * 30).reshape(40, 30) % 256).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / f"cxr{i}.png")
    path = tmp_path / "reports.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_rows_load_with_their_images(tmp_path: Path) -> None:
    path = _folder(
        tmp_path,
        [
            {"image": "images/cxr0.png", "findings": "No effusion.", "impression": "Normal."},
            {"image": "images/cxr1.png", "findings": "", "impression": "Small left effusion."},
        ],
    )
    records = read_openi_csv(path)
    assert [r.impression for r in records] == ["Normal.", "Small left effusion."]
    assert records[0].text == "FINDINGS: No effusion. IMPRESSION: Normal."
    image = load_image(records[0], 32)
    assert image.shape == (1, 32, 32) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"image": "images/cxr0.png", "findings": "Mr SMITH"}], "lacks the column"),
        ([{"image": "images/gone.png", "findings": "Mr SMITH", "impression": "y"}], "row 2"),
        ([{"image": "images/cxr0.png", "findings": " ", "impression": ""}], "no text"),
    ],
)
def test_bad_rows_are_refused_by_row_without_their_text(tmp_path, rows, message) -> None:
    path = _folder(tmp_path, rows)
    with pytest.raises(DataError, match=message) as refused:
        read_openi_csv(path)
    assert "SMITH" not in str(refused.value)  # report text may hold PHI: never in a message


def test_a_missing_csv_or_unreadable_image_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_openi_csv(tmp_path / "none.csv")
    path = _folder(tmp_path, [{"image": "bad.png", "findings": "a", "impression": "b"}], 0)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (record,) = read_openi_csv(path)
    with pytest.raises(DataError, match="not a readable image"):
        load_image(record, 32)
