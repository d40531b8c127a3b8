"""A synthetic, annotated corpus of clinical notes with PHI, for measuring the anonymizer.

``generate_phi_notes(count, seed)`` writes notes in several styles (chest X-ray requests,
referral letters, discharge summaries, MIMIC-style headed notes, telegraphic ward notes,
administrative lists, device notes, portal messages), some entirely in capitals, and records
where every PHI value sits. The same seed gives the same notes.

Ground-truth conventions (the evaluation relies on them):

* A span is the identifying value only: "Dr. " before a name, "MRN: " before a number, the
  state in "Springfield, IL 62704" and a weekday are outside the spans.
* "Smith, John", "SMITH^JOHN" and "John A. Smith" are each one PERSON span.
* A street line ("12 Oak Street, Apt 4B") is one LOCATION span; the city is another; the ZIP or
  postcode is a ZIP span.
* A year alone ("in 2019") and ages of 89 or less are not PHI, following Safe Harbor; dates
  with a day or a month are.
* Not PHI and present on purpose as distractors: drug doses, vital signs ("BP 132/84"), lab
  values, years, small ages, vertebral levels, ICD codes, eponyms ("Parkinson's disease"),
  device makers, departments ("Pulmonary Clinic") and the clinical words a small NER model
  mistakes for names and places.

The value pools are small hand-written lists and random digits; the recognizers do not see
these lists. SSNs are valid-looking (area 001-665 or 667-899, group and serial non-zero).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

Span = tuple[str, int, int]


@dataclass(frozen=True)
class AnnotatedNote:
    """A note and its ground truth: ``(entity_type, start, end)`` for every PHI value."""

    text: str
    spans: tuple[Span, ...]
    style: str = ""


class NoteWriter:
    """Appends text and PHI values, recording each PHI value's span."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.length = 0

    def __call__(self, *pieces: str) -> NoteWriter:
        for piece in pieces:
            self.parts.append(piece)
            self.length += len(piece)
        return self

    def phi(self, entity_type: str, value: str) -> NoteWriter:
        self.spans.append((entity_type, self.length, self.length + len(value)))
        return self(value)

    def note(self, style: str, upper: bool) -> AnnotatedNote:
        text = "".join(self.parts)
        if upper and len(text.upper()) == len(text):
            text = text.upper()
        return AnnotatedNote(text, tuple(self.spans), style + ("-caps" if upper else ""))


# --- value pools -------------------------------------------------------------------------------

FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Maria",
    "Jose",
    "Guadalupe",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Priya",
    "Rahul",
    "Aisha",
    "Mohammed",
    "Fatima",
    "Omar",
    "Chidi",
    "Ngozi",
    "Kwame",
    "Amara",
    "Sean",
    "Siobhan",
    "Niamh",
    "Declan",
    "Anna-Marie",
    "Jean-Luc",
    "Zoe",
    "Chloe",
    "Olga",
    "Dmitri",
    "Ingrid",
    "Lars",
    "Astrid",
    "Giulia",
    "Matteo",
    "Sofia",
    "Lucia",
    "Hannah",
    "Ethan",
    "Noah",
    "Ava",
    "Liam",
    "Grace",
    "Dolores",
    "Harold",
    "Mildred",
    "Eugene",
    "Bernice",
    "Clarence",
    "Thelma",
]
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "O'Neil",
    "O'Brien",
    "D'Angelo",
    "McDonald",
    "MacLeod",
    "Lopez-Garcia",
    "Smith-Jones",
    "Nguyen",
    "Tran",
    "Kim",
    "Park",
    "Chen",
    "Wang",
    "Patel",
    "Shah",
    "Okafor",
    "Adeyemi",
    "Mensah",
    "Kowalski",
    "Nowak",
    "Novak",
    "Muller",
    "Schmidt",
    "Rossi",
    "Bianchi",
    "Haddad",
    "Al-Farsi",
    "van der Berg",
    "de la Cruz",
    "St. John",
    "Abernathy",
    "Whitfield",
    "Castellanos",
    "Yamamoto",
)
CITIES = (
    "Springfield",
    "Riverside",
    "Fairview",
    "Madison",
    "Georgetown",
    "Greenville",
    "Salem",
    "Oak Park",
    "Cedar Rapids",
    "Bowling Green",
    "Port Angeles",
    "Ann Arbor",
    "Santa Rosa",
    "Lake Forest",
    "Winston-Salem",
    "Boston",
    "Chicago",
    "Houston",
    "Phoenix",
    "Portland",
)
STATES: tuple[tuple[str, str], ...] = (
    ("IL", "Illinois"),
    ("MA", "Massachusetts"),
    ("CA", "California"),
    ("TX", "Texas"),
    ("NY", "New York"),
    ("OH", "Ohio"),
    ("WA", "Washington"),
    ("MI", "Michigan"),
    ("PA", "Pennsylvania"),
    ("GA", "Georgia"),
    ("OR", "Oregon"),
    ("NC", "North Carolina"),
)
STREETS = (
    "Oak",
    "Maple",
    "Main",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Pine",
    "Sunset",
    "River",
    "Church",
    "Highland",
    "Mill",
    "Walnut",
    "Martin Luther King",
    "Old Mill",
)
STREET_TYPES = (
    "Street",
    "St",
    "St.",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Boulevard",
    "Blvd",
    "Lane",
    "Drive",
    "Dr",
    "Court",
    "Way",
    "Place",
    "Terrace",
    "Circle",
    "Parkway",
)
FACILITY_PREFIXES = (
    "St. Mary's",
    "Saint Joseph",
    "Mercy",
    "Good Samaritan",
    "Lakeside",
    "Riverside Regional",
    "Springfield General",
    "Northwestern Memorial",
    "Providence",
    "Sacred Heart",
    "Baptist",
    "Cedar Valley",
    "Mount Auburn",
    "Beth Israel",
    "Royal Victoria",
    "Fairview Southdale",
)
FACILITY_TYPES = (
    "Hospital",
    "Medical Center",
    "Clinic",
    "Health Center",
    "Infirmary",
    "Hospital",
    "Medical Center",
    "Regional Hospital",
    "Rehabilitation Center",
    "Nursing Home",
)
ODD_FACILITIES = (
    "Hospital of Saint Raphael",
    "University of Michigan Health System",
    "Mayo Clinic",
    "Cleveland Clinic",
    "Hôpital Saint-Louis",
    "Royal London Hospital",
    "Massachusetts General Hospital",
    "Children's Hospital of Philadelphia",
)
EMAIL_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.co.uk",
    "web.de",
    "stmarys-health.org",
    "mercyhealth.net",
    "uni-klinik.de",
    "nhs.net",
)
COMPLAINTS = (
    "cough and fever",
    "shortness of breath",
    "pleuritic chest pain",
    "fall, rule out rib fracture",
    "CHF exacerbation",
    "post-op day 1, ETT placement",
    "pneumonia follow-up",
    "hemoptysis",
    "rule out pneumothorax after central line placement",
    "COPD exacerbation",
    "weight loss",
)
FINDINGS = (
    "Small left pleural effusion with adjacent atelectasis.",
    "Cardiomegaly without edema.",
    "Left lower lobe opacity concerning for pneumonia.",
    "No pneumothorax.",
    "Mild pulmonary vascular congestion.",
    "Right IJ central line tip in the SVC.",
    "Endotracheal tube 4 cm above the carina.",
    "Hyperinflated lungs consistent with COPD.",
    "Stable 8 mm nodule in the right upper lobe.",
    "Kerley B lines, interstitial edema.",
    "Degenerative changes of the thoracic spine, T10 compression deformity unchanged.",
    "Pleural thickening at the right apex.",
    "Foley catheter noted in the bladder.",
)
DISTRACTORS = (
    "Lasix 40 mg IV BID.",
    "BP 132/84, HR 88, RR 18, SpO2 94% on 2 L NC.",
    "Temp 38.2 C.",
    "WBC 12.4, Hgb 10.1, Na 134, Cr 1.2, INR 2.3.",
    "Metoprolol 25 mg PO daily.",
    "EF 35% on echo in 2019.",
    "Smoker, 30 pack-years, quit in 2015.",
    "NYHA class III.",
    "Hx of Parkinson's disease and Crohn's disease.",
    "ICD-10 J18.9.",
    "COVID-19 negative.",
    "L4-L5 disc disease.",
    "Grade 2/6 systolic murmur.",
    "BMI 31.2.",
    "Aspirin 81 mg daily.",
    "Pain 5/10.",
    "Seen in Pulmonary Clinic last year.",
    "Medtronic dual-chamber pacemaker.",
    "Follow up in 2 weeks.",
    "Alzheimer's dementia, mild.",
    "Hodgkin lymphoma in 1998.",
    "PA and lateral views.",
    "CT chest with contrast recommended.",
    "Swan-Ganz catheter removed.",
    "Albuterol 2.5 mg nebulized q4h PRN.",
    "Weight 82.5 kg.",
    "Glucose 145.",
)
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


class NoteFaker:
    """Random PHI values in varied formats, from one seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choice(self, options: tuple[str, ...] | list[str]) -> str:
        return self.rng.choice(list(options))

    def digits(self, count: int) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(count))

    def first(self) -> str:
        return self.choice(FIRST_NAMES)

    def last(self) -> str:
        return self.choice(LAST_NAMES)

    def full_name(self) -> str:
        r = self.rng.random()
        if r < 0.15:
            return f"{self.first()} {self.rng.choice('ABCDEFGHJKLMNPRSTW')}. {self.last()}"
        if r < 0.22:
            return f"{self.rng.choice('ABCDEFGHJKLMNPRSTW')}. {self.last()}"
        return f"{self.first()} {self.last()}"

    def date(self, start: int = 1925, end: int = 2024) -> dt.date:
        first = dt.date(start, 1, 1).toordinal()
        last = dt.date(end, 12, 31).toordinal()
        return dt.date.fromordinal(self.rng.randint(first, last))

    def date_text(self, when: dt.date | None = None, *, partial: bool = True) -> str:
        d = when or self.date()
        month, mon = MONTHS[d.month - 1], MONTHS[d.month - 1][:3]
        ordinal = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}.get(
            d.day, "th"
        )
        formats = [
            f"{d.month:02d}/{d.day:02d}/{d.year}",
            f"{d.month}/{d.day}/{d.year}",
            f"{d.month:02d}/{d.day:02d}/{d.year % 100:02d}",
            f"{d.year}-{d.month:02d}-{d.day:02d}",
            f"{month} {d.day}, {d.year}",
            f"{mon} {d.day}, {d.year}",
            f"{d.day} {mon} {d.year}",
            f"{d.day:02d}-{mon.upper()}-{d.year}",
            f"{d.day:02d}.{d.month:02d}.{d.year}",
            f"{month} {d.day}{ordinal}, {d.year}",
            f"{d.day}{ordinal} of {month} {d.year}",
            f"{mon}. {d.day}, {d.year}",
            f"{d.year}/{d.month:02d}/{d.day:02d}",
            f"{d.month}-{d.day}-{d.year}",
            f"{d.day:02d}{mon.upper()}{d.year}",
        ]
        formats += [f"{mon} '{d.year % 100:02d}" if partial else f"{month} {d.day}, {d.year}"]
        if partial:
            formats += [
                f"{d.month:02d}/{d.year}",
                f"{month} {d.year}",
                f"{month} {d.day}",
                f"{d.day} {month}",
                f"{mon}-{d.year}",
            ]
        return self.choice(formats)

    def phone(self) -> str:
        area, mid, last = self.rng.randint(201, 989), self.rng.randint(200, 999), self.digits(4)
        return self.choice(
            [
                f"({area}) {mid}-{last}",
                f"{area}-{mid}-{last}",
                f"{area}.{mid}.{last}",
                f"{area} {mid} {last}",
                f"+1 {area} {mid} {last}",
                f"1-{area}-{mid}-{last}",
                f"+1 ({area}) {mid}-{last}",
                f"{area}-{mid}-{last} x{self.rng.randint(10, 9999)}",
                f"+44 20 {self.digits(4)} {self.digits(4)}",
                f"+49 30 {self.digits(8)}",
                f"+33 1 {self.digits(2)} {self.digits(2)} {self.digits(2)} {self.digits(2)}",
                f"({area}){mid}-{last}",
            ]
        )

    def ssn(self) -> str:
        area = self.rng.choice([self.rng.randint(1, 665), self.rng.randint(667, 899)])
        group, serial = self.rng.randint(1, 99), self.rng.randint(1, 9999)
        return self.choice(
            [f"{area:03d}-{group:02d}-{serial:04d}"] * 3
            + [f"{area:03d} {group:02d} {serial:04d}", f"{area:03d}{group:02d}{serial:04d}"]
        )

    def mrn(self) -> str:
        return self.choice(
            [
                self.digits(7),
                self.digits(8),
                self.digits(10),
                f"MRN{self.digits(7)}",
                f"E{self.digits(8)}",
                f"{self.digits(2)}-{self.digits(2)}-{self.digits(2)}",
                f"{self.digits(3)}-{self.digits(4)}",
                f"A{self.digits(6)}",
                f"{self.digits(3)} {self.digits(3)} {self.digits(4)}",
            ]
        )

    def email(self, first: str, last: str) -> str:
        f = first.lower().replace("-", "").replace("'", "")
        la = last.lower().replace(" ", "").replace("'", "").replace(".", "")
        user = self.choice(
            [
                f"{f}.{la}",
                f"{f[0]}{la}{self.rng.randint(1, 99)}",
                f"{la}_{f}",
                f"{f}{self.rng.randint(1950, 2005)}",
            ]
        )
        return f"{user}@{self.choice(EMAIL_DOMAINS)}"

    def street(self) -> str:
        line = f"{self.rng.randint(1, 9999)} {self.choice(STREETS)} {self.choice(STREET_TYPES)}"
        if self.rng.random() < 0.2:
            line = f"{self.rng.randint(1, 999)} {self.choice(['N.', 'S.', 'East', 'W'])} " + (
                f"{self.choice(STREETS)} {self.choice(STREET_TYPES)}"
            )
        elif self.rng.random() < 0.1:
            line += f" {self.choice(['NW', 'SE', 'N', 'E'])}"
        if self.rng.random() < 0.25:
            line += self.choice(
                [
                    f", Apt {self.rng.randint(1, 40)}{self.rng.choice('ABCD')}",
                    f" Suite {self.rng.randint(100, 900)}",
                    f", Unit {self.digits(2)}",
                    f" #{self.rng.randint(1, 300)}",
                ]
            )
        return line

    def facility(self) -> str:
        if self.rng.random() < 0.15:
            return self.choice(ODD_FACILITIES)
        return f"{self.choice(FACILITY_PREFIXES)} {self.choice(FACILITY_TYPES)}"

    def url(self, last: str) -> str:
        slug = last.lower().replace(" ", "").replace("'", "").replace(".", "")
        return self.choice(
            [
                f"https://portal.{slug}family.com/records/{self.digits(6)}",
                f"www.{slug}-photos.net",
                f"http://mychart.stmarys-health.org/p/{self.digits(8)}",
                f"https://www.facebook.com/{slug}.{self.digits(3)}",
                f"{slug}{self.digits(2)}.blogspot.com",
                f"https://telehealth.example.org/s/{self.digits(9)}",
            ]
        )

    def ip(self) -> str:
        if self.rng.random() < 0.15:
            return f"2001:db8:{self.rng.randint(1, 9999):x}::{self.rng.randint(1, 65535):x}"
        return ".".join(str(self.rng.randint(1, 254)) for _ in range(4))

    def ident(self, prefix_letters: int = 0, length: int = 8, dashes: bool = False) -> str:
        letters = "".join(self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(prefix_letters))
        body = self.digits(length)
        if dashes and length >= 6:
            body = f"{body[:3]}-{body[3:]}"
        return letters + body

    def mbi(self) -> str:
        alpha = "ACDEFGHJKMNPQRTUVWXY"
        a = lambda: self.rng.choice(alpha)  # noqa: E731
        n = lambda: str(self.rng.randrange(10))  # noqa: E731
        an = lambda: self.rng.choice(alpha + "0123456789")  # noqa: E731
        sep = "-" if self.rng.random() < 0.5 else ""
        head = f"{self.rng.randint(1, 9)}{a()}{an()}{n()}"
        return f"{head}{sep}{a()}{an()}{n()}{sep}{a()}{a()}{n()}{n()}"

    def dea(self) -> str:
        first = self.rng.choice("ABFGM")
        second = self.rng.choice("ABCDEFGHJKLMNPRSTWZ")
        d = [self.rng.randrange(10) for _ in range(6)]
        check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
        return first + second + "".join(map(str, d)) + str(check)

    def vin(self) -> str:
        chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
        return "1" + self.rng.choice("HGFNJ") + "".join(self.rng.choice(chars) for _ in range(15))

    def plate(self) -> str:
        letters = lambda k: "".join(self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(k))  # noqa: E731
        return self.choice(
            [
                f"{self.rng.randint(1, 9)}{letters(3)}{self.digits(3)}",
                f"{letters(3)}-{self.digits(4)}",
                f"{letters(2)}{self.digits(2)} {letters(3)}",
                f"{letters(3)} {self.digits(3)}",
            ]
        )

    def serial(self) -> str:
        letters = lambda k: "".join(self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(k))  # noqa: E731
        return self.choice(
            [
                f"{letters(3)}{self.digits(6)}{letters(1)}",
                f"{self.digits(5)}-{letters(3)}",
                f"SN{self.digits(8)}",
                f"{letters(2)}{self.digits(7)}",
                self.digits(9),
            ]
        )


# --- note styles -------------------------------------------------------------------------------


@dataclass
class FakePatient:
    first: str
    last: str
    middle: str
    sex: str
    age: int
    dob: dt.date


def draw_patient(f: NoteFaker) -> FakePatient:
    age = f.rng.randint(90, 104) if f.rng.random() < 0.3 else f.rng.randint(18, 89)
    dob = f.date(1920, 2005)
    return FakePatient(
        f.first(), f.last(), f.rng.choice("ABCDEFGHJKLMNPRSTW"), f.rng.choice(["M", "F"]), age, dob
    )


def write_age(w: NoteWriter, f: NoteFaker, p: FakePatient, *, noun: bool = False) -> None:
    """An age in one of many formats; only ages over 89 are PHI. ``noun``: after "is a"."""
    unit = f.choice(["-year-old", " year old", " y/o", " yo", "yo", " y.o.", "-yr-old", " yrs old"])
    sex = {"M": f.choice(["man", "male", "gentleman"]), "F": f.choice(["woman", "female", "lady"])}
    value = str(p.age)
    kind = "AGE" if p.age > 89 else None
    if f.rng.random() < 0.25 and not noun:
        w(f"{'aged' if f.rng.random() < 0.5 else 'Age:'} ")
        w.phi(kind, value) if kind else w(value)
        w(f", {sex[p.sex]}")
    elif f.rng.random() < 0.3 and not noun:
        w.phi(kind, value) if kind else w(value)
        w(f"{p.sex}" if f.rng.random() < 0.5 else f" {p.sex}")
    else:
        w.phi(kind, value) if kind else w(value)
        w(f"{unit} {sex[p.sex]}")


def _name_forms(f: NoteFaker, p: FakePatient) -> str:
    return f.choice(
        [
            f"{p.last}, {p.first}",
            f"{p.first} {p.last}",
            f"{p.last.upper()}, {p.first.upper()}",
            f"{p.first} {p.middle}. {p.last}",
            f"{p.last.upper()}^{p.first.upper()}",
            f"{p.last}, {p.first} {p.middle}",
        ]
    )


def _address_block(w: NoteWriter, f: NoteFaker, sep: str = ", ") -> None:
    r = f.rng.random()
    if r < 0.7:
        code, name = f.rng.choice(STATES)
        w.phi("LOCATION", f.street())(sep).phi("LOCATION", f.choice(CITIES))(", ")
        w(code if f.rng.random() < 0.8 else name)(" ").phi(
            "ZIP", f.choice([f.digits(5), f"{f.digits(5)}-{f.digits(4)}"])
        )
    elif r < 0.8:
        w.phi(
            "LOCATION",
            f"Flat {f.rng.randint(1, 20)}, {f.rng.randint(1, 200)} "
            f"{f.choice(['Baker', 'Kings', 'Victoria', 'Station'])} {f.choice(['Street', 'Road'])}",
        )
        w(sep).phi("LOCATION", f.choice(["London", "Manchester", "Leeds", "Bristol"]))(" ")
        w.phi("ZIP", f.choice(["NW1 6XE", "SW1A 1AA", "M1 4BT", "LS2 9JT", "BS1 5TR", "EC1A 1BB"]))
    elif r < 0.9:
        w.phi(
            "LOCATION",
            f"{f.choice(['Hauptstraße', 'Lindenweg', 'Bahnhofstrasse', 'Gartenstraße'])} "
            f"{f.rng.randint(1, 120)}",
        )(", ").phi("ZIP", f.digits(5))(" ")
        w.phi("LOCATION", f.choice(["Berlin", "München", "Hamburg", "Köln"]))(", Germany")
    else:
        w.phi(
            "LOCATION",
            f"{f.rng.randint(1, 80)} rue {f.choice(['des Lilas', 'de la Paix', 'Victor Hugo'])}",
        )
        w(", ").phi("ZIP", f"750{f.rng.randint(10, 20)}")(" ").phi("LOCATION", "Paris")(", France")


def _cxr(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w(f.choice(["CHEST X-RAY, PA AND LATERAL\n", "CXR PORTABLE AP\n", "EXAM: Chest 2 views\n"]))
    w("Accession: " if f.rng.random() < 0.5 else "Acc #: ").phi(
        "ACCESSION",
        f.choice(
            [f.ident(0, 8), f"{f.rng.randint(2015, 2024)}-CR-{f.digits(6)}", f"RAD{f.digits(7)}"]
        ),
    )
    w("\nDate of exam: ").phi("DATE", f.date_text(f.date(2015, 2024), partial=False))("\n")
    w("CLINICAL INDICATION: ")
    write_age(w, f, p)
    w(f" with {f.choice(COMPLAINTS)}. {f.choice(DISTRACTORS)}\n")
    w("COMPARISON: ")
    if f.rng.random() < 0.6:
        w("Chest radiograph from ").phi("DATE", f.date_text(f.date(2010, 2024)))(".\n")
    else:
        w("None.\n")
    w(f"FINDINGS: {f.choice(FINDINGS)} {f.choice(FINDINGS)}\n")
    w(f"IMPRESSION: {f.choice(FINDINGS)}\n")
    w(f.choice(["Ordering physician: Dr. ", "Referring: ", "Requested by Dr. "]))
    w.phi("PERSON", f.full_name())("\n")
    if f.rng.random() < 0.5:
        w("Findings discussed with ").phi("PERSON", f.full_name())(", ")
        w(f.choice(["RN", "NP", "MD"]))(" by phone at ").phi("PHONE", f.phone())(".\n")


def _letter(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w.phi("FACILITY", f.facility())("\n")
    _address_block(w, f)
    w("\nTel: ").phi("PHONE", f.phone())(f.choice([" | Fax: ", "  F: ", "\nFax "])).phi(
        "FAX", f.phone()
    )("\n\n")
    w.phi("DATE", f.date_text(f.date(2015, 2024), partial=False))("\n\n")
    doctor = f.last()
    w("Dear Dr. ").phi("PERSON", doctor)(",\n\n")
    w("Re: ").phi("PERSON", _name_forms(f, p))(", DOB ").phi(
        "DATE", f.date_text(p.dob, partial=False)
    )
    w(f"\n{f.choice(['MRN: ', 'Hospital No. ', 'NHS Number: ', 'Patient ID: '])}").phi(
        "MRN", f.mrn()
    )
    w("\n\nThank you for seeing ")
    w(f.choice(["Mr. ", "Mrs. ", "Ms. "]) if f.rng.random() < 0.6 else "")
    w.phi("PERSON", p.last)(", a ")
    write_age(w, f, p, noun=True)
    w(" whom I saw in clinic on ").phi("DATE", f.date_text(f.date(2018, 2024)))
    w(f". {f.choice(DISTRACTORS)} {f.choice(FINDINGS)} {f.choice(DISTRACTORS)}\n")
    if f.rng.random() < 0.5:
        w.phi("PERSON", p.first)
    else:
        w("She" if p.sex == "F" else "He")
    w(" lives in ")
    w.phi("LOCATION", f.choice(CITIES))(" with ")
    w(f.choice(["her daughter ", "his wife ", "a son, ", "her husband "])).phi(
        "PERSON", f.full_name()
    )
    w(", who can be reached on ").phi("PHONE", f.phone())(".\n\n")
    w(f.choice(["Sincerely,\n\n", "Kind regards,\n", "Yours sincerely,\n\n"]))
    w.phi("PERSON", f.full_name())(f.choice([", MD", " MD", ", FRCP", ", DO", ""]))("\n")
    w("cc: Dr. ").phi("PERSON", f.full_name())("\n")


def _discharge(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w("DISCHARGE SUMMARY\n")
    w("Patient Name: ").phi("PERSON", _name_forms(f, p))("\n")
    w(
        f.choice(
            [
                "MRN: ",
                "Medical Record Number: ",
                "MR#: ",
                "Unit No: ",
                "Record No: ",
                "Pt ID ",
                "MRN#: ",
            ]
        )
    ).phi("MRN", f.mrn())("\n")
    w(f.choice(["Encounter #: ", "Visit ID: ", "CSN: ", "FIN: "])).phi("ENCOUNTER", f.ident(0, 9))(
        "\n"
    )
    admit = f.date(2015, 2024)
    w("Admission Date: ").phi("DATE", f.date_text(admit, partial=False))("    Discharge Date: ")
    w.phi("DATE", f.date_text(admit + dt.timedelta(days=f.rng.randint(1, 20)), partial=False))("\n")
    w("Date of Birth: ").phi("DATE", f.date_text(p.dob, partial=False))(f"   Sex: {p.sex}\n")
    w("Attending: ").phi("PERSON", f.full_name())(f.choice([", MD\n", "\n", " MD\n"]))
    w("Service: MEDICINE\nAllergies: Penicillins\n\nHISTORY OF PRESENT ILLNESS:\n")
    if f.rng.random() < 0.5:
        w.phi("PERSON", f"{p.first} {p.last}")(" is a ")
    else:
        w(f"{'Mr.' if p.sex == 'M' else 'Ms.'} ").phi("PERSON", p.last)(" is a ")
    write_age(w, f, p, noun=True)
    w(f" with {f.choice(COMPLAINTS)} who presented to ").phi("FACILITY", f.facility())
    w(" on ").phi("DATE", f.date_text(admit))(f". {f.choice(DISTRACTORS)}\n\n")
    w(
        f"Brief Hospital Course:\n{f.choice(FINDINGS)} {f.choice(DISTRACTORS)} "
        f"{f.choice(DISTRACTORS)}\n\n"
    )
    w(
        "Discharge Medications:\n1. Furosemide 40 mg PO daily\n"
        "2. Metoprolol tartrate 25 mg PO BID\n\n"
    )
    w("Followup Instructions:\nFollow up with Dr. ").phi("PERSON", f.last())(" at ")
    w.phi("FACILITY", f.facility())(" on ").phi("DATE", f.date_text(admit + dt.timedelta(days=30)))
    w(", phone ").phi("PHONE", f.phone())(".\n")
    w("Electronically signed by: ").phi("PERSON", f.full_name())(", MD on ")
    w.phi("DATE", f.date_text(admit, partial=False))("\n")


def _mimic(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w("Name:  ").phi("PERSON", f"{p.last}, {p.first}")("                 Unit No:   ").phi(
        "MRN", f.digits(8)
    )
    admit = f.date(2100, 2180) if f.rng.random() < 0.3 else f.date(2010, 2024)
    w("\n \nAdmission Date:  ").phi("DATE", f"{admit.isoformat()}")(
        "              Discharge Date:   "
    )
    w.phi("DATE", (admit + dt.timedelta(days=f.rng.randint(2, 9))).isoformat())("\n \n")
    w("Date of Birth:  ").phi("DATE", p.dob.isoformat())(f"             Sex:   {p.sex}\n \n")
    w("Service: MEDICINE\n \nAttending: ").phi("PERSON", f"{f.first()} {f.last()}")(".\n \n")
    w(f"Chief Complaint:\n{f.choice(COMPLAINTS)}\n \nHistory of Present Illness:\n")
    write_age(w, f, p)
    w(f" with hx of CHF, {f.choice(DISTRACTORS)} Transferred from ").phi("FACILITY", f.facility())
    w(f". {f.choice(FINDINGS)}\n \nSocial History:\nLives with ")
    w(f.choice(["wife ", "husband ", "daughter "])).phi("PERSON", f.first())(" in ")
    w.phi("LOCATION", f.choice(CITIES))(f". {f.choice(DISTRACTORS)}\n")


def _telegraphic(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w("pt ")
    write_age(w, f, p)
    w(f", c/o {f.choice(COMPLAINTS)} x3d. {f.choice(DISTRACTORS)} ")
    w(f.choice(["wife ", "dtr ", "son "])).phi("PERSON", f.first())(" at bedside, cell ")
    w.phi("PHONE", f.phone())(". ")
    w(f"{f.choice(FINDINGS)} d/w Dr ").phi("PERSON", f.last())(" @ ").phi(
        "DATE", f.date_text(f.date(2018, 2024))
    )(f". {f.choice(DISTRACTORS)} ")
    if f.rng.random() < 0.5:
        w("Spoke with ").phi("PERSON", f"{f.first()} {f.last()}")(" (HCP) re: code status on ")
        when = f.date(2018, 2024)
        w(f"{when.strftime('%A')}, ").phi("DATE", f"{MONTHS[when.month - 1]} {when.day}")(". ")
    w("f/u PCP Dr. ").phi("PERSON", f.full_name())(" 2wks. MRN ").phi("MRN", f.mrn())(".\n")
    if f.rng.random() < 0.5:
        w("home addr: ").phi("LOCATION", f.street())(", ").phi("LOCATION", f.choice(CITIES))("\n")


def _admin(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w("REGISTRATION\n")
    w("- Patient: ").phi("PERSON", _name_forms(f, p))("\n")
    w("- DOB: ").phi("DATE", f.date_text(p.dob, partial=False))("\n")
    w(f.choice(["- SSN: ", "- Social Security No.: ", "- SS# "])).phi("SSN", f.ssn())("\n")
    w("- Address: ")
    _address_block(w, f)
    w(f"\n- {f.choice(['Home phone', 'Phone', 'Cell', 'Mobile'])}: ").phi(
        "PHONE", f.choice([f.phone(), f.phone(), f"07{f.digits(3)} {f.digits(6)}"])
    )("\n")
    if f.rng.random() < 0.3:
        w("- Mailing: ").phi("LOCATION", f"PO Box {f.rng.randint(10, 9999)}")(", ").phi(
            "LOCATION", f.choice(CITIES)
        )(f", {f.rng.choice(STATES)[0]} ").phi("ZIP", f.digits(5))("\n")
    w(f"- {f.choice(['Email', 'E-mail'])}: ").phi("EMAIL", f.email(p.first, p.last))("\n")
    w(f"- {f.choice(['Account #', 'Acct No.', 'Billing account', 'HAR'])}: ").phi(
        "ACCOUNT", f.ident(0, 10) if f.rng.random() < 0.6 else f.ident(2, 8, dashes=True)
    )("\n")
    plan = f.rng.random()
    if plan < 0.35:
        w(f"- {f.choice(['Medicare Beneficiary Identifier', 'Medicare ID', 'MBI'])}: ").phi(
            "HEALTH_PLAN", f.mbi()
        )("\n")
    else:
        label = f.choice(["Member ID", "Insurance ID", "Policy #", "Medicaid ID", "Subscriber ID"])
        w(f"- {label}: ")
        w.phi("HEALTH_PLAN", f.ident(f.rng.randint(0, 3), f.rng.randint(8, 11)))("\n")
    w(f"- {f.choice(['Emergency contact', 'Next of kin', 'NOK'])}: ").phi("PERSON", f.full_name())(
        f" ({f.choice(['daughter', 'son', 'spouse', 'friend'])}), "
    ).phi("PHONE", f.phone())("\n")
    lic = f.rng.random()
    if lic < 0.5:
        label = f.choice(["Driver's license", "DL#", "License No."])
        w(f"- {label}: ").phi(
            "LICENSE",
            f.ident(1, 8)
            if f.rng.random() < 0.6
            else f"{f.ident(1, 3)}-{f.digits(4)}-{f.digits(4)}",
        )
    else:
        w("- Prescriber DEA: ").phi("LICENSE", f.dea())(" NPI: ").phi("LICENSE", f"1{f.digits(9)}")
    w("\n")
    if f.rng.random() < 0.6:
        w(f"- {f.choice(['License plate', 'Plate', 'Vehicle plate'])}: ").phi("VEHICLE", f.plate())
    else:
        w(f"- {f.choice(['VIN', 'Vehicle VIN'])}: ").phi("VEHICLE", f.vin())
    w(f" (parking, {f.rng.choice(['sedan', 'truck', 'SUV'])})\n")
    w("- Primary facility: ").phi("FACILITY", f.facility())("\n")
    w(f"{f.choice(DISTRACTORS)}\n")


def _device(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w("DEVICE CLINIC NOTE\nPatient: ").phi("PERSON", f"{p.first} {p.last}")("  MRN: ").phi(
        "MRN", f.mrn()
    )("\nDate: ").phi("DATE", f.date_text(f.date(2018, 2024), partial=False))("\n")
    w(
        f"Interrogation of "
        f"{f.choice(['Medtronic Azure', 'Boston Scientific Accolade', 'Abbott Assurity'])} "
    )
    w(f"{f.choice(['pacemaker', 'ICD', 'CRT-D'])}, ")
    w(f.choice(["serial number ", "S/N: ", "SN ", "device serial: ", "Serial # "])).phi(
        "DEVICE_ID", f.serial()
    )
    w(f". Battery 8.5 years. Lead impedance 520 ohms. {f.choice(DISTRACTORS)}\n")
    if f.rng.random() < 0.5:
        w("UDI: ").phi("DEVICE_ID", f"(01){f.digits(14)}(17){f.digits(6)}(21){f.ident(1, 6)}")("\n")
    else:
        w(f"Home monitor {f.choice(['device ID', 'serial', 'S/N'])} ").phi("DEVICE_ID", f.serial())
        w(" last transmitted from IP ").phi("IP_ADDRESS", f.ip())(".\n")
    w("Next check in 3 months with ").phi("PERSON", f.full_name())(", RN.\n")


def _portal(w: NoteWriter, f: NoteFaker, p: FakePatient) -> None:
    w("From: ").phi("EMAIL", f.email(p.first, p.last))("\nSent: ").phi(
        "DATE", f.date_text(f.date(2019, 2024), partial=False)
    )(" 14:32\nSubject: question about my x-ray\n\n")
    w("Hi Dr. ").phi("PERSON", f.last())(", my chest x-ray from ").phi(
        "DATE", f.date_text(f.date(2019, 2024))
    )(" said something about a nodule. ")
    w("My photos are at ").phi("URL", f.url(p.last))(" if needed. ")
    w("Please call me at ").phi("PHONE", f.phone())(". Thanks, ").phi("PERSON", p.first)("\n")
    w("[portal login from ").phi("IP_ADDRESS", f.ip())(", visit ID ").phi(
        "ENCOUNTER", f.ident(0, 9)
    )("]\n")


STYLES: dict[str, Callable[[NoteWriter, NoteFaker, FakePatient], None]] = {
    "cxr": _cxr, "letter": _letter, "discharge": _discharge, "mimic": _mimic,
    "telegraphic": _telegraphic, "admin": _admin, "device": _device, "portal": _portal,
}  # fmt: skip


def generate_phi_notes(count: int, seed: int) -> list[AnnotatedNote]:
    """``count`` annotated notes, styles in rotation, one in six written in capitals."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    faker = NoteFaker(rng)
    names = sorted(STYLES)
    notes = []
    for index in range(count):
        style = names[index % len(names)] if index < len(names) else rng.choice(names)
        writer = NoteWriter()
        STYLES[style](writer, faker, draw_patient(faker))
        notes.append(writer.note(style, upper=rng.random() < 1 / 6))
    return notes
