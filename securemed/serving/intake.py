"""Turning an uploaded film into pixels the model may see: sniffed, decoded, de-identified.

PNG and JPEG uploads are decoded to pixels only: their text chunks and EXIF (which can name the
patient) are never read into anything the service keeps. Burned-in text is looked for in every
film and blanked. DICOM uploads go through :class:`~securemed.phi.dicom.DicomDeidentifier`,
which also hands back the identifying header values so the indication text can be scrubbed of
them. Every refusal is an :class:`~securemed.errors.InputRejected` with a stable reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from securemed.errors import InputRejected
from securemed.phi.burned_in import blank_regions, find_text_regions
from securemed.phi.dicom import DicomDeidentifier

ImageKind = Literal["png", "jpeg", "dicom"]
_MAGIC: dict[bytes, ImageKind] = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}
_SEND_INSTEAD = "send a chest X-ray as DICOM (.dcm), PNG or JPEG"


@dataclass(frozen=True)
class ReceivedFilm:
    """A de-identified film: (H, W) float32 pixels in [0, 1] and what was done to get them."""

    pixels: np.ndarray
    kind: ImageKind
    #: identifying values read from a DICOM header (in memory only: never logged or returned)
    identifiers: tuple[str, ...] = ()
    #: keyed pseudonym of the DICOM's patient, so pseudonyms stay consistent per patient
    patient_key: str | None = None
    #: counts of de-identification actions by kind (safe for metrics)
    actions: dict[str, int] = field(default_factory=dict)


class FilmIntake:
    """Decodes uploads; one per replica (the DICOM de-identifier holds the service's key)."""

    def __init__(self, deidentifier: DicomDeidentifier, *, max_image_pixels: int) -> None:
        self._deidentifier = deidentifier
        self._max_image_pixels = max_image_pixels

    def receive(self, data: bytes) -> ReceivedFilm:
        if not data:
            raise InputRejected("empty_upload", f"the uploaded file is empty: {_SEND_INSTEAD}")
        kind = next((kind for magic, kind in _MAGIC.items() if data.startswith(magic)), None)
        if kind is None:
            return self._dicom(data)
        pixels = self._decode_picture(data)
        regions = find_text_regions(pixels)
        if regions:
            pixels = blank_regions(pixels, regions, value=float(pixels.min()))
        return ReceivedFilm(pixels, kind, actions={"burned_in_regions_blanked": len(regions)})

    def _dicom(self, data: bytes) -> ReceivedFilm:
        try:
            study = self._deidentifier.deidentify(data)
        except InputRejected as error:
            if error.reason == "not_dicom":
                raise InputRejected(
                    "not_an_image", f"the upload is not an image the service reads: {_SEND_INSTEAD}"
                ) from None
            raise
        return ReceivedFilm(
            study.pixels, "dicom", study.identifiers, study.patient_key, dict(study.actions)
        )

    def _decode_picture(self, data: bytes) -> np.ndarray:
        # the size is read from the header and checked before any pixel is decoded, so the
        # decompression-bomb guard needs no (thread-unsafe) warnings filter
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > self._max_image_pixels:
                    raise InputRejected(
                        "image_too_large",
                        f"the image has {width * height} pixels, more than the "
                        f"{self._max_image_pixels} allowed: downscale it first",
                    )
                return _grey(image)
        except Image.DecompressionBombError:  # Pillow's own guard, above twice its limit
            raise InputRejected(
                "image_too_large", "the image is too large to decode safely: downscale it first"
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise InputRejected(
                "corrupt_image",
                f"the image cannot be decoded (truncated or corrupt): {_SEND_INSTEAD}",
            ) from None


def _grey(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1]; 16-bit greyscale keeps its depth."""
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "I":
        values = np.asarray(image, dtype=np.float32)
        span = float(values.max() - values.min()) or 1.0
        return (values - values.min()) / span
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
