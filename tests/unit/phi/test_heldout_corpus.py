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

Measured before and after one round of generalisation work (``PhiAnonymizer()`` with its
default config; deterministic, 1-3 s for the 104 notes after a ~1 s load). That work fixed
miss *categories* (word names such as "Will" in name positions, lower-case names after titles,
names before "DOB"/"94F", tab-separated tables by column header, HL7 v2 fields by position,
day/month dates, "Mar-21", ages in words, UK/AU phones, Canadian/Australian/South African
address lines, flat and lot lines, practices/care homes/pharmacies, "Hosp no", reference and
claim numbers, UK plates, eponyms and label words as false names, TNM stages as postcodes),
each with unit tests on new examples. The **even-indexed notes (0, 2, 4, ...) were used as a
dev set** (their misses were read); the odd-indexed notes were only scored in aggregate, before
and after. So the full-set "after" number is partly tuned; **the odd-indexed half is the honest
held-out number.**

============  ======  =========  ======  =========
set           before             after
------------  -----------------  -----------------
(spans)       recall  precision  recall  precision
============  ======  =========  ======  =========
dev (168)     0.6964     0.9422  0.9643     0.9895
test (164)    0.7134     0.9543  0.8354     0.9756
full (332)    0.7048     0.9484  0.9006     0.9828
============  ======  =========  ======  =========

Full set after, per entity (recall / precision): PERSON 0.88/0.97, LOCATION 0.96/0.98,
ZIP 1.00/1.00, FACILITY 0.73/1.00, DATE 0.98/1.00, AGE 0.94/1.00, PHONE 1.00/1.00,
FAX/EMAIL/SSN 1.00/1.00, MRN 0.93/1.00, HEALTH_PLAN 0.78/0.93, ACCOUNT 0.63/1.00,
LICENSE 0.75/1.00, VEHICLE 1.00/0.95, DEVICE_ID 0.86/1.00, URL 0.75/1.00,
IP_ADDRESS 1.00/1.00, ACCESSION 0.67/1.00, ENCOUNTER 0.75/1.00.

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

#: measured 0.9006 and 0.9828 (0.7048 and 0.9484 before; dev-tuned, see the module docstring);
#: guards against regressions
RECALL_FLOOR = 0.88
PRECISION_FLOOR = 0.96


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
