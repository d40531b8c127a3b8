"""De-identification of DICOM headers (PS3.15 Annex E Basic Profile) and of burned-in text."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import ConfigError
from securemed.phi.dicom import DicomDeidentifier
from tests.dicom_files import (
    DX_CLASS,
    FRAME_UID,
    NESTED_ID,
    PHI,
    PRIVATE_VALUE,
    SERIES_UID,
    SOP_UID,
    STUDY_UID,
    UNLISTED_TEXT,
    chest_xray_dicom,
)

SECRET = b"test-secret-for-deidentification-0001"


def draw_text(
    pixels: np.ndarray, lines: list[tuple[tuple[int, int], str]], size: int
) -> np.ndarray:
    """Burn ``lines`` into ``pixels`` at the maximum stored value, in place.

    Returns the mask of pixels at least a quarter covered by ink (anti-aliasing leaves a faint
    fringe that carries no legible text).
    """
    layer = Image.new("L", (pixels.shape[1], pixels.shape[0]), 0)
    draw = ImageDraw.Draw(layer)
    for xy, text in lines:
        draw.text(xy, text, fill=255, font=ImageFont.load_default(size=size))
    alpha = np.asarray(layer, dtype=np.float64) / 255.0
    pixels[:] = np.round(pixels + (4095 - pixels) * alpha).astype(pixels.dtype)
    return alpha >= 0.25


@pytest.fixture(scope="module")
def deidentifier() -> DicomDeidentifier:
    return DicomDeidentifier(SECRET)


def test_no_identifying_value_survives_anywhere_in_the_written_file(
    deidentifier: DicomDeidentifier,
) -> None:
    original = chest_xray_dicom()
    out = deidentifier.deidentify(original).to_bytes()

    secrets = [*PHI.values(), NESTED_ID, PRIVATE_VALUE, UNLISTED_TEXT, "Johnathan", "Quincy"]
    secrets += [STUDY_UID, SERIES_UID, SOP_UID, FRAME_UID, "20240315"]
    for value in secrets:
        assert value.encode() in original  # the test file really carried it
        assert value.encode() not in out, "an identifying value survived de-identification"


def test_identifiers_hold_names_in_readable_orders_and_the_ids(
    deidentifier: DicomDeidentifier,
) -> None:
    study = deidentifier.deidentify(chest_xray_dicom())

    for expected in (
        "Doe^Johnathan^Quincy",
        "Johnathan Doe",
        "Doe, Johnathan",
        "Johnathan Quincy Doe",
        "Chidinma Okafor",
        "MRN-4471902",
        "OLD-MRN-339201",
        NESTED_ID,
        "ACC99812377",
        "St Bartholomew Infirmary",
        "STU-55102",
        "XR-ROOM-7B",
    ):
        assert expected in study.identifiers
    assert "Johnathan" not in repr(study) and "MRN" not in repr(study)


def test_uids_are_remapped_consistently_within_a_study_and_in_nested_sequences(
    deidentifier: DicomDeidentifier,
) -> None:
    first_uid, second_uid = SOP_UID, "1.2.826.0.1.3680043.99.1.1.2.4"
    first = deidentifier.deidentify(chest_xray_dicom(sop_uid=first_uid)).dataset
    second = deidentifier.deidentify(
        chest_xray_dicom(sop_uid=second_uid, referenced_sop=first_uid)
    ).dataset

    assert first.StudyInstanceUID == second.StudyInstanceUID != STUDY_UID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID != FRAME_UID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.StudyInstanceUID.startswith("2.25.") and len(first.StudyInstanceUID) <= 64
    # the second image's reference, two sequences deep, still points at the first image
    reference = second.ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert reference.SourceImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert first.SOPClassUID == DX_CLASS  # standard UIDs are not identifying


def test_another_secret_gives_unrelated_uids_dates_and_patient_key(
    deidentifier: DicomDeidentifier,
) -> None:
    data = chest_xray_dicom()
    ours = deidentifier.deidentify(data)
    theirs = DicomDeidentifier(b"another-secret-entirely-0002").deidentify(data)

    assert ours.dataset.StudyInstanceUID != theirs.dataset.StudyInstanceUID
    assert ours.patient_key != theirs.patient_key
    assert ours.dataset.PatientID != theirs.dataset.PatientID
    assert deidentifier.deidentify(data).patient_key == ours.patient_key


def test_dates_shift_by_one_offset_per_patient_keeping_intervals(
    deidentifier: DicomDeidentifier,
) -> None:
    march = deidentifier.deidentify(chest_xray_dicom(study_date="20240315")).dataset
    april = deidentifier.deidentify(
        chest_xray_dicom(study_date="20240420", sop_uid="1.2.826.0.1.3680043.99.7")
    ).dataset
    stranger = deidentifier.deidentify(
        chest_xray_dicom(study_date="20240315", patient_id="MRN-0000001")
    ).dataset

    def day(value: str) -> np.datetime64:
        return np.datetime64(f"{value[:4]}-{value[4:6]}-{value[6:8]}")

    assert day(april.StudyDate) - day(march.StudyDate) == np.timedelta64(36, "D")
    assert 1 <= (day("20240315") - day(march.StudyDate)).astype(int) <= 365
    assert march.StudyDate != stranger.StudyDate  # another patient, another offset
    assert march.AcquisitionDateTime == march.StudyDate + "101502.123"
    assert march.StudyTime == "101500"  # whole-day shift keeps the time of day
    assert march["PatientBirthDate"].is_empty
    assert march.LongitudinalTemporalInformationModified == "MODIFIED"


def test_private_tags_overlays_and_unlisted_text_are_removed_safe_attributes_kept(
    deidentifier: DicomDeidentifier,
) -> None:
    study = deidentifier.deidentify(chest_xray_dicom())
    ds = study.dataset

    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert not any(0x6000 <= elem.tag.group <= 0x60FF for elem in ds.iterall())
    assert "VisitComments" not in ds and "StudyDescription" not in ds
    assert "OtherPatientIDsSequence" not in ds and "InstitutionName" not in ds
    assert (ds.Modality, ds.BodyPartExamined, ds.ViewPosition) == ("DX", "CHEST", "PA")
    assert "PatientAge" not in ds and ds["PatientSex"].is_empty
    assert study.actions["private_tags_removed"] == 2  # the creator and its element
    assert study.actions["uids_remapped"] >= 6
    assert study.actions["dates_shifted"] == 4
    assert study.actions["removed"] >= 12


def test_the_header_records_that_identity_was_removed_and_how(
    deidentifier: DicomDeidentifier,
) -> None:
    ds = deidentifier.deidentify(chest_xray_dicom()).dataset

    assert ds.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107"}
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    assert ds.DeidentificationMethod
    assert ds.PatientName.family_name == "ANON" and ds.PatientID.startswith("SM")


def test_patient_characteristics_are_kept_with_ages_over_89_capped_when_asked() -> None:
    keeping = DicomDeidentifier(SECRET, retain_patient_characteristics=True)

    old = keeping.deidentify(chest_xray_dicom(age="093Y")).dataset
    young = keeping.deidentify(chest_xray_dicom(age="045Y")).dataset

    assert (old.PatientAge, old.PatientSex) == ("090Y", "M")
    assert young.PatientAge == "045Y"
    assert "113108" in {item.CodeValue for item in old.DeidentificationMethodCodeSequence}


def test_output_reads_back_with_the_same_pixels_where_there_is_no_text(
    deidentifier: DicomDeidentifier,
) -> None:
    original = chest_xray_dicom()
    study = deidentifier.deidentify(original)

    reread = pydicom.dcmread(io.BytesIO(study.to_bytes()))
    before = pydicom.dcmread(io.BytesIO(original)).pixel_array
    assert study.actions["burned_in_regions_blanked"] == 0
    np.testing.assert_array_equal(reread.pixel_array, before)
    assert reread.PatientID == study.dataset.PatientID
    assert reread.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_burned_in_text_is_blanked_in_the_pixels_and_in_the_written_file(
    deidentifier: DicomDeidentifier,
) -> None:
    film = SyntheticChestXRays(image_size=256, seed=11)
    clean = np.round(film.render(film.case(0)) * 4095).astype(np.uint16)
    marked = clean.copy()
    ink = draw_text(marked, [((4, 4), "DOE^JOHNATHAN MRN-4471902"), ((120, 236), "15/03/2024")], 10)
    touched = marked != clean

    study = deidentifier.deidentify(chest_xray_dicom(pixels=marked, burned_in=True))

    written = pydicom.dcmread(io.BytesIO(study.to_bytes())).pixel_array
    assert study.actions["burned_in_regions_blanked"] >= 2
    assert (written[ink] == written.min()).mean() > 0.95
    assert (study.pixels[ink] <= study.pixels.min() + 1e-6).mean() > 0.95
    assert (written[~touched] != clean[~touched]).mean() < 0.05
    assert study.dataset.BurnedInAnnotation == "YES"  # a heuristic does not certify clean


def test_pydicom_sample_files_lose_their_identifiers(deidentifier: DicomDeidentifier) -> None:
    path = get_testdata_file("CT_small.dcm")
    original = pydicom.dcmread(path)
    with open(path, "rb") as handle:
        study = deidentifier.deidentify(handle.read())
    out = study.to_bytes()

    for keyword in ("PatientName", "PatientID", "InstitutionName", "StudyInstanceUID"):
        value = str(original.data_element(keyword).value)
        assert value.encode() not in out
    assert str(original.PatientName) in study.identifiers
    assert study.actions["private_tags_removed"] > 100


def test_secret_must_be_key_material() -> None:
    with pytest.raises(ConfigError, match=r"os\.urandom"):
        DicomDeidentifier(b"short")
    with pytest.raises(ConfigError):
        DicomDeidentifier(SECRET, date_shift_days_max=0)
