"""Synthetic clinical notes with PHI, for the membership-inference study on a notes LM.

A language model fine-tuned on notes is what a hospital would train first; the audit
(:mod:`securemed.audit.notes_study`) measures what such a model gives away about the notes it
saw. For that the notes need two things real notes have: shared structure a model can learn
(sections, templated phrasing, clinical vocabulary drawn from plausible distributions), and
details unique to each note, chiefly its PHI, that only memorisation can predict.

Two styles:

- ``simple``: a short ward progress note (about 40-90 words);
- ``mimic``: a discharge summary laid out as in MIMIC-III (header with name, unit number,
  admission, discharge and birth dates, service and attending, then the usual sections),
  about 120-260 words.

All PHI is fake, drawn by :mod:`securemed.phi.corpus`'s faker from small hand-written pools
and random digits; spans follow that module's ground-truth conventions, so the same notes can
also measure the anonymizer.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Literal

from securemed.phi.corpus import (
    CITIES,
    COMPLAINTS,
    FINDINGS,
    AnnotatedNote,
    FakePatient,
    NoteFaker,
    NoteWriter,
    draw_patient,
    write_age,
)

NoteStyle = Literal["simple", "mimic"]
NOTE_STYLES: tuple[NoteStyle, ...] = ("simple", "mimic")

HISTORY = (
    "hypertension", "type 2 diabetes mellitus", "hyperlipidemia", "atrial fibrillation",
    "COPD", "CHF with reduced EF", "CKD stage 3", "coronary artery disease s/p PCI",
    "hypothyroidism", "GERD", "obstructive sleep apnea", "depression", "osteoarthritis",
)  # fmt: skip
MEDICATIONS = (
    "Lisinopril 10 mg PO daily", "Metformin 500 mg PO BID", "Atorvastatin 40 mg PO QHS",
    "Apixaban 5 mg PO BID", "Furosemide 40 mg PO daily", "Metoprolol succinate 50 mg PO daily",
    "Levothyroxine 75 mcg PO daily", "Omeprazole 20 mg PO daily", "Aspirin 81 mg PO daily",
    "Tiotropium 18 mcg inhaled daily", "Sertraline 50 mg PO daily",
    "Insulin glargine 20 units SC QHS",
)  # fmt: skip
EXAM = (
    "Alert and oriented x3, in no acute distress.",
    "Lungs with bibasilar crackles, no wheezes.",
    "Lungs clear to auscultation bilaterally.",
    "Regular rate and rhythm, no murmurs.",
    "Irregularly irregular rhythm, 2/6 systolic murmur.",
    "Abdomen soft, non-tender, non-distended.",
    "2+ pitting edema to the knees bilaterally.",
    "Extremities warm, no edema.",
)
COURSE = (
    "Treated with IV diuresis with improvement in symptoms and oxygen requirement.",
    "Started on ceftriaxone and azithromycin for community-acquired pneumonia, "
    "transitioned to oral antibiotics.",
    "Managed with nebulizers and a steroid taper; weaned to room air.",
    "Rate controlled with metoprolol; anticoagulation continued.",
    "Pain controlled with acetaminophen; incentive spirometry encouraged.",
    "Blood cultures remained negative; afebrile for 48 hours before discharge.",
)
DIAGNOSES = (
    "Acute on chronic systolic heart failure", "Community-acquired pneumonia",
    "COPD exacerbation", "Atrial fibrillation with rapid ventricular response",
    "Rib fractures after mechanical fall", "Pleural effusion",
)  # fmt: skip
PLANS = (
    "Continue current regimen, daily weights, low-sodium diet.",
    "Repeat chest X-ray in 6 weeks to document resolution.",
    "Titrate diuretics to weight; BMP in 3 days.",
    "Complete 5-day course of antibiotics.",
    "PT/OT evaluation; fall precautions.",
)


def generate_clinical_notes(
    count: int, *, seed: int, style: NoteStyle | Literal["mixed"] = "mixed"
) -> list[AnnotatedNote]:
    """``count`` annotated notes; ``mixed`` alternates the styles (even indices ``simple``)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if style != "mixed" and style not in NOTE_STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {[*NOTE_STYLES, 'mixed']}")
    rng = random.Random(seed)
    faker = NoteFaker(rng)
    notes = []
    for index in range(count):
        chosen = NOTE_STYLES[index % 2] if style == "mixed" else style
        writer = NoteWriter()
        _WRITERS[chosen](writer, faker, draw_patient(faker))
        notes.append(writer.note(chosen, upper=False))
    return notes


def _some(f: NoteFaker, pool: tuple[str, ...], low: int, high: int) -> list[str]:
    return f.rng.sample(list(pool), f.rng.randint(low, high))


def _vitals(f: NoteFaker) -> str:
    rng = f.rng
    return (
        f"T {rng.uniform(36.2, 38.9):.1f} C, HR {rng.randint(58, 124)}, BP "
        f"{rng.randint(96, 172)}/{rng.randint(52, 98)}, RR {rng.randint(12, 28)}, SpO2 "
        f"{rng.randint(88, 99)}% on {rng.choice(['RA', '2 L NC', '4 L NC'])}"
    )


def _simple(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w("Progress note. Patient: ").phi("PERSON", f"{p.first} {p.last}")(", MRN ").phi("MRN", f.mrn())
    w(". ")
    write_age(w, f, p)
    w(" admitted ").phi("DATE", f.date_text(f.date(2015, 2024)))
    w(f" with {f.choice(COMPLAINTS)}. PMH: {', '.join(_some(f, HISTORY, 1, 3))}. ")
    w(f"Vitals: {_vitals(f)}. {f.choice(EXAM)} {f.choice(FINDINGS)} ")
    w(f"Plan: {f.choice(PLANS)} Discussed with Dr. ").phi("PERSON", f.last())
    w("; daughter ").phi("PERSON", f.first())(" updated at ").phi("PHONE", f.phone())(".\n")


def _mimic(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    admit = f.date(2010, 2024)
    discharge = admit + dt.timedelta(days=f.rng.randint(2, 12))
    w("Name:  ").phi("PERSON", f"{p.last}, {p.first}")("   Unit No:  ").phi("MRN", f.digits(8))
    w("\nAdmission Date:  ").phi("DATE", admit.isoformat())("   Discharge Date:  ")
    w.phi("DATE", discharge.isoformat())("\nDate of Birth:  ").phi("DATE", p.dob.isoformat())
    w(f"   Sex:  {p.sex}\nService: MEDICINE\nAttending: ").phi("PERSON", f"{f.first()} {f.last()}")
    w(f"\n\nChief Complaint:\n{f.choice(COMPLAINTS)}\n\nHistory of Present Illness:\n")
    write_age(w, f, p)
    w(f" with {', '.join(_some(f, HISTORY, 2, 3))} presenting with {f.choice(COMPLAINTS)}. ")
    w("Transferred from ").phi("FACILITY", f.facility())(". Lives in ").phi(
        "LOCATION", f.choice(CITIES)
    )
    w(f".\n\nPast Medical History:\n{'; '.join(_some(f, HISTORY, 2, 4))}\n\n")
    w(f"Medications on Admission:\n{'; '.join(_some(f, MEDICATIONS, 2, 4))}\n\n")
    w(f"Physical Exam:\n{_vitals(f)}. {' '.join(_some(f, EXAM, 2, 3))}\n\n")
    w(f"Pertinent Results:\nCXR: {f.choice(FINDINGS)}\n\n")
    w(f"Brief Hospital Course:\n{' '.join(_some(f, COURSE, 1, 2))}\n\n")
    w(f"Discharge Medications:\n{'; '.join(_some(f, MEDICATIONS, 2, 4))}\n\n")
    w(f"Discharge Diagnosis:\n{f.choice(DIAGNOSES)}\n\n")
    w(f"Discharge Instructions:\n{f.choice(PLANS)}\n\nFollowup Instructions:\nDr. ")
    w.phi("PERSON", f.full_name())(" on ").phi(
        "DATE", f.date_text(discharge + dt.timedelta(days=14))
    )
    w(", phone ").phi("PHONE", f.phone())(".\n")


_WRITERS: dict[NoteStyle, Callable[[NoteWriter, NoteFaker, FakePatient], None]] = {
    "simple": _simple,
    "mimic": _mimic,
}
