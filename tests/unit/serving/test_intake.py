"""Uploads become de-identified pixels, or a refusal with a stable reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import InputRejected
from securemed.phi.dicom import DicomDeidentifier
from securemed.serving.intake import FilmIntake

SECRET = b"k" * 32


@pytest.fixture(scope="module")
def intake() -> FilmIntake:
    return FilmIntake(DicomDeidentifier(SECRET), max_image_pixels=1_000_000)


def _film() -> np.ndarray:
    return SyntheticChestXRays(image_size=256, seed=1).images(np.arange(1))[0, 0]


def _encode(image: Image.Image, kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()


def test_a_png_is_decoded_to_unit_range_pixels_without_its_text_chunks(intake) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Patient", "Jane Roe")
    film = _film()
    data = io.BytesIO()
    Image.fromarray((film * 255).astype(np.uint8)).save(data, format="PNG", pnginfo=info)
    received = intake.receive(data.getvalue())
    assert received.kind == "png" and received.identifiers == () and received.patient_key is None
    assert received.pixels.dtype == np.float32 and received.pixels.shape == film.shape
    assert np.abs(received.pixels - film).max() <= 1 / 255 + 1e-6
    assert not any("Jane" in str(v) for v in vars(received).values())


def test_sixteen_bit_pngs_keep_their_depth(intake) -> None:
    values = (_film() * 65535).astype(np.uint16)
    received = intake.receive(_encode(Image.fromarray(values)))
    assert np.allclose(received.pixels, values / 65535.0, atol=1e-6)


def test_jpeg_is_accepted(intake) -> None:
    image = Image.fromarray((_film() * 255).astype(np.uint8))
    assert intake.receive(_encode(image, "JPEG")).kind == "jpeg"


def test_text_burned_into_a_png_is_blanked(intake) -> None:
    image = Image.fromarray((_film() * 255).astype(np.uint8))
    ImageDraw.Draw(image).text((10, 10), "DOE JANE 1961-03-04", fill=255)
    received = intake.receive(_encode(image))
    assert received.actions["burned_in_regions_blanked"] >= 1
    assert received.pixels[10:20, 10:100].max() <= received.pixels.min() + 1e-6


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_upload"),
        (b"plain text notes, not a film", "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "corrupt_image"),
    ],
)
def test_bad_uploads_are_refused_with_a_stable_reason(intake, data: bytes, reason: str) -> None:
    with pytest.raises(InputRejected) as caught:
        intake.receive(data)
    assert caught.value.reason == reason


def test_a_truncated_png_is_refused(intake) -> None:
    data = _encode(Image.fromarray((_film() * 255).astype(np.uint8)))
    with pytest.raises(InputRejected) as caught:
        intake.receive(data[: len(data) // 2])
    assert caught.value.reason == "corrupt_image"


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(intake) -> None:
    huge = _encode(Image.new("L", (2000, 1000)))
    with pytest.raises(InputRejected) as caught:
        intake.receive(huge)
    assert caught.value.reason == "image_too_large"


def test_a_dicom_declaring_more_pixels_than_allowed_is_refused_before_decoding() -> None:
    from tests.dicom_files import chest_xray_dicom

    small = FilmIntake(DicomDeidentifier(SECRET, max_pixels=100 * 100), max_image_pixels=10**4)
    with pytest.raises(InputRejected) as caught:
        small.receive(chest_xray_dicom())  # 256 x 256
    assert caught.value.reason == "image_too_large"


def test_a_dicom_is_deidentified_and_hands_back_its_identifiers(intake) -> None:
    from tests.dicom_files import PHI, chest_xray_dicom

    received = intake.receive(chest_xray_dicom())
    assert received.kind == "dicom" and received.patient_key
    assert PHI["PatientID"] in received.identifiers
    assert received.actions["uids_remapped"] > 0
    assert received.pixels.shape == (256, 256) and 0 <= received.pixels.min() <= 1
