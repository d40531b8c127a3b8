"""The fixed vocabulary of PHI entity types, and how it covers HIPAA Safe Harbor.

Every recognizer, operator, metric and log line in :mod:`securemed.phi` names an entity with
one of :data:`PHI_ENTITY_TYPES`; nothing else is ever emitted, so dashboards and the
evaluation can rely on the set.

The 18 Safe Harbor identifiers (45 CFR 164.514(b)(2)) and the type that covers each in text:

====  ==========================================================  =========================
 #    identifier                                                  entity type(s)
====  ==========================================================  =========================
 1    names (patient, relatives, employers; we include providers) PERSON
 2    geographic subdivisions smaller than a state: street        LOCATION, ZIP
      address, city, county, precinct, ZIP code
 3    all elements of dates (except year) directly related to     DATE, AGE
      the individual; all ages over 89
 4    telephone numbers                                           PHONE
 5    fax numbers                                                 FAX
 6    email addresses                                             EMAIL
 7    social security numbers                                     SSN
 8    medical record numbers                                      MRN
 9    health plan beneficiary numbers                             HEALTH_PLAN
 10   account numbers                                             ACCOUNT
 11   certificate / license numbers                               LICENSE
 12   vehicle identifiers and serial numbers, licence plates      VEHICLE
 13   device identifiers and serial numbers                       DEVICE_ID
 14   web URLs                                                    URL
 15   IP addresses                                                IP_ADDRESS
 16   biometric identifiers (finger and voice prints)             none: not carried by text
 17   full-face photographs and comparable images                 none: not carried by text
                                                                  (pixel data is handled by
                                                                  ``securemed.phi.burned_in``)
 18   any other unique identifying number, characteristic, code   ACCESSION, ENCOUNTER,
                                                                  and the per-request
                                                                  ``known_identifiers``
====  ==========================================================  =========================

FACILITY (hospital and clinic names) is not one of the 18 on its own, but a facility name
narrows the patient's location below state level, so it is removed too.

Choices made where Safe Harbor leaves room:

* A year on its own ("in 2019") is not PHI; a month with a year ("03/2019", "March 2019") and a
  day with a month ("March 4") are.
* Ages of 89 and below are not PHI; the number of an age of 90 or more is.
* A US state (name or postal abbreviation) and a country are not PHI; a city, street or ZIP is.
"""

from __future__ import annotations

from dataclasses import dataclass

#: every entity type this package detects, in Safe Harbor order
PHI_ENTITY_TYPES: tuple[str, ...] = (
    "PERSON",
    "LOCATION",
    "ZIP",
    "FACILITY",
    "DATE",
    "AGE",
    "PHONE",
    "FAX",
    "EMAIL",
    "SSN",
    "MRN",
    "HEALTH_PLAN",
    "ACCOUNT",
    "LICENSE",
    "VEHICLE",
    "DEVICE_ID",
    "URL",
    "IP_ADDRESS",
    "ACCESSION",
    "ENCOUNTER",
)


@dataclass(frozen=True)
class PhiEntity:
    """One detected span of PHI: ``text[start:end]`` of the input is of ``entity_type``.

    Deliberately holds no copy of the text, so an entity can be logged, counted or returned
    to a caller without carrying the PHI it points at.
    """

    entity_type: str
    start: int
    end: int
    score: float

    def __post_init__(self) -> None:
        if self.entity_type not in PHI_ENTITY_TYPES:
            raise ValueError(
                f"entity_type must be one of PHI_ENTITY_TYPES, got {self.entity_type!r}"
            )
        if not 0 <= self.start < self.end:
            raise ValueError(f"a span needs 0 <= start < end, got [{self.start}, {self.end})")

    def overlaps(self, other: PhiEntity) -> bool:
        """True where the two spans share at least one character."""
        return self.start < other.end and other.start < self.end
