"""The Anonymizer stage: a film and its indication in, nothing identifying out.

The film is decoded and de-identified first, because a DICOM header names the patient: those
names and IDs then join the indication's deny list, so "Mr Smith's follow-up" loses "Smith"
even where the recognizers would not have seen a name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from securemed.phi import PhiAnonymizer
from securemed.safety.text_folding import strip_invisible
from securemed.serving.intake import FilmIntake


@dataclass(frozen=True)
class AnonymizedRequest:
    """What leaves the Anonymizer: pixels, the scrubbed indication, and counts for metrics."""

    pixels: np.ndarray
    indication: str | None
    kind: str
    #: PHI entities removed from the indication, by entity type
    phi_removed: dict[str, int]
    #: de-identification actions on the film, by kind (removed, uids_remapped, ...)
    image_actions: dict[str, int]


class RequestAnonymizer:
    """Film first, then the indication with the film's identifiers as known PHI."""

    def __init__(self, text: PhiAnonymizer, intake: FilmIntake) -> None:
        self._text = text
        self._intake = intake

    def anonymize(self, image: bytes, indication: str | None) -> AnonymizedRequest:
        film = self._intake.receive(image)
        scrubbed: str | None = None
        removed: dict[str, int] = {}
        if indication is not None and indication.strip():
            # a zero-width character inside a name would hide it from the recognizers
            result = self._text.anonymize(
                strip_invisible(indication),
                patient_id=film.patient_key,
                known_identifiers=film.identifiers,
            )
            scrubbed, removed = result.text, dict(result.counts)
        return AnonymizedRequest(film.pixels, scrubbed, film.kind, removed, dict(film.actions))


def served_report(indication: str | None, generated: str) -> str:
    """The report the clinician receives: the scrubbed indication, then the model's sections."""
    if indication is None:
        return generated
    return f"INDICATION: {' '.join(indication.split())} {generated}"
