"""The synthetic corpus: reproducible, varied, and its spans point at the PHI."""

from __future__ import annotations

import re

from securemed.phi.corpus import generate_phi_notes
from securemed.phi.entities import PHI_ENTITY_TYPES


def test_same_seed_same_notes_other_seed_other_notes() -> None:
    assert generate_phi_notes(20, seed=3) == generate_phi_notes(20, seed=3)
    assert generate_phi_notes(20, seed=3) != generate_phi_notes(20, seed=4)


def test_spans_are_in_range_ordered_disjoint_and_trimmed() -> None:
    for note in generate_phi_notes(100, seed=1):
        previous_end = 0
        for entity_type, start, end in note.spans:
            assert entity_type in PHI_ENTITY_TYPES
            assert previous_end <= start < end <= len(note.text)
            value = note.text[start:end]
            assert value == value.strip() and any(c.isalnum() for c in value)
            previous_end = end


def test_spans_hold_values_of_their_kind() -> None:
    checks = {
        "SSN": r"\d{3}[- ]?\d{2}[- ]?\d{4}",
        "EMAIL": r"[^@\s]+@[\w.-]+\.\w+",
        "AGE": r"(9\d|1[01]\d)",
        "IP_ADDRESS": r"[\d.]+|[0-9a-f:]+",
    }
    for note in generate_phi_notes(200, seed=2):
        for entity_type, start, end in note.spans:
            if entity_type in checks:
                assert re.fullmatch(checks[entity_type], note.text[start:end], re.IGNORECASE)


def test_ssns_are_ones_the_ssa_could_issue() -> None:
    for note in generate_phi_notes(200, seed=5):
        for entity_type, start, end in note.spans:
            if entity_type == "SSN":
                digits = re.sub(r"\D", "", note.text[start:end])
                assert digits[:3] not in {"000", "666"} and digits[0] != "9"
                assert digits[3:5] != "00" and digits[5:] != "0000"


def test_every_type_every_style_and_capitals_occur_in_500_notes() -> None:
    notes = generate_phi_notes(500, seed=0)
    assert {t for note in notes for t, _, _ in note.spans} == set(PHI_ENTITY_TYPES)
    styles = {note.style for note in notes}
    assert len({s.removesuffix("-caps") for s in styles}) == 8
    assert any(s.endswith("-caps") for s in styles)


def test_distractors_that_are_not_phi_are_present_outside_spans() -> None:
    notes = generate_phi_notes(200, seed=0)
    for distractor in (r"\d+ mg", r"BP 132/84", r"\b[1-8]\d-year-old", r"in 2015"):
        assert any(re.search(distractor, note.text) for note in notes), distractor
