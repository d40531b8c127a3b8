"""Operators: what becomes of a detected span. Detection knows nothing of them.

* :class:`Redact` replaces every span with one fixed marker ("[REDACTED]"): nothing about the
  value or its kind survives.
* :class:`Tag` replaces a span with its kind ("<PERSON>"): readers keep the sentence structure.
* :class:`Pseudonymize` replaces a span with a keyed digest ("PERSON-7f3a9c"): the same value of
  the same patient always gets the same pseudonym, so a report can still say that the person in
  two sentences is the same, while another patient's identical name gets a different one. It is
  HMAC-SHA256 over (patient id, entity type, normalised value): without the key, a pseudonym
  cannot be reversed or even confirmed by guessing names.
* :class:`ShiftDates` moves every date by a per-patient offset (keyed, so also not guessable),
  keeping intervals between a patient's dates; a date it cannot parse is tagged instead.

Operators never log values; they are pure functions of their inputs and key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import regex

from securemed.phi.vocabulary import TITLES

PSEUDONYM_KEY_BYTES = 32


class Operator(Protocol):
    """Replacement text for the PHI ``value`` of kind ``entity_type`` of ``patient_id``."""

    def __call__(self, entity_type: str, value: str, patient_id: str | None) -> str: ...


@dataclass(frozen=True)
class Redact:
    """One marker for every span, whatever its kind."""

    marker: str = "[REDACTED]"

    def __call__(self, entity_type: str, value: str, patient_id: str | None) -> str:
        """The marker."""
        return self.marker


@dataclass(frozen=True)
class Tag:
    """The span's kind in angle brackets (``template`` formats ``entity_type``)."""

    template: str = "<{entity_type}>"

    def __call__(self, entity_type: str, value: str, patient_id: str | None) -> str:
        """``<PERSON>``, ``<DATE>``..."""
        return self.template.format(entity_type=entity_type)


def normalize_value(entity_type: str, value: str) -> str:
    """The form two spellings of one identifier share, so they get one pseudonym.

    Names lose titles, case, punctuation and word order ("Dr. John Smith", "SMITH, JOHN" and
    "Smith^John" are one person); identifiers lose separators ("123-45" is "12345").
    """
    text = unicodedata.normalize("NFKC", value).casefold().strip()
    if entity_type == "PERSON":
        parts = [p.strip(".'\u2019") for p in regex.split(r"[\s,^]+", text)]
        parts = [p for p in parts if p and p not in TITLES and f"{p}." not in TITLES]
        return " ".join(sorted(parts))
    if entity_type in {"LOCATION", "FACILITY"}:
        return " ".join(regex.findall(r"\w+", text))
    return regex.sub(r"[\W_]+", "", text)


@dataclass(frozen=True)
class Pseudonymize:
    """``TYPE-hex``: HMAC-SHA256(key, patient id | type | normalised value), truncated."""

    key: bytes = field(repr=False)
    hex_chars: int = 6

    def __post_init__(self) -> None:
        """Refuse short keys: a pseudonym is only as strong as its key."""
        if len(self.key) < 16:
            raise ValueError("a pseudonym key needs at least 16 bytes (use secrets.token_bytes)")
        if not 4 <= self.hex_chars <= 64:
            raise ValueError(f"hex_chars must be within [4, 64], got {self.hex_chars}")

    def __call__(self, entity_type: str, value: str, patient_id: str | None) -> str:
        """The pseudonym; the unit separator keeps ("ab", "c") and ("a", "bc") apart."""
        message = "\x1f".join((patient_id or "", entity_type, normalize_value(entity_type, value)))
        digest = hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()
        return f"{entity_type}-{digest[: self.hex_chars]}"


#: formats a shifted date is parsed with and written back in (the same format)
_DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y", "%d.%m.%Y",
    "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y", "%d-%b-%Y",
    "%Y%m%d", "%d %b, %Y", "%b. %d, %Y",
)  # fmt: skip


@dataclass(frozen=True)
class ShiftDates:
    """Dates moved by a keyed per-patient offset in [-max_days, max_days], never 0.

    Non-date spans go to ``fallback`` (tagging by default), as do dates in a format this
    operator cannot write back faithfully.
    """

    key: bytes = field(repr=False)
    max_days: int = 365
    fallback: Callable[[str, str, str | None], str] = field(default_factory=Tag)

    def offset_days(self, patient_id: str | None) -> int:
        """The patient's offset: the same for all their dates, so intervals survive."""
        digest = hmac.new(self.key, b"date-shift\x1f" + (patient_id or "").encode(), "sha256")
        number = int.from_bytes(digest.digest()[:8], "big")
        offset = number % (2 * self.max_days) - self.max_days
        return offset or self.max_days  # an offset of 0 would publish the real date

    def __call__(self, entity_type: str, value: str, patient_id: str | None) -> str:
        """The shifted date in the original format, or the fallback's replacement."""
        if entity_type != "DATE":
            return self.fallback(entity_type, value, patient_id)
        offset = self.offset_days(patient_id)
        cleaned = regex.sub(r"(?<=\d)(?:st|nd|rd|th)\b", "", value.strip())
        for fmt in _DATE_FORMATS:
            try:
                parsed = dt.datetime.strptime(cleaned, fmt)
            except ValueError:
                continue
            shifted = (parsed + dt.timedelta(days=offset)).strftime(fmt)
            return shifted.upper() if value.isupper() else shifted
        return self.fallback(entity_type, value, patient_id)
