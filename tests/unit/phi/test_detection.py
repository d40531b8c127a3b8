"""The detector's pure steps: overlaps, deny lists, name propagation, NER clean-up."""

from __future__ import annotations

from securemed.phi.detection import (
    ages_after_names,
    clean_ner,
    extend_particles,
    identifier_variants,
    is_all_caps,
    known_identifier_spans,
    propagate_names,
    resolve_overlaps,
)
from securemed.phi.entities import PhiEntity


def spans(text: str, entities: list[PhiEntity]) -> list[tuple[str, str]]:
    return [(e.entity_type, text[e.start : e.end]) for e in entities]


def test_higher_score_wins_an_overlap_and_the_loser_keeps_its_outside_part() -> None:
    resolved = resolve_overlaps(
        [PhiEntity("DATE", 0, 7, 0.6), PhiEntity("MRN", 0, 7, 0.9), PhiEntity("PERSON", 5, 15, 0.5)]
    )
    assert resolved == [PhiEntity("MRN", 0, 7, 0.9), PhiEntity("PERSON", 7, 15, 0.5)]


def test_same_type_overlaps_merge_into_their_union() -> None:
    resolved = resolve_overlaps([PhiEntity("PERSON", 0, 4, 0.6), PhiEntity("PERSON", 2, 9, 0.8)])
    assert resolved == [PhiEntity("PERSON", 0, 9, 0.8)]


def test_tied_scores_go_to_the_longer_span() -> None:
    resolved = resolve_overlaps(
        [PhiEntity("LOCATION", 0, 5, 0.8), PhiEntity("FACILITY", 0, 9, 0.8)]
    )
    assert resolved == [PhiEntity("FACILITY", 0, 9, 0.8)]


def test_dicom_name_is_found_in_every_order_and_word_by_word() -> None:
    text = "Patient Jane Doe (DOE, JANE); doe^jane called; Ms. Doe agreed. Doeville is a place."
    found = spans(text, resolve_overlaps(known_identifier_spans(text, ["DOE^JANE"])))
    assert found == [
        ("PERSON", "Jane Doe"), ("PERSON", "DOE, JANE"), ("PERSON", "doe^jane"), ("PERSON", "Doe")
    ]  # fmt: skip


def test_identifiers_with_digits_are_found_with_and_without_separators() -> None:
    assert identifier_variants("12-345-678") == ("MRN", ["12-345-678", "12345678"])
    text = "ID 12345678 and 12-345-678 but not 123456789"
    assert spans(text, known_identifier_spans(text, ["12-345-678"])) == [
        ("MRN", "12-345-678"), ("MRN", "12345678")
    ]  # fmt: skip
    assert identifier_variants("2021-03-04")[0] == "DATE"
    assert known_identifier_spans(text, ["", "   "]) == []


def test_a_name_found_once_is_found_everywhere_in_the_note() -> None:
    text = "Patient: SMITH, JOHN\nMr Smith reports that john slept."
    header = [PhiEntity("PERSON", 9, 20, 0.7)]
    assert spans(text, propagate_names(text, header)) == [
        ("PERSON", "SMITH"), ("PERSON", "JOHN"), ("PERSON", "Smith"), ("PERSON", "john")
    ]  # fmt: skip


def test_particles_before_a_name_join_it() -> None:
    text = "seeing de la Cruz today"
    assert extend_particles(text, PhiEntity("PERSON", 13, 17, 0.6)) == PhiEntity(
        "PERSON", 7, 17, 0.6
    )


def test_ner_spans_of_clinical_words_states_and_digits_are_dropped() -> None:
    text = (
        "Cardiomegaly. Foley in place. CT chest. Illinois. Lasix 40. Dr. Jane Roe. Mercy Hospital"
    )
    assert clean_ner(text, "LOCATION", 0, 12) is None
    assert clean_ner(text, "PERSON", 14, 19) is None
    assert clean_ner(text, "FACILITY", 30, 32) is None
    assert clean_ner(text, "LOCATION", 40, 48) is None
    assert clean_ner(text, "PERSON", 50, 58) is None
    start, end = clean_ner(text, "PERSON", 60, 72)
    assert text[start:end] == "Jane Roe"
    start, end = clean_ner(text, "FACILITY", 74, 88)
    assert text[start:end] == "Mercy Hospital"


def test_all_caps_detection() -> None:
    assert is_all_caps("PT SEEN BY DR. SMITH, 93 Y/O.")
    assert not is_all_caps("Pt seen by Dr. Smith.")


def test_eponyms_followed_by_their_noun_are_not_ner_names() -> None:
    text = "Bloggs fracture of the wrist; Nakamura procedure planned"
    assert clean_ner(text, "PERSON", 0, 6) is None
    assert clean_ner(text, "PERSON", 30, 38) is None


def test_known_eponyms_and_label_words_are_not_ner_names() -> None:
    text = "Requesting: ward 4. Mallampati 2. Holter fitted."
    assert clean_ner(text, "LOCATION", 0, 10) is None
    assert clean_ner(text, "PERSON", 20, 30) is None
    assert clean_ner(text, "PERSON", 34, 40) is None


def test_a_lone_everyday_word_is_not_a_ner_name_but_one_before_a_surname_is() -> None:
    text = "Mark the fluid chart. Mark Ellery visited."
    assert clean_ner(text, "PERSON", 0, 4) is None
    assert clean_ner(text, "PERSON", 22, 26) == (22, 26)


def test_word_names_are_not_propagated_to_every_occurrence() -> None:
    text = "Hope Varga admitted. We hope to discharge; Varga aware."
    found = propagate_names(text, [PhiEntity("PERSON", 0, 10, 0.8)])
    assert ("PERSON", "hope") not in spans(text, found)
    assert ("PERSON", "Varga") in spans(text, found)


def test_a_bare_age_of_ninety_or_more_after_a_name_is_an_age() -> None:
    text = "bed 3: mr okoro, 93, settled. mr okoro, 45 mg given"
    found = ages_after_names(text, [PhiEntity("PERSON", 10, 15, 0.6)])
    assert spans(text, found) == [("AGE", "93")]
