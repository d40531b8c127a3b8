"""PhiAnonymizer end to end: public API, operators, deny lists, clinical text, offline."""

from __future__ import annotations

import itertools
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from securemed.phi import (
    PHI_ENTITY_TYPES,
    AnonymizedText,
    AnonymizerConfig,
    PhiAnonymizer,
    PhiEntity,
)

KEY = bytes(range(32))
NOTE = (
    "Patient: O'Neil, John  MRN: 4821937\n"
    "Seen by Dr. Maria Lopez-Garcia at St. Mary's Hospital, 123 Oak Street, Springfield, "
    "IL 62704 on 03/04/2021. DOB 03/04/1961. 93 y/o man. Phone (555) 234-9876, "
    "fax 555.234.9877, john.oneil@gmail.com, SSN 219-45-6788.\n"
    "Findings: small left pleural effusion. Mr. O'Neil is stable."
)
PHI_VALUES = ["O'Neil", "John", "4821937", "Maria", "Lopez-Garcia", "Mary's", "Oak Street",
              "Springfield", "62704", "03/04/2021", "03/04/1961", "93", "234-9876", "234.9877",
              "john.oneil@gmail.com", "219-45-6788"]  # fmt: skip


class NetworkUsedError(AssertionError):
    pass


def _no_network(*args: object, **kwargs: object) -> None:
    raise NetworkUsedError("the PHI anonymizer tried to open a network connection")


@pytest.fixture(scope="module")
def offline(request: pytest.FixtureRequest):
    """Every socket connect raises while the module's tests run (construction included)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket.socket, "connect_ex", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        yield


@pytest.fixture(scope="module")
def tagger(offline) -> PhiAnonymizer:
    return PhiAnonymizer(AnonymizerConfig(operator="tag"))


@pytest.fixture(scope="module")
def pseudonymizer(offline) -> PhiAnonymizer:
    return PhiAnonymizer(AnonymizerConfig(operator="pseudonym", pseudonym_key=KEY))


def test_tagging_removes_every_identifier_and_keeps_the_findings(tagger: PhiAnonymizer) -> None:
    result = tagger.anonymize(NOTE)
    assert isinstance(result, AnonymizedText)
    for value in PHI_VALUES:
        assert value not in result.text, value
    assert "small left pleural effusion" in result.text
    assert "<PERSON>" in result.text and "<MRN>" in result.text and "<FAX>" in result.text
    assert result.counts["DATE"] == 2 and result.counts["AGE"] == 1
    assert set(result.counts) <= set(PHI_ENTITY_TYPES)


def test_entities_point_into_the_input_and_do_not_overlap(tagger: PhiAnonymizer) -> None:
    result = tagger.anonymize(NOTE)
    assert all(isinstance(e, PhiEntity) for e in result.entities)
    assert NOTE[result.entities[0].start : result.entities[0].end] == "O'Neil, John"
    ends = [(e.start, e.end) for e in result.entities]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ends))
    assert tagger.find(NOTE) == list(result.entities)


def test_mrn_is_not_mistaken_for_a_date(tagger: PhiAnonymizer) -> None:
    (entity,) = tagger.find("MRN 4821937")
    assert entity.entity_type == "MRN"


def test_redact_replaces_every_span_with_one_marker(offline) -> None:
    redactor = PhiAnonymizer(AnonymizerConfig(operator="redact", redaction_marker="[X]"))
    result = redactor.anonymize("Dr. Jane Roe saw him on 03/04/2021.")
    assert result.text == "Dr. [X] saw him on [X]."


def test_pseudonyms_are_consistent_per_patient_and_differ_across_patients(
    pseudonymizer: PhiAnonymizer,
) -> None:
    first = pseudonymizer.anonymize("Patient: SMITH, JOHN. Mr. John Smith is well.", "p-1").text
    again = pseudonymizer.anonymize("Patient: John Smith", "p-1").text
    other = pseudonymizer.anonymize("Patient: John Smith", "p-2").text
    (one,) = set(re.findall(r"PERSON-[0-9a-f]{6}", again))
    assert set(re.findall(r"PERSON-[0-9a-f]{6}", first)) == {one}
    assert re.findall(r"PERSON-[0-9a-f]{6}", other) != [one]


def test_pseudonyms_depend_on_the_key(pseudonymizer: PhiAnonymizer, offline) -> None:
    other_key = PhiAnonymizer(AnonymizerConfig(operator="pseudonym", pseudonym_key=bytes(32)))
    text = "Patient: John Smith"
    assert other_key.anonymize(text, "p-1").text != pseudonymizer.anonymize(text, "p-1").text


def test_known_identifiers_are_removed_in_every_order(tagger: PhiAnonymizer) -> None:
    text = "Zyx Qwerty came in; QWERTY, ZYX agreed; qwerty^zyx; id ab-99-12 noted. zyxqwerty ok."
    result = tagger.anonymize(text, known_identifiers=("QWERTY^ZYX", "AB-99-12"))
    assert result.text == (
        "<PERSON> came in; <PERSON> agreed; <PERSON>; id <MRN> noted. zyxqwerty ok."
    )


CLINICAL = [
    "PA and lateral views of the chest.", "Pleural effusion, left greater than right.",
    "Cardiomegaly without edema.", "Left lower lobe opacity.", "CT chest recommended.",
    "Foley catheter in place.", "Swan-Ganz catheter removed.", "Lasix 40 mg IV BID.",
    "BP 132/84, HR 88, SpO2 94% on 2 L NC.", "EF 35% on echo in 2019.",
    "Hx of Parkinson's disease.", "A 67-year-old man with COPD exacerbation.",
    "Brief Hospital Course: treated for pneumonia.", "Follow up in Pulmonary Clinic in 2 weeks.",
    "IMPRESSION: No pneumothorax. Stable 8 mm nodule in the right upper lobe.",
    "CXR PA AND LATERAL: CARDIOMEGALY. SMALL LEFT PLEURAL EFFUSION. FOLEY IN PLACE.",
]  # fmt: skip


@pytest.mark.parametrize("text", CLINICAL)
def test_clinical_vocabulary_survives(tagger: PhiAnonymizer, text: str) -> None:
    assert tagger.anonymize(text).text == text


def test_email_and_url_checks_need_no_network(tagger: PhiAnonymizer) -> None:
    result = tagger.anonymize("Mail jane@example.org or see https://portal.example.org/x")
    assert result.counts == {"EMAIL": 1, "URL": 1}


def test_concurrent_calls_give_the_same_answers(tagger: PhiAnonymizer) -> None:
    expected = tagger.anonymize(NOTE).text
    barrier = threading.Barrier(4)

    def run(_: int) -> str:
        barrier.wait()
        return tagger.anonymize(NOTE).text

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(run, range(8))) == {expected}


def test_date_shifting_keeps_a_dated_sentence_readable(offline) -> None:
    shifter = PhiAnonymizer(AnonymizerConfig(shift_dates=True, pseudonym_key=KEY))
    text = shifter.anonymize("Admitted 2021-03-04, discharged 2021-03-14.", "p-1").text
    dates = re.findall(r"\d{4}-\d{2}-\d{2}", text)
    assert len(dates) == 2 and "2021-03-04" not in dates


def test_empty_text_has_nothing_to_remove(tagger: PhiAnonymizer) -> None:
    assert tagger.anonymize("").text == "" and tagger.find("   ") == []


def test_bad_configuration_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="operator must be 'redact', 'tag' or 'pseudonym'"):
        AnonymizerConfig(operator="encrypt")
    with pytest.raises(ValidationError, match="16 bytes"):
        AnonymizerConfig(operator="pseudonym", pseudonym_key=b"short")
    with pytest.raises(ValidationError, match="unknown entity types"):
        AnonymizerConfig(entity_types=("NAME",))
    with pytest.raises(ValidationError):
        AnonymizerConfig(score_threshold=1.5)


def test_config_repr_never_shows_the_key() -> None:
    assert KEY.hex() not in repr(AnonymizerConfig(operator="pseudonym", pseudonym_key=KEY))
    assert str(KEY) not in repr(AnonymizerConfig(operator="pseudonym", pseudonym_key=KEY))
