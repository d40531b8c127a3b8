"""De-identify a DICOM image and read its pixels for the report model.

A clinician uploads a chest X-ray as DICOM; before anything else sees it, this module parses it
defensively, removes protected health information from the header and from the pixels, and
hands back the image as the report model wants it (grayscale float32 in [0, 1]).

**Profile.** It follows DICOM PS3.15 Annex E, the *Basic Application Level Confidentiality
Profile* (code 113100), with these options:

* *Retain Longitudinal Temporal Information with Modified Dates* (113107): every date (DA) and
  the date part of every date-time (DT) is moved back by a whole number of days derived from the
  secret and the patient, so intervals within one patient survive and dates across patients do
  not line up. Because the shift is whole days, times of day (TM) are kept as they are.
* *Retain Patient Characteristics* (113108), only when asked for
  (``retain_patient_characteristics=True``): sex, age, size, weight and pregnancy status are
  kept; an age over 89 years is written as ``090Y`` (the HIPAA Safe Harbor rule).

The profile's attribute table is encoded as data (:data:`PROFILE_ACTIONS`) for the identifying
rows: names, IDs, addresses, institutions, physicians and operators, device identity, accession
and study IDs, free-text descriptions and comments. Its codes are applied as: ``X`` remove,
``Z`` empty value, ``D`` consistent dummy (the patient's name and ID become a keyed pseudonym),
``U`` UID remapped, ``C`` date shifted, ``K`` kept. Beyond the table, as the profile requires:
private attributes, curves (50xx) and overlays (60xx) are removed, and every UID outside the
DICOM root (1.2.840.10008) is remapped, at any depth of nested sequences and in the file meta.
A remapped UID is ``2.25.`` followed by 128 bits of an HMAC of the original, so the same input
UID maps to the same output UID under the same secret (two images of one study stay one study)
and to an unrelated one under another secret.

**Clean by allow-list.** The table cannot list every attribute a modality might fill in, so
whatever is left after it is judged by value representation: numbers and times are kept, dates
shifted, UIDs remapped, sequences walked; a text-valued attribute (AE, AS, CS, LO, LT, PN, SH,
ST, UC, UR, UT) or a binary one (OB, OW, UN...) survives only if its keyword is in
:data:`SAFE_KEYWORDS` (image pixel description, modality, view, body part, codes...).

**Pixels.** Compressed images are decoded with the plugins installed (Pillow handles JPEG
baseline/extended and JPEG 2000 here; pydicom itself handles RLE and deflate); the output is
always written uncompressed (Explicit VR Little Endian). Text burned into the pixels is found
and blanked by :mod:`securemed.phi.burned_in`, in the written pixel data as well as in the
returned array. ``BurnedInAnnotation`` stays ``YES`` when it was ``YES`` or text was found: the
detector is a heuristic, so the Clean Pixel Data option (113101) is not claimed.

**Refusals** are :class:`~securemed.errors.InputRejected` with a stable reason:
``not_dicom``, ``truncated_dicom``, ``no_pixel_data``, ``unsupported_dicom`` (a compression
with no decoder installed, colour, more than one frame, unusual bit depths). Messages say what
to send instead and never quote a value from the file. pydicom's own warnings can quote values,
so they are silenced while a file is handled, and the ``pydicom`` logger's messages are
withheld once a de-identifier exists.

What it deliberately does not do: it keeps no mapping from pseudonyms back to patients (the
``identifiers`` of a study live in memory only, for the text anonymizer), it does not
de-identify structured reports or multi-frame objects (they are refused), and it does not
check that the remaining pixels are free of identity: see :mod:`securemed.phi.burned_in` for
the detector's limits.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pydicom
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi, get_decoder
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import PersonName

from securemed.errors import ConfigError, InputRejected
from securemed.phi.burned_in import TextRegion, blank_regions, find_text_regions

logger = logging.getLogger(__name__)

__all__ = [
    "PROFILE_ACTIONS",
    "SAFE_KEYWORDS",
    "DeidentifiedStudy",
    "DicomDeidentifier",
    "looks_like_dicom",
]

# ----------------------------------------------------------------------------- the profile

REMOVE, EMPTY, DUMMY, REMAP, SHIFT, KEEP = "X", "Z", "D", "U", "C", "K"

# PS3.15 Table E.1-1, the identifying rows, as the Basic Profile with the Modified Dates option
# resolves them (a row "X/Z" is written as the stricter action the profile allows). Dates and
# date-times not listed here are shifted as well; a date listed as X or Z is one the option
# does not retain (birth date).
PROFILE_ACTIONS: dict[str, str] = {
    # Patient identity
    "PatientName": DUMMY,
    "PatientID": DUMMY,
    "IssuerOfPatientID": REMOVE,
    "OtherPatientIDs": REMOVE,
    "OtherPatientNames": REMOVE,
    "OtherPatientIDsSequence": REMOVE,
    "PatientBirthName": REMOVE,
    "PatientMotherBirthName": REMOVE,
    "PatientBirthDate": EMPTY,
    "PatientBirthTime": REMOVE,
    "PatientSex": EMPTY,
    "PatientAge": REMOVE,
    "PatientSize": REMOVE,
    "PatientWeight": REMOVE,
    "PregnancyStatus": REMOVE,
    "PatientAddress": REMOVE,
    "PatientTelephoneNumbers": REMOVE,
    "CountryOfResidence": REMOVE,
    "RegionOfResidence": REMOVE,
    "MedicalRecordLocator": REMOVE,
    "MilitaryRank": REMOVE,
    "BranchOfService": REMOVE,
    "EthnicGroup": REMOVE,
    "Occupation": REMOVE,
    "PatientReligiousPreference": REMOVE,
    "PatientInsurancePlanCodeSequence": REMOVE,
    "ReferencedPatientSequence": REMOVE,
    "PatientComments": REMOVE,
    "AdditionalPatientHistory": REMOVE,
    "PatientState": REMOVE,
    "Allergies": REMOVE,
    "MedicalAlerts": REMOVE,
    "SmokingStatus": REMOVE,
    "SpecialNeeds": REMOVE,
    "LastMenstrualDate": REMOVE,
    "CurrentPatientLocation": REMOVE,
    "PatientInstitutionResidence": REMOVE,
    "PatientTransportArrangements": REMOVE,
    # Visit and request
    "AdmissionID": REMOVE,
    "IssuerOfAdmissionID": REMOVE,
    "AdmittingDate": REMOVE,
    "AdmittingTime": REMOVE,
    "AdmittingDiagnosesDescription": REMOVE,
    "ServiceEpisodeID": REMOVE,
    "ServiceEpisodeDescription": REMOVE,
    "AccessionNumber": EMPTY,
    "StudyID": EMPTY,
    "RequestAttributesSequence": REMOVE,
    "RequestedProcedureID": REMOVE,
    "RequestedProcedureDescription": REMOVE,
    "ReasonForStudy": REMOVE,
    "ReasonForTheRequestedProcedure": REMOVE,
    "RequestingService": REMOVE,
    "ScheduledProcedureStepID": REMOVE,
    "ScheduledProcedureStepDescription": REMOVE,
    "ScheduledStationName": REMOVE,
    "PerformedProcedureStepID": REMOVE,
    "PerformedProcedureStepDescription": REMOVE,
    "PerformedStationName": REMOVE,
    "PerformedLocation": REMOVE,
    "CommentsOnThePerformedProcedureStep": REMOVE,
    "ReferencedPerformedProcedureStepSequence": REMOVE,
    "ReferencedStudySequence": REMOVE,
    # People
    "ReferringPhysicianName": EMPTY,
    "ReferringPhysicianAddress": REMOVE,
    "ReferringPhysicianTelephoneNumbers": REMOVE,
    "ReferringPhysicianIdentificationSequence": REMOVE,
    "ConsultingPhysicianName": REMOVE,
    "ConsultingPhysicianIdentificationSequence": REMOVE,
    "PhysiciansOfRecord": REMOVE,
    "PhysiciansOfRecordIdentificationSequence": REMOVE,
    "PerformingPhysicianName": REMOVE,
    "PerformingPhysicianIdentificationSequence": REMOVE,
    "NameOfPhysiciansReadingStudy": REMOVE,
    "PhysiciansReadingStudyIdentificationSequence": REMOVE,
    "RequestingPhysician": REMOVE,
    "OperatorsName": REMOVE,
    "OperatorIdentificationSequence": REMOVE,
    "ContentCreatorName": EMPTY,
    "VerifyingObserverName": REMOVE,
    "PersonName": REMOVE,
    "ResponsiblePerson": REMOVE,
    "ResponsiblePersonRole": REMOVE,
    "ResponsibleOrganization": REMOVE,
    "InterpretationAuthor": REMOVE,
    "PhysicianApprovingInterpretation": REMOVE,
    "ClinicalTrialSponsorName": REMOVE,
    # Institution and device
    "InstitutionName": REMOVE,
    "InstitutionAddress": REMOVE,
    "InstitutionalDepartmentName": REMOVE,
    "InstitutionCodeSequence": REMOVE,
    "StationName": REMOVE,
    "DeviceSerialNumber": REMOVE,
    "DetectorID": REMOVE,
    "DeviceUID": REMAP,
    "SourceApplicationEntityTitle": REMOVE,
    # Free text that may carry anything
    "StudyDescription": REMOVE,
    "SeriesDescription": REMOVE,
    "ProtocolName": REMOVE,
    "ImageComments": REMOVE,
    "StudyComments": REMOVE,
    "AcquisitionComments": REMOVE,
    "FrameComments": REMOVE,
    "DerivationDescription": REMOVE,
    "IdentifyingComments": REMOVE,
    "TextComments": REMOVE,
    "TextString": REMOVE,
    "ContrastBolusAgent": REMOVE,
    "PositionReferenceIndicator": REMOVE,
    "GraphicAnnotationSequence": REMOVE,
    # Containers that can hold a copy of anything above, or pixels with text on them
    "OriginalAttributesSequence": REMOVE,
    "ModifiedAttributesSequence": REMOVE,
    "EncryptedAttributesSequence": REMOVE,
    "DigitalSignaturesSequence": REMOVE,
    "MACParametersSequence": REMOVE,
    "IconImageSequence": REMOVE,
    # Time and identity of the instance
    "TimezoneOffsetFromUTC": REMOVE,
    "InstanceCreationDate": SHIFT,
    "StudyDate": SHIFT,
    "SeriesDate": SHIFT,
    "AcquisitionDate": SHIFT,
    "ContentDate": SHIFT,
    "AcquisitionDateTime": SHIFT,
    "PerformedProcedureStepStartDate": SHIFT,
    "PerformedProcedureStepEndDate": SHIFT,
    "StudyInstanceUID": REMAP,
    "SeriesInstanceUID": REMAP,
    "SOPInstanceUID": REMAP,
    "FrameOfReferenceUID": REMAP,
    "InstanceCreatorUID": REMAP,
    "StorageMediaFileSetUID": REMAP,
    "IrradiationEventUID": REMAP,
}

# Kept under the Retain Patient Characteristics option (113108).
_PATIENT_CHARACTERISTICS = (
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PregnancyStatus",
)

# Values whose exact text the clinical indication might repeat; persons' names (PN) always are.
_IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientID",
        "OtherPatientIDs",
        "IssuerOfPatientID",
        "AccessionNumber",
        "StudyID",
        "AdmissionID",
        "ServiceEpisodeID",
        "MedicalRecordLocator",
        "RequestedProcedureID",
        "ScheduledProcedureStepID",
        "PerformedProcedureStepID",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "ResponsibleOrganization",
        "StationName",
        "DeviceSerialNumber",
        "DetectorID",
    }
)

# The clean-by-allow-list safety net: text or binary attributes that survive when the profile
# table does not mention them. Each describes the image or the acquisition, not the person.
SAFE_KEYWORDS: frozenset[str] = frozenset(
    {
        # File and character set
        "SpecificCharacterSet",
        # Image pixel module and presentation
        "PixelData",
        "PhotometricInterpretation",
        "PixelPaddingRangeLimit",
        "RescaleType",
        "PresentationLUTShape",
        "VOILUTFunction",
        "WindowCenterWidthExplanation",
        "LUTDescriptor",
        "LUTData",
        "LUTExplanation",
        "ModalityLUTType",
        "PixelIntensityRelationship",
        "LossyImageCompression",
        "LossyImageCompressionMethod",
        "BurnedInAnnotation",
        "RecognizableVisualFeatures",
        "ImageType",
        "PresentationIntentType",
        "QualityControlImage",
        # What was imaged and how
        "Modality",
        "ConversionType",
        "BodyPartExamined",
        "ViewPosition",
        "Laterality",
        "ImageLaterality",
        "PatientOrientation",
        "PatientPosition",
        "Manufacturer",
        "ManufacturerModelName",
        "SoftwareVersions",
        "DetectorType",
        "DetectorConfiguration",
        "Grid",
        "FilterType",
        "FilterMaterial",
        "AnodeTargetMaterial",
        "CollimatorShape",
        "ExposureControlMode",
        "ScanOptions",
        "ScanningSequence",
        "SequenceVariant",
        "MRAcquisitionType",
        "FieldOfViewShape",
        "PositionerType",
        "ImageGeometryType",
        # Codes inside code sequences (anatomy, view, procedure)
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "ContextIdentifier",
        "MappingResource",
        # Written by this module
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "LongitudinalTemporalInformationModified",
    }
)

_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMERIC_VRS = frozenset({"AT", "DS", "FD", "FL", "IS", "SL", "SS", "SV", "UL", "US", "UV"})

_DICOM_UID_ROOT = "1.2.840.10008."
_AGE_CAP_YEARS = 89  # HIPAA Safe Harbor: ages over 89 are aggregated into "90 or older"
_MIN_SECRET_BYTES = 16

# (CodeValue, CodeMeaning) from PS3.16 CID 7050, for the options applied.
_METHOD_BASIC = ("113100", "Basic Application Confidentiality Profile")
_METHOD_MODIFIED_DATES = (
    "113107",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)
_METHOD_PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")

_PROFILE_BY_TAG: dict[int, str] = {}
for _keyword, _action in PROFILE_ACTIONS.items():
    _tag = tag_for_keyword(_keyword)
    if _tag is None:  # pragma: no cover - guards the table against typos at import
        raise ImportError(f"unknown DICOM keyword in the profile table: {_keyword}")
    _PROFILE_BY_TAG[_tag] = _action

_PIXEL_DATA = Tag(0x7FE0, 0x0010)
_SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")


# ----------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class DeidentifiedStudy:
    """One de-identified image: header, display pixels, and what was removed.

    Attributes:
        dataset: the de-identified pydicom ``Dataset`` (uncompressed pixels, burned-in text
            blanked); :meth:`to_bytes` writes it as a DICOM file.
        pixels: ``(H, W)`` float32 in [0, 1], bright is white: modality and VOI transforms
            applied, MONOCHROME1 inverted, burned-in text blanked.
        identifiers: the identifying values removed from the header (names in the orders
            people write them, IDs, accession number, institution, physicians...). Kept in
            memory so the text anonymizer can strip them from the clinical indication too;
            never log or store them. Left out of ``repr``.
        patient_key: keyed pseudonymous patient key (hex HMAC of the patient ID); the same
            patient gets the same key under the same secret.
        actions: counts by action, safe for metrics: ``removed``, ``replaced``,
            ``uids_remapped``, ``dates_shifted``, ``private_tags_removed``,
            ``burned_in_regions_blanked``.
    """

    dataset: Dataset = field(repr=False)
    pixels: np.ndarray = field(repr=False)
    identifiers: tuple[str, ...] = field(repr=False)
    patient_key: str
    actions: dict[str, int]

    def to_bytes(self) -> bytes:
        """The de-identified image as a DICOM Part 10 file (Explicit VR Little Endian)."""
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, self.dataset, enforce_file_format=True)
        return buffer.getvalue()


def looks_like_dicom(data: bytes) -> bool:
    """Cheap check for the Part 10 prefix, for a service choosing between DICOM and PNG."""
    return len(data) >= 132 and data[128:132] == b"DICM"


class DicomDeidentifier:
    """De-identifies DICOM images under one secret, following PS3.15 Annex E (see the module).

    Args:
        secret: key material (at least 16 bytes, e.g. ``os.urandom(32)`` kept in the service's
            secret store). It keys the UID remapping, the date shift and the patient key: keep
            it to keep pseudonyms stable across requests; rotate it to unlink them.
        date_shift_days_max: dates move back by 1 to this many days, fixed per patient.
        retain_patient_characteristics: keep sex, age (capped at 90Y), size, weight and
            pregnancy status (option 113108) instead of removing them.
        detect_burned_in_text: look for text in the pixels of every image; when off, only
            images whose header says ``BurnedInAnnotation`` = ``YES`` are searched.
        max_pixels: larger images are refused (``image_too_large``) before their pixel data
            is decoded, so a small compressed file cannot expand into gigabytes.

    Example:
        >>> deidentifier = DicomDeidentifier(os.urandom(32))
        >>> study = deidentifier.deidentify(upload)  # doctest: +SKIP
        >>> model_input = study.pixels  # doctest: +SKIP
    """

    def __init__(
        self,
        secret: bytes,
        *,
        date_shift_days_max: int = 365,
        retain_patient_characteristics: bool = False,
        detect_burned_in_text: bool = True,
        max_pixels: int = 50_000_000,
    ) -> None:
        if not isinstance(secret, bytes) or len(secret) < _MIN_SECRET_BYTES:
            raise ConfigError(
                f"secret must be at least {_MIN_SECRET_BYTES} bytes of key material; "
                "generate one with os.urandom(32) and keep it in the secret store"
            )
        if isinstance(date_shift_days_max, bool) or not isinstance(date_shift_days_max, int):
            raise ConfigError("date_shift_days_max must be an integer number of days")
        if date_shift_days_max < 1:
            raise ConfigError("date_shift_days_max must be at least 1 day")
        self._secret = secret
        self._date_shift_days_max = date_shift_days_max
        self._retain_patient_characteristics = retain_patient_characteristics
        self._detect_burned_in_text = detect_burned_in_text
        self._max_pixels = max_pixels
        _withhold_pydicom_log_messages()

    def __repr__(self) -> str:
        return (
            f"DicomDeidentifier(date_shift_days_max={self._date_shift_days_max}, "
            f"retain_patient_characteristics={self._retain_patient_characteristics})"
        )

    def deidentify(self, data: bytes) -> DeidentifiedStudy:
        """Parse ``data``, check it can be served, and return it de-identified.

        Raises:
            InputRejected: ``not_dicom``, ``truncated_dicom``, ``no_pixel_data`` or
                ``unsupported_dicom``; the message says what to send instead.
        """
        # pydicom's warnings can quote header values: they are filtered process-wide when the
        # deidentifier is built (a catch_warnings block here would race across the threads a
        # Serve replica runs requests in)
        try:
            ds = _parse(data)
            study = self._deidentify(ds)
        except InputRejected:
            raise
        except Exception as exc:
            # Malformed values make pydicom and numpy raise errors that quote them; the
            # cause is dropped so no traceback or log line carries header content.
            logger.warning(
                "DICOM header could not be processed", extra={"error": type(exc).__name__}
            )
            raise _reject(
                "unsupported_dicom",
                "The DICOM header holds values this service cannot interpret. Export the "
                "image again from the PACS, uncompressed, and send that file.",
            ) from None
        logger.debug("de-identified a DICOM image", extra={"actions": study.actions})
        return study

    def _deidentify(self, ds: Dataset) -> DeidentifiedStudy:
        """Pixels first (they decide whether the file is servable), then the header."""
        stored, pixels = _read_pixels(ds, self._max_pixels)
        key_material = _patient_key_material(ds)
        patient_key = self._hmac(b"patient", key_material).hex()[:32]
        shift_days = self._date_shift(key_material)

        burned_in = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
        regions: tuple[TextRegion, ...] = ()
        if burned_in or self._detect_burned_in_text:
            regions = find_text_regions(pixels, sensitive=burned_in)
        if regions:
            background = int(np.argmin(pixels))
            pixels = blank_regions(pixels, regions, value=float(pixels.flat[background]))
            stored = blank_regions(stored, regions, value=stored.flat[background])

        identifiers = tuple(_unique(_identifiers(ds)))
        cleaner = _Cleaner(
            remap_uid=self._remap_uid,
            shift_days=shift_days,
            retain_patient_characteristics=self._retain_patient_characteristics,
            pseudonyms={
                "PatientName": f"ANON^{patient_key[:12].upper()}",
                "PatientID": f"SM{patient_key[:16].upper()}",
            },
        )
        cleaner.clean(ds)
        self._finish(ds, stored, text_found=burned_in or bool(regions))
        cleaner.actions["burned_in_regions_blanked"] = len(regions)
        return DeidentifiedStudy(
            dataset=ds,
            pixels=pixels.astype(np.float32, copy=False),
            identifiers=identifiers,
            patient_key=patient_key,
            actions=dict(cleaner.actions),
        )

    # -- keyed derivations: one HMAC per purpose, so no output can be turned into another

    def _hmac(self, purpose: bytes, message: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\x00" + message, hashlib.sha256).digest()

    def _remap_uid(self, uid: str) -> str:
        if not uid or uid.startswith(_DICOM_UID_ROOT):
            return uid  # SOP classes, transfer syntaxes, coding schemes: not identifying
        digest = self._hmac(b"uid", uid.encode("ascii", "replace"))
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def _date_shift(self, key_material: bytes) -> int:
        draw = int.from_bytes(self._hmac(b"date-shift", key_material)[:8], "big")
        return 1 + draw % self._date_shift_days_max

    def _finish(self, ds: Dataset, stored: np.ndarray, *, text_found: bool) -> None:
        """Write the blanked pixels uncompressed and record what was done, as PS3.15 asks."""
        syntax = UID(ds.file_meta.TransferSyntaxUID)
        was_lossy = syntax.is_compressed and not _is_lossless(syntax)
        if syntax == ExplicitVRBigEndian:
            _swap_binary_values(ds)
        little = stored.astype(stored.dtype.newbyteorder("<"), copy=False).tobytes()
        if len(little) % 2:
            little += b"\x00"
        ds[_PIXEL_DATA] = DataElement(_PIXEL_DATA, "OB" if ds.BitsAllocated <= 8 else "OW", little)
        if was_lossy:
            ds.LossyImageCompression = "01"
        if text_found:
            ds.BurnedInAnnotation = "YES"  # blanked by a heuristic: not claimed clean

        methods = [_METHOD_BASIC, _METHOD_MODIFIED_DATES]
        if self._retain_patient_characteristics:
            methods.append(_METHOD_PATIENT_CHARACTERISTICS)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = ["PS3.15 E Basic; modified dates", "SecureMed securemed.phi"]
        codes = []
        for value, meaning in methods:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            codes.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(codes)
        ds.LongitudinalTemporalInformationModified = "MODIFIED"

        if "SOPClassUID" not in ds:
            ds.SOPClassUID = _SECONDARY_CAPTURE
        if "SOPInstanceUID" not in ds:
            ds.SOPInstanceUID = generate_uid(prefix="2.25.")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128  # a dual-personality preamble (TIFF) can hold anything


# ----------------------------------------------------------------------------- header walk


class _Cleaner:
    """Applies the profile table and the allow-list to a dataset and its nested sequences."""

    def __init__(
        self,
        *,
        remap_uid: Callable[[str], str],
        shift_days: int,
        retain_patient_characteristics: bool,
        pseudonyms: dict[str, str],
    ) -> None:
        self._remap_uid = remap_uid
        self._shift_days = shift_days
        self._retain = retain_patient_characteristics
        self._pseudonyms = pseudonyms
        self.actions: dict[str, int] = {
            "removed": 0,
            "replaced": 0,
            "uids_remapped": 0,
            "dates_shifted": 0,
            "private_tags_removed": 0,
            "burned_in_regions_blanked": 0,
        }

    def clean(self, ds: Dataset, *, top_level: bool = True) -> None:
        for tag in list(ds.keys()):
            if top_level and tag == _PIXEL_DATA:
                continue  # rewritten from the blanked array
            self._clean_element(ds, BaseTag(tag))
        if top_level:
            for keyword, pseudonym in self._pseudonyms.items():
                setattr(ds, keyword, pseudonym)  # PatientName (PN), PatientID (LO)

    def _clean_element(self, ds: Dataset, tag: BaseTag) -> None:
        if tag.is_private:
            del ds[tag]
            self.actions["private_tags_removed"] += 1
            return
        if tag.element == 0 or 0x5000 <= tag.group <= 0x50FF or 0x6000 <= tag.group <= 0x60FF:
            del ds[tag]  # group lengths go stale; curves and overlays can carry text
            if tag.element != 0:
                self.actions["removed"] += 1
            return
        elem = ds[tag]
        keyword = keyword_for_tag(tag)
        action = _PROFILE_BY_TAG.get(int(tag))
        if self._retain and keyword in _PATIENT_CHARACTERISTICS:
            action = KEEP
        if action is None:
            action = _default_action(elem.VR, keyword)

        if action == REMOVE:
            del ds[tag]
            self.actions["removed"] += 1
        elif action == EMPTY:
            if not elem.is_empty:
                ds[tag] = DataElement(tag, elem.VR, [] if elem.VR == "SQ" else None)
                self.actions["replaced"] += 1
        elif action == DUMMY:
            if keyword not in self._pseudonyms:  # the pseudonyms are written after the walk
                ds[tag] = DataElement(tag, elem.VR, None)
            self.actions["replaced"] += 1
        elif action == REMAP:
            self._remap(elem)
        elif action == SHIFT:
            self._shift(ds, tag)
        elif action == "SQ":
            for item in elem.value:
                self.clean(item, top_level=False)
        elif keyword == "PatientAge":
            ds[tag] = DataElement(tag, "AS", _cap_age(str(elem.value or "")))

    def _remap(self, elem: DataElement) -> None:
        values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
        remapped = [self._remap_uid(str(v)) if v else v for v in values]
        self.actions["uids_remapped"] += sum(a != b for a, b in zip(values, remapped, strict=True))
        elem.value = remapped if isinstance(elem.value, MultiValue) else remapped[0]

    def _shift(self, ds: Dataset, tag: BaseTag) -> None:
        elem = ds[tag]
        if elem.VR not in ("DA", "DT") or elem.is_empty:
            return  # times are kept: the shift is whole days
        values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
        shifted = [_shift_date(str(v), self._shift_days) for v in values]
        if any(s is None for s in shifted):
            del ds[tag]  # a date we cannot parse cannot be shifted, so it cannot stay
            self.actions["removed"] += 1
            return
        ds[tag] = DataElement(tag, elem.VR, shifted if len(shifted) > 1 else shifted[0])
        self.actions["dates_shifted"] += 1


def _default_action(vr: str, keyword: str) -> str:
    """What the allow-list safety net does with an attribute the profile table leaves out."""
    if vr == "SQ":
        return "SQ"
    if vr == "UI":
        return REMAP
    if vr in ("DA", "DT"):
        return SHIFT
    if vr == "TM" or vr in _NUMERIC_VRS:
        return KEEP
    if " or " in vr:  # ambiguous VR left unresolved by an implicit-VR file
        options = set(vr.split(" or "))
        if options <= _NUMERIC_VRS:
            return KEEP
    return KEEP if keyword in SAFE_KEYWORDS else REMOVE


def _identifiers(ds: Dataset) -> Iterator[str]:
    """Every identifying value in ``ds`` and its sequences, before anything is removed."""
    for elem in ds.iterall():
        if elem.VR == "SQ" or elem.is_empty:
            continue
        values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
        if elem.VR == "PN":
            for value in values:
                yield from _name_variants(PersonName(value) if isinstance(value, str) else value)
        elif elem.keyword in _IDENTIFYING_KEYWORDS:
            for value in values:
                yield str(value).strip()


def _name_variants(name: PersonName) -> Iterator[str]:
    """A person's name as DICOM stores it and in the orders people write it."""
    raw = str(name).strip()
    yield raw
    family, given, middle = name.family_name, name.given_name, name.middle_name
    yield raw.replace("^", " ").strip()
    if family and given:
        yield f"{given} {family}"
        yield f"{family}, {given}"
        yield f"{family} {given}"
        if middle:
            yield f"{given} {middle} {family}"
    yield family
    yield given


def _unique(values: Iterator[str]) -> Iterator[str]:
    """Distinct values of two characters or more, in first-seen order."""
    seen: set[str] = set()
    for value in values:
        value = " ".join(value.split())
        if len(value) >= 2 and value not in seen:
            seen.add(value)
            yield value


def _shift_date(value: str, days: int) -> str | None:
    """``value`` (DA, or the date part of a DT) moved back by ``days``; None if unparseable."""
    text = value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) - timedelta(days=days)
    except ValueError:
        return None
    return f"{moved:%Y%m%d}{text[8:]}"


def _cap_age(value: str) -> str:
    """An Age String with every age over 89 years written as 090Y."""
    if len(value) == 4 and value[:3].isdigit() and value[3] == "Y":
        return "090Y" if int(value[:3]) > _AGE_CAP_YEARS else value
    return value


def _patient_key_material(ds: Dataset) -> bytes:
    """What identifies the patient for pseudonyms and the date shift.

    Without a patient ID, the study (then the instance) stands in: the pseudonym and shift stay
    consistent within that study but cannot link the patient's other studies.
    """
    for keyword, label in (
        ("PatientID", b"patient-id"),
        ("StudyInstanceUID", b"study"),
        ("SOPInstanceUID", b"instance"),
    ):
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return label + b"\x00" + value.encode("utf-8", "replace")
    return b"none"


# ----------------------------------------------------------------------------- parsing


def _reject(reason: str, message: str) -> InputRejected:
    return InputRejected(reason, message)


_TRUNCATED = (
    "The DICOM file ends in the middle of an element: it was cut off in transfer or export. "
    "Send the complete file."
)

_OTHER_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
)


def _parse(data: bytes) -> Dataset:
    """Parse ``data`` as DICOM, telling not-DICOM, truncated and unparseable apart."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _reject("not_dicom", "Send the image as the raw bytes of a DICOM file.")
    data = bytes(data)
    has_prefix = looks_like_dicom(data)
    if not has_prefix:
        for signature, kind in _OTHER_FORMATS:
            if data.startswith(signature):
                raise _reject(
                    "not_dicom",
                    f"The upload is {kind}, not DICOM. Send PNG images to the image endpoint "
                    "or export the study from the PACS as a DICOM file.",
                )

    start, transfer_syntax = 0, None
    if has_prefix or data[:2] == b"\x02\x00":
        meta = _walk_meta(data, 132 if has_prefix else 0)
        if meta is None:
            raise _reject("truncated_dicom", _TRUNCATED)
        start, transfer_syntax = meta
        if has_prefix and start == 132:
            raise _reject(
                "not_dicom",
                "The file has a DICOM prefix but no file meta information after it. "
                "Export the image again from the PACS as a DICOM Part 10 file.",
            )

    try:
        ds: Dataset | None = pydicom.dcmread(io.BytesIO(data), force=not has_prefix)
    except Exception:  # pydicom raises many types on malformed input; the reason is ours
        ds = None

    if transfer_syntax is None and ds is not None:
        transfer_syntax = _syntax_from_encoding(ds)
    complete = True
    if transfer_syntax is not None and transfer_syntax != DeflatedExplicitVRLittleEndian:
        syntax = UID(transfer_syntax)
        implicit = syntax == ImplicitVRLittleEndian
        little = syntax != ExplicitVRBigEndian
        complete = _walk_elements(data, start, implicit=implicit, little=little) is not None

    if not has_prefix and (ds is None or not _looks_like_image_header(ds)):
        raise _reject(
            "not_dicom",
            "The upload is not a DICOM file. Export the image from the PACS as DICOM "
            "(Part 10, with the 'DICM' prefix) or send a PNG to the image endpoint.",
        )
    if not complete:
        raise _reject("truncated_dicom", _TRUNCATED)
    if ds is None:
        raise _reject(
            "not_dicom",
            "The file has a DICOM prefix but its contents could not be parsed. "
            "Export the image again from the PACS.",
        )
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID(transfer_syntax or ImplicitVRLittleEndian)
    return ds


def _syntax_from_encoding(ds: Dataset) -> str:
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian


def _looks_like_image_header(ds: Dataset) -> bool:
    """Whether a file without the DICM prefix parsed into something DICOM-like.

    Forced parsing turns arbitrary bytes into a few nonsense elements; a real dataset without
    the prefix still carries its SOP class or an image pixel module.
    """
    try:
        sop_class = str(ds.get("SOPClassUID", "") or "")
        has_image = "Rows" in ds and "Columns" in ds
    except Exception:
        return False
    return sop_class.startswith(_DICOM_UID_ROOT) or has_image


_LONG_LENGTH_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM = 0xE000
_ITEM_END = 0xE00D
_SEQUENCE_END = 0xE0DD


def _walk_meta(data: bytes, pos: int) -> tuple[int, str | None] | None:
    """Skip the file meta group (always explicit VR little endian).

    Returns the offset of the data set and the transfer syntax, or None when the file ends
    inside the meta group.
    """
    syntax = None
    n = len(data)
    while pos + 4 <= n:
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            return pos, syntax
        if pos + 8 > n:
            return None
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_LENGTH_VRS:
            if pos + 12 > n:
                return None
            (length,) = struct.unpack_from("<L", data, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            pos += 8
        if pos + length > n:
            return None
        if element == 0x0010:
            syntax = data[pos : pos + length].decode("ascii", "replace").strip("\x00 ")
        pos += length
    return (pos, syntax) if pos == n else None


def _walk_elements(
    data: bytes, pos: int, *, implicit: bool, little: bool, until: int | None = None
) -> int | None:
    """Walk data elements from ``pos``; return where the walk ended, or None if cut short.

    pydicom stops quietly at the end of a cut file and keeps whatever it had read, so whether
    the file ends on an element boundary is checked here: every element's value must fit, every
    undefined-length sequence and item must reach its delimiter. ``until`` is the delimiter
    (item or sequence end) that closes the current level.
    """
    order = "<" if little else ">"
    n = len(data)
    while pos < n:
        if pos + 8 > n:
            return None
        group, element = struct.unpack_from(order + "HH", data, pos)
        if group == 0xFFFE:  # items and delimiters have no VR in any transfer syntax
            (length,) = struct.unpack_from(order + "L", data, pos + 4)
            pos += 8
            if element == until:
                return pos
            if element == _ITEM:
                if length == _UNDEFINED_LENGTH:
                    item_end = _walk_elements(
                        data, pos, implicit=implicit, little=little, until=_ITEM_END
                    )
                    if item_end is None:
                        return None
                    pos = item_end
                else:
                    pos += length
            continue
        vr = None
        if implicit:
            (length,) = struct.unpack_from(order + "L", data, pos + 4)
            pos += 8
        else:
            vr = data[pos + 4 : pos + 6]
            if vr in _LONG_LENGTH_VRS:
                if pos + 12 > n:
                    return None
                (length,) = struct.unpack_from(order + "L", data, pos + 8)
                pos += 12
            else:
                (length,) = struct.unpack_from(order + "H", data, pos + 6)
                pos += 8
        if length == _UNDEFINED_LENGTH:
            # A sequence, or encapsulated pixel data; an undefined-length UN is implicit inside.
            inner_implicit = implicit or vr == b"UN"
            inner_little = little or vr == b"UN"
            end = _walk_elements(
                data, pos, implicit=inner_implicit, little=inner_little, until=_SEQUENCE_END
            )
            if end is None:
                return None
            pos = end
        else:
            pos += length
    if until is not None or pos > n:
        return None
    return pos


# ----------------------------------------------------------------------------- pixels


def _read_pixels(ds: Dataset, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Check the image can be served and return (stored values, display values in [0, 1])."""
    if _PIXEL_DATA not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise _reject(
                "unsupported_dicom",
                "Floating-point pixel data is not supported; send an integer radiograph.",
            )
        raise _reject(
            "no_pixel_data",
            "The DICOM file holds no image (no Pixel Data): it may be a report, a structured "
            "document or a header-only export. Send the image itself.",
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _reject(
            "unsupported_dicom",
            "Only grayscale (MONOCHROME1 or MONOCHROME2) images are supported; this one is in "
            "colour, uses a palette or does not say. Send the original grayscale radiograph.",
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise _reject(
            "unsupported_dicom",
            "Multi-frame images are not supported; send one radiograph per file.",
        )
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    bits_allocated = int(ds.get("BitsAllocated", 0) or 0)
    if rows < 1 or columns < 1 or bits_allocated not in (8, 16, 32):
        raise _reject(
            "unsupported_dicom",
            "The image's size or bit depth is missing or unusual (8, 16 or 32 bits allocated "
            "are supported). Export it again as a standard radiograph.",
        )

    if rows * columns > max_pixels:  # checked before decoding: a compressed bomb is small
        raise _reject(
            "image_too_large",
            f"The image has {rows * columns} pixels, more than the {max_pixels} allowed; "
            "send a downscaled export.",
        )

    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax.is_compressed:
        decoder = get_decoder(syntax) if syntax.is_transfer_syntax else None
        if decoder is None or not decoder.is_available:
            raise _reject(
                "unsupported_dicom",
                "The image is compressed with a transfer syntax this service cannot decode. "
                "Export it uncompressed (Explicit VR Little Endian) or as JPEG 2000.",
            )
    else:
        expected = rows * columns * bits_allocated // 8
        if len(ds.PixelData) < expected:
            raise _reject("truncated_dicom", _TRUNCATED)

    try:
        stored = np.asarray(ds.pixel_array)
    except Exception:  # decoders raise their own types, quoting the file; the reason is ours
        # The file's structure is complete (checked while parsing), so a decoder that fails
        # most often meets a variant it does not support (12-bit JPEG in Pillow), sometimes
        # a corrupt stream: both are cured by an uncompressed export.
        raise _reject(
            "unsupported_dicom",
            "The image data could not be decoded: its compression variant is not supported "
            "here or the data is corrupt. Export it uncompressed (Explicit VR Little Endian).",
        ) from None
    if stored.shape != (rows, columns):
        raise _reject(
            "unsupported_dicom",
            "The image's pixel layout is not a single grayscale frame; send one radiograph.",
        )
    if int(ds.get("PixelRepresentation", 0) or 0) == 0:
        bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
        if bits_stored < bits_allocated:
            stored = stored & np.asarray((1 << bits_stored) - 1, dtype=stored.dtype)
    return stored, _display(stored, ds, photometric)


def _display(stored: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Stored values to what a viewer shows, scaled to [0, 1] with bright meaning white.

    Modality LUT or rescale first, then the first VOI LUT if present, else the first window
    (PS3.3 C.11.2.1.2), else the image's own min-max. MONOCHROME1 is inverted at the end.
    """
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    out: np.ndarray | None = None
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        try:
            depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
            out = np.asarray(apply_voi(values.astype(np.int64), ds), dtype=np.float64)
            out /= float(2**depth - 1)
        except Exception:
            out = None  # a malformed LUT falls back to the window, then to min-max
    if out is None:
        out = _window(values, ds)
    if out is None:
        low, high = float(values.min()), float(values.max())
        out = (values - low) / (high - low) if high > low else np.zeros_like(values)
    out = np.clip(out, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32)


def _window(values: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """The first VOI window applied to ``values`` in [0, 1]; None if there is no usable one."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c = float(center[0] if isinstance(center, MultiValue) else center)
        w = float(width[0] if isinstance(width, MultiValue) else width)
    except (TypeError, ValueError, IndexError):
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    if function == "SIGMOID" and w > 0:
        return np.asarray(1.0 / (1.0 + np.exp(-4.0 * (values - c) / w)))
    if function == "LINEAR_EXACT" and w > 0:
        return np.asarray((values - c) / w + 0.5)
    if w < 1:
        return None
    if w == 1:
        return np.asarray(values > c - 0.5, dtype=np.float64)
    return np.asarray((values - (c - 0.5)) / (w - 1) + 0.5)


def _swap_binary_values(ds: Dataset) -> None:
    """Byte-swap the binary words pydicom keeps as raw bytes, for writing little endian.

    Only words wider than a byte need it (OW, OF, OL, OD, OV); numbers pydicom decoded are
    re-encoded by the writer. The pixel data is rewritten separately from the decoded array.
    """
    widths = {"OW": "u2", "OF": "u4", "OL": "u4", "OD": "u8", "OV": "u8"}
    for elem in ds.iterall():
        width = widths.get(elem.VR)
        if width and elem.tag != _PIXEL_DATA and isinstance(elem.value, bytes):
            words = np.frombuffer(elem.value, dtype=">" + width)
            elem.value = words.astype("<" + width).tobytes()


def _is_lossless(syntax: UID) -> bool:
    return "Lossless" in syntax.name or syntax.name.startswith("RLE")


# ----------------------------------------------------------------------------- logging


class _WithholdMessage(logging.Filter):
    """Replaces pydicom's log messages, which can quote header values, with a fixed line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = "pydicom reported a problem with an input file (details withheld: PHI)"
        record.args = ()
        return True


def _withhold_pydicom_log_messages() -> None:
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    pydicom_logger = logging.getLogger("pydicom")
    if not any(isinstance(f, _WithholdMessage) for f in pydicom_logger.filters):
        pydicom_logger.addFilter(_WithholdMessage())
