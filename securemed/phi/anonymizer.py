"""PhiAnonymizer: detection plus one operator, configured once, used per request.

    anonymizer = PhiAnonymizer(AnonymizerConfig(operator="pseudonym", pseudonym_key=key))
    result = anonymizer.anonymize(note, patient_id="p-17", known_identifiers=("DOE^JANE",))
    result.text      # the note with every span replaced
    result.counts    # {"PERSON": 2, "DATE": 1}: for metrics, no PHI

The engine (spaCy and every recognizer) is built in the constructor, which takes a second or
two; ``anonymize`` and ``find`` are then milliseconds and safe to call from several threads.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from securemed.phi.detection import PhiDetector
from securemed.phi.entities import PHI_ENTITY_TYPES, PhiEntity
from securemed.phi.operators import (
    PSEUDONYM_KEY_BYTES,
    Operator,
    Pseudonymize,
    Redact,
    ShiftDates,
    Tag,
)

logger = logging.getLogger(__name__)

OperatorName = Literal["redact", "tag", "pseudonym"]


class AnonymizerConfig(BaseModel):
    """How PHI is found and what replaces it. Unknown keys and bad values are refused.

    Args:
        operator: "redact" (one marker for everything), "tag" ("<PERSON>") or "pseudonym"
            ("PERSON-7f3a9c", consistent per patient).
        pseudonym_key: HMAC key for pseudonyms and date shifts (at least 16 bytes). None draws
            a fresh random key from :mod:`secrets`: pseudonyms are then consistent only within
            this anonymizer's lifetime.
        shift_dates: replace dates by the same date moved by a keyed per-patient offset, instead
            of applying ``operator`` to them.
        score_threshold: spans scoring below are ignored (0.4: a weak pattern needs context).
        entity_types: the kinds removed (default every one of PHI_ENTITY_TYPES).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: OperatorName = "tag"
    pseudonym_key: bytes | None = Field(default=None, repr=False)
    pseudonym_hex_chars: int = Field(default=6, ge=4, le=64)
    redaction_marker: str = "[REDACTED]"
    shift_dates: bool = False
    max_date_shift_days: int = Field(default=365, ge=1, le=3650)
    score_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    entity_types: tuple[str, ...] = PHI_ENTITY_TYPES

    @field_validator("operator", mode="before")
    @classmethod
    def _known_operator(cls, value: object) -> object:
        if value not in ("redact", "tag", "pseudonym"):
            raise ValueError(
                f"operator must be 'redact', 'tag' or 'pseudonym' (got {value!r}); date "
                "shifting is the separate flag shift_dates=True"
            )
        return value

    @field_validator("pseudonym_key")
    @classmethod
    def _long_enough(cls, value: bytes | None) -> bytes | None:
        if value is not None and len(value) < 16:
            raise ValueError(
                "pseudonym_key needs at least 16 bytes: use secrets.token_bytes(32), or None "
                "for a random key"
            )
        return value

    @field_validator("entity_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(PHI_ENTITY_TYPES))
        if unknown:
            raise ValueError(f"unknown entity types {unknown}; choose from PHI_ENTITY_TYPES")
        return value


@dataclass(frozen=True)
class AnonymizedText:
    """The anonymized text, what was removed (offsets in the *input*) and counts by type."""

    text: str
    entities: tuple[PhiEntity, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Entities removed by type: safe for metrics and logs (no values)."""
        return dict(Counter(entity.entity_type for entity in self.entities))


class PhiAnonymizer:
    """Finds PHI in clinical text and replaces it with the configured operator.

    Args:
        config: the operator and detection settings (default: tag everything).
    """

    def __init__(self, config: AnonymizerConfig | None = None) -> None:
        self.config = config or AnonymizerConfig()
        key = self.config.pseudonym_key or secrets.token_bytes(PSEUDONYM_KEY_BYTES)
        self._operator = self._build_operator(key)
        self._detector = PhiDetector(
            score_threshold=self.config.score_threshold, entity_types=self.config.entity_types
        )
        logger.info(
            "phi anonymizer ready",
            extra={"operator": self.config.operator, "shift_dates": self.config.shift_dates},
        )

    def _build_operator(self, key: bytes) -> Operator:
        chosen: Operator
        if self.config.operator == "redact":
            chosen = Redact(self.config.redaction_marker)
        elif self.config.operator == "tag":
            chosen = Tag()
        else:
            chosen = Pseudonymize(key, self.config.pseudonym_hex_chars)
        if self.config.shift_dates:
            return ShiftDates(key, self.config.max_date_shift_days, fallback=chosen)
        return chosen

    def find(self, text: str, known_identifiers: Iterable[str] = ()) -> list[PhiEntity]:
        """Detection only: the PHI spans of ``text`` (the safety validator's check)."""
        return self._detector.find(text, known_identifiers)

    def anonymize(
        self,
        text: str,
        patient_id: str | None = None,
        known_identifiers: Iterable[str] = (),
    ) -> AnonymizedText:
        """``text`` with every PHI span replaced.

        Args:
            text: a clinical note or report.
            patient_id: whose note it is; pseudonyms and date shifts are keyed on it, so the
                same name of the same patient maps to the same pseudonym in every request.
            known_identifiers: values known to be PHI for this request (the name and ID from
                the DICOM header): removed wherever they occur, whatever the detectors say.
        """
        entities = self.find(text, known_identifiers)
        pieces, cursor = [], 0
        for entity in entities:
            pieces.append(text[cursor : entity.start])
            value = text[entity.start : entity.end]
            pieces.append(self._operator(entity.entity_type, value, patient_id))
            cursor = entity.end
        pieces.append(text[cursor:])
        return AnonymizedText("".join(pieces), tuple(entities))
