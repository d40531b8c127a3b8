"""A held-out check of the PHI anonymizer on hand-written notes it was not developed against.

``tests/data/phi_heldout.jsonl`` holds 104 short synthetic clinical texts (invented people,
numbers and addresses; no real patient) with 332 annotated PHI spans. It was written by a
different author from the recognizers and the synthetic corpus, *without* reading
``recognizers.py``, ``vocabulary.py``, ``detection.py`` or the corpus templates, to check
whether the recall measured on ``generate_phi_notes`` (0.9996 on 500 notes) carries over to
text the recognizers were not tuned on. It does not, and this module records by how much.

Styles: radiology requisitions, nursing handovers and SBARs, referral e-mails with signature
blocks, discharge summaries with headers, telegraphic ED triage, tab-separated spreadsheet
pastes, HL7 v2 segments (MSH/PID/PV1/OBX/IN1), notes with typos and lower-case names, names
that are common words (Hope, Rose, Will, Mark, Summer, Joy, Grace, Dale, Heath), hyphenated,
apostrophe and non-Anglo names, international phone numbers, UK/Canadian/South African
postcodes, PO boxes and flat numbers, dates such as "3rd March", "03.04.21", "Mar-21",
"15/3", "20230412", ages written "92yo", "94F", "aged ninety-one"; and 18 notes with no PHI at
all (vital signs, doses, vertebral levels, durations, ages <= 89, years, scores, eponyms).

Annotation conventions (those of :mod:`securemed.phi.corpus` and :mod:`securemed.phi.entities`):
a span is the value only, so titles ("Dr", "Mrs", "Sr.", "Nurse"), labels ("MRN:", "SN"),
issuer prefixes written apart from the number ("IHI", "NY" before a Medicaid id), a state or
province, a weekday and a time of day are outside it; an AGE span is the number (or words) of
an age of 90 or more only; a street line with its flat/unit/suite is one LOCATION span and the
city another. **Eponyms are not PHI**: "Parkinson's disease", "Down syndrome", "Foley catheter",
"Glasgow Coma Scale", "Colles fracture", "Holter", "Hartmann's procedure" and the like name a
disease, device or scale, not the patient, and are left unannotated (flagging them counts
against precision). A registered newborn name ("Baby Boy Abara") is one PERSON span.

Measured on the current implementation (``PhiAnonymizer()`` with its default config; the
result is deterministic, 2-3 s for the 104 notes after a ~1 s load):

============  =====  ======  =========
entity        spans  recall  precision
============  =====  ======  =========
PERSON          127  0.7165     0.9067
LOCATION         24  0.7083     0.8922
ZIP               9  0.7778     0.8800
FACILITY         11  0.4545     1.0000
DATE             44  0.7955     1.0000
AGE              16  0.6250     1.0000
PHONE            20  0.7500     1.0000
FAX               3  1.0000     1.0000
EMAIL             9  1.0000     1.0000
SSN               4  1.0000     1.0000
MRN              15  0.4667     1.0000
HEALTH_PLAN       9  0.6667     1.0000
ACCOUNT           8  0.2500     1.0000
LICENSE           4  0.7500     1.0000
VEHICLE           4  0.5000     0.9231
DEVICE_ID         7  0.5714     1.0000
URL               4  0.7500     1.0000
IP_ADDRESS        4  1.0000     1.0000
ACCESSION         6  0.6667     1.0000
ENCOUNTER         4  0.7500     1.0000
overall         332  0.7048     0.9484
============  =====  ======  =========

So the 0.99 recall target is **not** met on this set; the floors below are regression guards
(measured minus 0.02), not targets. Raise them when the recognizers improve. Do not tune the
recognizers on this file and then quote it as held-out: once it has been used for tuning, it
needs a successor written by someone who has not seen the recognizers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securemed.phi import PHI_ENTITY_TYPES, PhiAnonymizer
from securemed.phi.corpus import AnnotatedNote
from securemed.phi.evaluation import evaluate, format_table

HELDOUT = Path(__file__).resolve().parents[2] / "data" / "phi_heldout.jsonl"

#: measured 0.7048 (234 of 332 spans fully removed) and 0.9484; guards against regressions
RECALL_FLOOR = 0.68
PRECISION_FLOOR = 0.92


def _load() -> list[AnnotatedNote]:
    notes = []
    with HELDOUT.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                spans = tuple((t, int(s), int(e)) for t, s, e in row["spans"])
                notes.append(AnnotatedNote(row["text"], spans, style="heldout"))
    return notes


@pytest.fixture(scope="module")
def notes() -> list[AnnotatedNote]:
    return _load()


@pytest.fixture(scope="module")
def anonymizer() -> PhiAnonymizer:
    return PhiAnonymizer()


def test_fixture_is_well_formed(notes: list[AnnotatedNote]) -> None:
    assert 80 <= len(notes) <= 120
    assert sum(not note.spans for note in notes) >= 10, "negatives (no PHI) are part of the set"
    seen = set()
    for note in notes:
        previous_end = 0
        for entity_type, start, end in note.spans:
            assert entity_type in PHI_ENTITY_TYPES
            assert previous_end <= start < end <= len(note.text), (note.text, start, end)
            value = note.text[start:end]
            assert value == value.strip() and any(c.isalnum() for c in value), value
            previous_end = end
            seen.add(entity_type)
    assert seen == set(PHI_ENTITY_TYPES), "every entity type has at least one held-out span"


def test_heldout_recall_and_precision_do_not_regress(
    notes: list[AnnotatedNote], anonymizer: PhiAnonymizer
) -> None:
    report = evaluate(anonymizer.find, notes)
    print()
    print(format_table(report))
    overall = report["overall"]
    assert overall["true_spans"] == 332
    assert overall["recall"] >= RECALL_FLOOR, (
        f"held-out recall {overall['recall']:.4f} fell below {RECALL_FLOOR}"
    )
    assert overall["precision"] >= PRECISION_FLOOR, (
        f"held-out precision {overall['precision']:.4f} fell below {PRECISION_FLOOR}"
    )
