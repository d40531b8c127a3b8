"""Chest X-ray DICOM files full of PHI, written by tests (no real patient data exists here)."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from securemed.data.synthetic import SyntheticChestXRays

DX_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation

PHI = {
    "PatientName": "Doe^Johnathan^Quincy",
    "PatientID": "MRN-4471902",
    "PatientBirthDate": "19610304",
    "AccessionNumber": "ACC99812377",
    "InstitutionName": "St Bartholomew Infirmary",
    "InstitutionAddress": "12 Harbour Road, Kingsport",
    "ReferringPhysicianName": "Okafor^Chidinma",
    "PerformingPhysicianName": "Vasquez^Marisol",
    "OperatorsName": "Lindqvist^Astrid",
    "StationName": "XR-ROOM-7B",
    "DeviceSerialNumber": "SN-88123-XQ",
    "StudyID": "STU-55102",
    "OtherPatientIDs": "OLD-MRN-339201",
    "StudyDescription": "CHEST PA Johnathan",
    "ImageComments": "patient anxious, wife Marguerite present",
}
NESTED_ID = "NHS-943-476-5919"
PRIVATE_VALUE = "private copy of Quincy"
UNLISTED_TEXT = "visit arranged by daughter Evangeline"
STUDY_UID = "1.2.826.0.1.3680043.99.1.1"
SERIES_UID = "1.2.826.0.1.3680043.99.1.1.2"
SOP_UID = "1.2.826.0.1.3680043.99.1.1.2.3"
FRAME_UID = "1.2.826.0.1.3680043.99.1.1.9"


def chest_xray_dicom(
    *,
    pixels: np.ndarray | None = None,
    sop_uid: str = SOP_UID,
    study_uid: str = STUDY_UID,
    patient_id: str = PHI["PatientID"],
    study_date: str = "20240315",
    referenced_sop: str = "1.2.826.0.1.3680043.99.1.1.2.1",
    burned_in: bool = False,
    age: str = "063Y",
) -> bytes:
    """A DX chest radiograph full of PHI, private tags, nested UIDs and an overlay."""
    if pixels is None:
        film = SyntheticChestXRays(image_size=256, seed=11).render(
            SyntheticChestXRays(image_size=256, seed=11).case(0)
        )
        pixels = np.round(film * 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = DX_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FRAME_UID
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.PatientID = patient_id
    ds.PatientSex = "M"
    ds.PatientAge = age
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = "101500"
    ds.AcquisitionDateTime = study_date + "101502.123"
    ds.VisitComments = UNLISTED_TEXT
    other = Dataset()
    other.PatientID = NESTED_ID
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    inner = Dataset()
    inner.ReferencedSOPClassUID = DX_CLASS
    inner.ReferencedSOPInstanceUID = referenced_sop
    outer = Dataset()
    outer.ReferencedSOPClassUID = DX_CLASS
    outer.ReferencedSOPInstanceUID = referenced_sop
    outer.SourceImageSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([outer])
    block = ds.private_block(0x0029, "ACME RADIOLOGY 1.0", create=True)
    block.add_new(0x10, "LO", PRIVATE_VALUE)
    ds.add_new(0x60000010, "US", pixels.shape[0])  # an overlay plane's rows
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.PixelData = pixels.astype("<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
