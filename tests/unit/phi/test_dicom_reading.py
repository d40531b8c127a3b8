"""Reading DICOM pixels for the report model, and refusing what cannot be served."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from securemed.errors import InputRejected
from securemed.phi.dicom import DicomDeidentifier, looks_like_dicom

NAME = "Nakamura^Hiroshi"
PATIENT_ID = "PID-88120447"
INSTITUTION = "Riverside Chest Clinic"


def radiograph(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    with_pixels: bool = True,
) -> bytes:
    """A minimal CR image around ``stored`` (uint16), with a little PHI in the header."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.77.5"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.77.1"
    ds.Modality = "CR"
    ds.PatientName = NAME
    ds.PatientID = PATIENT_ID
    ds.InstitutionName = INSTITUTION
    ds.StudyDate = "20230708"
    if with_pixels:
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.PixelData = stored.astype("<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ramp() -> np.ndarray:
    return np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (40, 1))  # 40 x 100, 0..990


def sample(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def deidentifier() -> DicomDeidentifier:
    return DicomDeidentifier(b"reading-tests-secret-000000001", detect_burned_in_text=False)


def test_pixels_are_float32_in_unit_range_through_the_window(
    deidentifier: DicomDeidentifier,
) -> None:
    pixels = deidentifier.deidentify(radiograph(ramp(), window=(500, 401))).pixels

    assert pixels.dtype == np.float32 and pixels.shape == (40, 100)
    assert pixels[0, 0] == 0.0 and pixels[0, -1] == 1.0  # outside the window: clipped
    # PS3.3 C.11.2.1.2: y = ((x - (c - 0.5)) / (w - 1) + 0.5), for x = 500
    assert pixels[0, 50] == pytest.approx((500 - 499.5) / 400 + 0.5)


def test_rescale_comes_before_the_window(deidentifier: DicomDeidentifier) -> None:
    pixels = deidentifier.deidentify(
        radiograph(ramp(), window=(0, 1001), rescale=(1.0, -500.0))
    ).pixels

    assert pixels[0, 50] == pytest.approx((0 - (-0.5)) / 1000 + 0.5)


def test_without_a_window_pixels_are_scaled_min_to_max(deidentifier: DicomDeidentifier) -> None:
    pixels = deidentifier.deidentify(radiograph(ramp())).pixels

    np.testing.assert_allclose(pixels[0], np.arange(100) / 99, rtol=1e-6)


def test_monochrome1_is_inverted(deidentifier: DicomDeidentifier) -> None:
    normal = deidentifier.deidentify(radiograph(ramp())).pixels
    inverse = deidentifier.deidentify(radiograph(ramp(), photometric="MONOCHROME1")).pixels

    np.testing.assert_allclose(inverse, 1.0 - normal, atol=1e-6)


@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_padded.dcm"],
)
def test_other_encodings_read_like_the_explicit_little_endian_file(
    deidentifier: DicomDeidentifier, name: str
) -> None:
    reference = deidentifier.deidentify(sample("MR_small.dcm"))
    study = deidentifier.deidentify(sample(name))

    np.testing.assert_allclose(study.pixels, reference.pixels, atol=1e-6)
    assert looks_like_dicom(study.to_bytes())


def test_plain_images_and_random_bytes_are_not_dicom(deidentifier: DicomDeidentifier) -> None:
    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(png, format="PNG")
    rng = np.random.default_rng(0)

    for data in (png.getvalue(), rng.bytes(4096), b"", b"DICM" * 40, sample("no_meta.dcm")):
        with pytest.raises(InputRejected) as caught:
            deidentifier.deidentify(data)
        assert caught.value.reason == "not_dicom"
    assert not looks_like_dicom(png.getvalue())


def test_a_file_cut_anywhere_inside_an_element_is_truncated(
    deidentifier: DicomDeidentifier,
) -> None:
    data = radiograph(ramp())
    name_at = data.index(NAME.encode())
    cuts = [140, 200, name_at + 3, len(data) // 2, len(data) - 2000, len(data) - 1]

    for cut in cuts:
        with pytest.raises(InputRejected) as caught:
            deidentifier.deidentify(data[:cut])
        assert caught.value.reason == "truncated_dicom", cut
        assert NAME not in str(caught.value) and PATIENT_ID not in str(caught.value)


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "rtplan_truncated.dcm"])
def test_pydicom_truncated_samples_are_truncated(
    deidentifier: DicomDeidentifier, name: str
) -> None:
    with pytest.raises(InputRejected) as caught:
        deidentifier.deidentify(sample(name))
    assert caught.value.reason == "truncated_dicom"


def test_a_compressed_file_cut_in_its_fragments_is_truncated(
    deidentifier: DicomDeidentifier,
) -> None:
    data = sample("MR_small_RLE.dcm")
    with pytest.raises(InputRejected) as caught:
        deidentifier.deidentify(data[: len(data) - 100])
    assert caught.value.reason == "truncated_dicom"


@pytest.mark.parametrize("data", [radiograph(ramp(), with_pixels=False), sample("rtplan.dcm")])
def test_a_dataset_without_pixel_data_is_refused(
    deidentifier: DicomDeidentifier, data: bytes
) -> None:
    with pytest.raises(InputRejected) as caught:
        deidentifier.deidentify(data)
    assert caught.value.reason == "no_pixel_data"
    assert NAME not in str(caught.value) and INSTITUTION not in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_jpeg_ls_lossless.dcm",  # no JPEG-LS decoder installed
        "examples_rgb_color.dcm",  # colour
        "rtdose.dcm",  # fifteen frames
        "JPEG-lossy.dcm",  # 12-bit JPEG, which Pillow cannot decode
        "liver_1frame.dcm",  # one bit per pixel
    ],
)
def test_what_cannot_be_served_is_unsupported_without_quoting_the_header(
    deidentifier: DicomDeidentifier, name: str
) -> None:
    with pytest.raises(InputRejected) as caught:
        deidentifier.deidentify(sample(name))

    assert caught.value.reason == "unsupported_dicom"
    message = str(caught.value)
    assert "CompressedSamples" not in message and "1.2." not in message
    assert caught.value.__cause__ is None or isinstance(caught.value.__cause__, InputRejected)


def test_random_secrets_need_no_configuration() -> None:
    study = DicomDeidentifier(os.urandom(32)).deidentify(radiograph(ramp()))
    assert study.dataset.PatientIdentityRemoved == "YES"
