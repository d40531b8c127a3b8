"""Operators on their own: pure functions of (type, value, patient) and a key."""

from __future__ import annotations

import re

import pytest

from securemed.phi.operators import Pseudonymize, Redact, ShiftDates, Tag, normalize_value

KEY = bytes(range(32))


def test_redact_hides_the_kind_and_tag_names_it() -> None:
    assert Redact()("PERSON", "Jane Doe", None) == "[REDACTED]"
    assert Redact("***")("SSN", "219-45-6788", "p1") == "***"
    assert Tag()("PERSON", "Jane Doe", None) == "<PERSON>"


def test_same_name_of_same_patient_gets_the_same_pseudonym_in_any_spelling() -> None:
    pseudonym = Pseudonymize(KEY)
    spellings = ["John Smith", "SMITH, JOHN", "Smith^John", "Mr. John Smith"]
    assert len({pseudonym("PERSON", s, "patient-1") for s in spellings}) == 1
    assert re.fullmatch(r"PERSON-[0-9a-f]{6}", pseudonym("PERSON", "John Smith", "patient-1"))


def test_another_patient_type_or_key_gives_another_pseudonym() -> None:
    pseudonym = Pseudonymize(KEY)
    base = pseudonym("PERSON", "John Smith", "patient-1")
    assert pseudonym("PERSON", "John Smith", "patient-2") != base
    assert pseudonym("LOCATION", "John Smith", "patient-1") != f"LOCATION-{base[7:]}"
    assert Pseudonymize(bytes(32))("PERSON", "John Smith", "patient-1") != base
    assert pseudonym("PERSON", "Jane Smith", "patient-1") != base


def test_pseudonym_does_not_contain_the_value_and_short_keys_are_refused() -> None:
    assert "smith" not in Pseudonymize(KEY, hex_chars=16)("PERSON", "Smith", None).lower()
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymize(b"short")


def test_identifiers_normalise_without_separators() -> None:
    assert normalize_value("MRN", "12-34-56") == normalize_value("MRN", "123456")


def test_dates_shift_by_one_offset_per_patient_in_their_own_format() -> None:
    shift = ShiftDates(KEY, max_days=30)
    offset = shift.offset_days("p1")
    assert offset != 0 and -30 <= offset <= 30
    first, second = shift("DATE", "2021-03-04", "p1"), shift("DATE", "2021-03-14", "p1")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", first)
    import datetime as dt

    gap = dt.date.fromisoformat(second) - dt.date.fromisoformat(first)
    assert gap.days == 10  # intervals between one patient's dates survive
    assert re.fullmatch(r"[A-Z][a-z]+ \d{2}, \d{4}", shift("DATE", "March 4, 2021", "p1"))


def test_date_shift_falls_back_for_other_types_and_unparseable_dates() -> None:
    shift = ShiftDates(KEY)
    assert shift("PERSON", "Jane", "p1") == "<PERSON>"
    assert shift("DATE", "the 4th", "p1") == "<DATE>"
