"""The synthetic clinical notes: reproducible, the two styles' shapes, exact PHI spans."""

from __future__ import annotations

import hashlib

import pytest

from securemed.data.clinical_notes import NOTE_STYLES, generate_clinical_notes
from securemed.phi.corpus import generate_phi_notes


@pytest.mark.parametrize(("style", "low", "high"), [("simple", 40, 90), ("mimic", 120, 260)])
def test_each_style_has_its_length_and_its_phi(style: str, low: int, high: int) -> None:
    notes = generate_clinical_notes(200, seed=0, style=style)
    assert {note.style for note in notes} == {style}
    for note in notes:
        assert low <= len(note.text.split()) <= high
        kinds = {kind for kind, _, _ in note.spans}
        assert "PERSON" in kinds and "MRN" in kinds and "DATE" in kinds


def test_every_span_is_exactly_its_value() -> None:
    for note in generate_clinical_notes(300, seed=1):
        for _kind, start, end in note.spans:
            value = note.text[start:end]
            assert value and value == value.strip()
        assert [span[1] for span in note.spans] == sorted(span[1] for span in note.spans)


def test_mimic_notes_carry_the_discharge_summary_sections() -> None:
    note = generate_clinical_notes(1, seed=2, style="mimic")[0].text
    for heading in ("Admission Date:", "Chief Complaint:", "History of Present Illness:",
                    "Discharge Medications:", "Followup Instructions:"):  # fmt: skip
        assert heading in note


def test_mixed_alternates_the_styles_and_seeds_reproduce() -> None:
    notes = generate_clinical_notes(6, seed=3)
    assert [note.style for note in notes] == [*NOTE_STYLES] * 3
    assert notes == generate_clinical_notes(6, seed=3)
    assert notes != generate_clinical_notes(6, seed=4)


def test_notes_never_repeat() -> None:
    texts = [note.text for note in generate_clinical_notes(3000, seed=5)]
    assert len(set(texts)) == len(texts)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        generate_clinical_notes(-1, seed=0)
    with pytest.raises(ValueError, match="unknown style"):
        generate_clinical_notes(1, seed=0, style="poem")  # type: ignore[arg-type]


def test_the_phi_corpus_is_unchanged_by_sharing_its_faker() -> None:
    # the PHI evaluation's measured numbers rest on this exact corpus
    digest = hashlib.sha256()
    for note in generate_phi_notes(500, 0) + generate_phi_notes(300, 7):
        digest.update(repr((note.text, note.spans, note.style)).encode())
    assert digest.hexdigest() == "722cff84bd03ce7f0f0b19cabfe84c74e0b5d298b53f0b69fd866ca55f8dc09e"
