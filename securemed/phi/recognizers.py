"""PHI recognizers: each finds spans of one kind of identifier and says how sure it is.

Presidio's split is kept: a recognizer only *finds* (patterns, context words, a score); what
happens to a span is the operators' business (:mod:`securemed.phi.operators`). Every
recognizer here is a Presidio ``LocalRecognizer`` so that the analyzer's context enhancer can
raise the score of a weak pattern (a bare ten-digit number) when a context word ("phone",
"cell") stands before it.

Why mostly *labelled* patterns: an MRN, an account number and a phone number are all digits;
what tells them apart in a note is the word in front ("MRN:", "Acct #", "Tel"). So each
identifier recognizer matches a family of labels followed by a value, and reports only the
value's span. Bare patterns are kept for formats that identify themselves (ISO dates, SSNs with
dashes, VINs, Medicare MBIs, UDIs, e-mail addresses).

What this module does not do: decide overlaps between recognizers, drop NER false positives, or
apply per-request deny lists; :mod:`securemed.phi.detection` does, after all of them ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import regex
import tldextract
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import (
    EmailRecognizer,
    IpRecognizer,
    UrlRecognizer,
)

from securemed.phi.entities import PHI_ENTITY_TYPES
from securemed.phi.vocabulary import (
    AMBIGUOUS_STATE_CODES,
    CLINICAL_TERMS,
    NAME_STOPWORDS,
    NON_PHI_PLACES,
    TITLES,
    US_STATES,
    WORD_NAMES,
    words,
)

logger = logging.getLogger(__name__)

#: tldextract with its bundled public-suffix snapshot and no cache: it never opens a socket
OFFLINE_TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@dataclass(frozen=True)
class PhiPattern:
    """A regular expression for one way an identifier is written.

    The span reported is the named group ``phi`` when the pattern has one (so a label such as
    "MRN:" is matched but kept), else the whole match. A pattern may instead name groups after
    entity types (``(?P<LOCATION>...)``, ``(?P<ZIP>...)``) to report several spans at once.
    """

    name: str
    regex: str
    score: float
    ignore_case: bool = True


Validator = Callable[[str, str], bool]


class PhiPatternRecognizer(LocalRecognizer):  # type: ignore[misc]
    """A Presidio recognizer built from :class:`PhiPattern` s (``regex`` module semantics).

    Unlike Presidio's ``PatternRecognizer`` it reports a group's span rather than the whole
    match and lets each pattern choose case sensitivity: names are found by their capitals.
    """

    def __init__(
        self,
        *,
        entity_type: str,
        patterns: Sequence[PhiPattern],
        context: Sequence[str] = (),
        name: str | None = None,
        validator: Validator | None = None,
    ) -> None:
        compiled = []
        entities = {entity_type}
        for pattern in patterns:
            flags = regex.MULTILINE | (regex.IGNORECASE if pattern.ignore_case else 0)
            program = regex.compile(pattern.regex, flags)
            entities.update(g for g in program.groupindex if g in PHI_ENTITY_TYPES)
            compiled.append((pattern, program))
        unknown = entities - set(PHI_ENTITY_TYPES)
        if unknown:
            raise ValueError(f"entity types not in PHI_ENTITY_TYPES: {sorted(unknown)}")
        self.entity_type = entity_type
        self.recognizer_name = name or f"{entity_type.title().replace('_', '')}Recognizer"
        self._compiled = compiled
        self._validator = validator
        super().__init__(
            supported_entities=sorted(entities),
            supported_language="en",
            name=self.recognizer_name,
            context=list(context),
        )

    def load(self) -> None:
        """Nothing to load: patterns are compiled in the constructor."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        """Every span any pattern matches, with that pattern's score."""
        results = []
        for pattern, program in self._compiled:
            for match in program.finditer(text, overlapped=True):
                for entity_type, start, end in self._spans(match):
                    if entities and entity_type not in entities:
                        continue
                    refined = self.refine(entity_type, text, start, end, pattern)
                    if refined is None:
                        continue
                    start, end = refined
                    results.append(self._result(entity_type, start, end, pattern))
        return results

    def _spans(self, match: Any) -> Iterable[tuple[str, int, int]]:
        typed = [g for g in match.re.groupindex if g in PHI_ENTITY_TYPES]
        if typed:
            for group in typed:
                if match.group(group):
                    yield group, match.start(group), match.end(group)
        elif "phi" in match.re.groupindex:
            if match.group("phi"):
                yield self.entity_type, match.start("phi"), match.end("phi")
        elif match.group(0):
            yield self.entity_type, match.start(), match.end()

    def refine(
        self, entity_type: str, text: str, start: int, end: int, pattern: PhiPattern
    ) -> tuple[int, int] | None:
        """Adjust or veto a matched span; the default runs the validator, if any."""
        if self._validator is not None and not self._validator(entity_type, text[start:end]):
            return None
        return start, end

    def _result(
        self, entity_type: str, start: int, end: int, pattern: PhiPattern
    ) -> RecognizerResult:
        explanation = AnalysisExplanation(
            recognizer=self.recognizer_name,
            original_score=pattern.score,
            pattern_name=pattern.name,
            textual_explanation=f"{self.recognizer_name} pattern {pattern.name}",
        )
        return RecognizerResult(
            entity_type=entity_type,
            start=start,
            end=end,
            score=pattern.score,
            analysis_explanation=explanation,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.recognizer_name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


# --- building blocks -----------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR4 = r"(?:19|20)\d{2}"
# a number that is not part of a longer number, decimal or date
_NB = r"(?<![\w./-])"
_NA = r"(?![\w/]|[.-]\d)"
#: separators allowed between a label and its value ("MRN: ", "Acct # ", "ID no. ")
_LABEL_SEP = r"\.?[ \t]*(?:(?:number|num|nbr|no|id|#)\.?[ \t]*)?(?:[:#=]|\bis\b)?[ \t]*(?:#[ \t]*)?"
#: an identifier value: letters, digits and dashes with at least one digit, not a date
_ID_VALUE = (
    r"(?!(?:19|20)\d{2}-\d{1,2}-\d{1,2}\b)(?=[a-z-]*\d)[a-z0-9](?:[a-z0-9]|[-_](?=[a-z0-9])){3,24}"
    r"(?![\w-])"
)


def labelled(labels: str, value: str = _ID_VALUE) -> str:
    """A label from the ``labels`` alternation, separators, then the value as group ``phi``."""
    return rf"\b(?:{labels})(?![a-z]){_LABEL_SEP}(?P<phi>{value})"


def _valid_numeric_date(_: str, value: str) -> bool:
    parts = [int(p) for p in regex.split(r"[/.-]", value) if p.isdigit()]
    if len(parts) == 2 and regex.fullmatch(r"\d{1,2}/\d{1,2}", value):  # day/month, no year
        return parts[1] not in {7, 52} and 1 <= parts[0] <= 31 and 1 <= parts[1] <= 12
    if len(parts) != 3:
        return True
    if len(regex.split(r"[/.-]", value)[0]) == 4:  # year first: 2023-01-05
        return parts[1] <= 12 and parts[2] <= 31
    first, second, _year = parts
    return (first <= 12 and second <= 31) or (second <= 12 and first <= 31)


def date_recognizer() -> PhiPatternRecognizer:
    """Dates in every common clinical format; a year on its own is not matched (not PHI)."""
    return PhiPatternRecognizer(
        entity_type="DATE",
        name="DateRecognizer",
        validator=_valid_numeric_date,
        patterns=[
            # 03/04/1961, 3-4-61, 04.03.2021 (month or day first)
            PhiPattern(
                "numeric", rf"{_NB}\d{{1,2}}([/.-])\d{{1,2}}\1(?:\d{{4}}|\d{{2}}){_NA}", 0.6
            ),
            # 2023-01-05, 2023/01/05
            PhiPattern(
                "iso",
                rf"{_NB}(?:1[89]|2[01])\d{{2}}([/.-])(?:0?[1-9]|1[0-2])\1{_DAY}(?![\d])",
                0.7,
            ),
            # March 4, 1961 / Mar. 4th 1961 / March 4 (a day and a month are PHI)
            PhiPattern(
                "month_day_year",
                rf"\b{_MONTH}\.?[ \t]+{_DAY}{_ORD}\b(?:,?[ \t]+(?:{_YEAR4}|'\d{{2}})\b)?"
                r"(?![ \t]*(?:mg|mcg|ml|cm|mm|kg|g|units?|%)\b)",
                0.65,
            ),
            # 4 Mar 2021 / 4th of March, 2021 / 4 March
            PhiPattern(
                "day_month_year",
                rf"\b{_DAY}{_ORD}[ \t]+(?:of[ \t]+)?{_MONTH}\b\.?(?:,?[ \t]+{_YEAR4}\b)?",
                0.65,
            ),
            # 04-Mar-2021, 04MAR2021, 4-Mar-21
            PhiPattern("dd_mon_yyyy", rf"\b{_DAY}[-/ ]?{_MONTH}[-/ ]?(?:{_YEAR4}|\d{{2}})\b", 0.7),
            # March 2019, Mar-2019, Mar. 2019
            PhiPattern("month_year", rf"\b{_MONTH}\b\.?,?[ \t-]+{_YEAR4}\b", 0.6),
            # Dec '21
            PhiPattern("month_short_year", rf"\b{_MONTH}\.?[ \t]*['\u2019]\d{{2}}\b", 0.6),
            # 03/2019, 3-2019
            PhiPattern("numeric_month_year", rf"{_NB}(?:0?[1-9]|1[0-2])[/-]{_YEAR4}{_NA}", 0.55),
            # Mar-21, SEP-19 (month and two-digit year joined by a hyphen)
            PhiPattern("month_hyphen_year", rf"\b{_MONTH}-\d{{2}}\b(?![-/]\d)", 0.6),
            # "admitted 12/02", "on 15/3": a day and month with a date word before them; the
            # UK duration fractions x/7, x/12 and x/52 ("r/v 2/52") are not dates
            PhiPattern(
                "day_month_after_date_word",
                r"\b(?:on|admitted|adm|since|from|until|till|dated?|seen|discharged|d/c|booked"
                r"|started|stopped|due|last|dob|born|reviewed|onset)\.?:?[ \t]+"
                rf"(?P<phi>{_DAY}/(?:0?[1-9]|1[0-2]))(?![\d/.]|[ \t]*(?:mg|ml|units?)\b)",
                0.6,
            ),
            # "Tues 14th", "Friday the 3rd": an ordinal day after a weekday
            PhiPattern(
                "weekday_ordinal",
                r"\b(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day)?\.?[ \t]+"
                rf"(?:the[ \t]+)?(?P<phi>{_DAY}(?:st|nd|rd|th))\b",
                0.65,
            ),
        ],
    )


def compact_date_recognizer() -> PhiPatternRecognizer:
    """20230105 (DICOM style): weak alone, PHI when a date word stands before it."""
    return PhiPatternRecognizer(
        entity_type="DATE",
        name="CompactDateRecognizer",
        context=["date", "dob", "born", "birth", "admitted", "discharged", "seen", "exam", "study"],
        patterns=[
            PhiPattern(
                "compact", rf"(?<!\d){_YEAR4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)", 0.3
            )
        ],
    )


_AGE = r"(?:9\d|1[01]\d)"
_UNITS = r"(?:one|two|three|four|five|six|seven|eight|nine)"
#: ninety to one hundred and nineteen, in words ("ninety-one", "one hundred and two")
_AGE_WORDS = (
    rf"(?i:ninety(?:[ -]{_UNITS})?|(?:one[ \t]+)?hundred(?:[ \t]+and)?(?:[ \t]+(?:{_UNITS}"
    r"|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen))?)"
)


def age_recognizer() -> PhiPatternRecognizer:
    """Ages of 90 and over (only those are PHI); the number is the span."""
    return PhiPatternRecognizer(
        entity_type="AGE",
        name="AgeOver89Recognizer",
        patterns=[
            PhiPattern(
                "age_unit",
                rf"(?<![\w.]){_AGE}(?=[ \t]*-?[ \t]*(?:years?|yrs?|y\.?[ \t]?o\.?|y/o|yo[mf]?"
                r"|yr|y(?=[ \t]*[mf]\b))\b)",
                0.8,
            ),
            PhiPattern("age_sex", rf"(?<![\w.]){_AGE}(?=[ \t]?-?(?:M|F|yM|yF)\b)", 0.75, False),
            PhiPattern("age_label", rf"\bage[d:]?[ \t]*:?[ \t]*(?P<phi>{_AGE})\b(?!\.\d)", 0.8),
            PhiPattern(
                "words",
                rf"\b(?:(?i:aged?|is)[ \t]+(?P<phi>{_AGE_WORDS})\b"
                rf"|(?P<phi>{_AGE_WORDS})(?=[ \t-]+(?i:years?|yrs?|y/?o)\b))",
                0.8,
            ),
            PhiPattern(
                "pt_is", rf"\b(?:pt|patient|she|he)[ \t]+is[ \t]+(?P<phi>{_AGE})(?![\w.%/])", 0.6
            ),
            PhiPattern(
                "decade",
                rf"\bin[ \t]+(?:his|her|their)[ \t]+(?:early[ \t]+|mid[ \t-]*|late[ \t]+)?"
                rf"(?P<phi>{_AGE}'?s)\b",
                0.7,
            ),
        ],
    )


_NANP = (
    r"(?:\+?1[ \t.-]?)?(?:\(\d{3}\)[ \t]?|\d{3}[ \t.-])\d{3}[ \t.-]\d{4}"
    r"(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?"
)
_INTL = r"\+[1-9]\d{0,2}(?:[ \t]?\(0\))?(?:[ \t.-]?\(?\d{1,4}\)?){2,5}"
_PHONE_VALUE = rf"(?:{_NANP}|{_INTL}|\(?\d[\d \t().-]{{6,16}}\d)"


def phone_recognizer() -> PhiPatternRecognizer:
    """Telephone numbers: North American and international formats, labelled or bare."""
    return PhiPatternRecognizer(
        entity_type="PHONE",
        name="PhoneRecognizer",
        patterns=[
            PhiPattern("nanp", rf"(?<![\w+]){_NANP}(?![\w])", 0.6),
            PhiPattern("international", rf"(?<![\w+]){_INTL}(?![\w])", 0.6),
            # UK and Australian national numbers: a leading 0, groups of digits, 10-11 in all
            PhiPattern(
                "trunk_prefix",
                r"(?<![\w+./-])(?=(?:\d[ \t]?){10,11}(?!\d))\(?0\d{1,4}\)?(?:[ \t]\d{3,4}){1,2}"
                r"(?![\w./-]|[ \t]\d)",
                0.55,
            ),
            PhiPattern(
                "labelled",
                r"\b(?:phone|telephone|tel|ph|cell|mobile|home|work|pager|contact|call|"
                r"callback|daytime)\b\.?[ \t]*(?:phone[ \t]*)?(?:no\.?|number|#)?[ \t]*[:#]?"
                rf"[ \t]*(?P<phi>{_PHONE_VALUE})(?![\w])",
                0.8,
            ),
            PhiPattern(
                "letterhead", rf"(?<![\w])(?:T|P|Ph|M)\.?[ \t]*:[ \t]*(?P<phi>{_PHONE_VALUE})",
                0.7, False,
            ),
        ],
    )  # fmt: skip


def bare_phone_recognizer() -> PhiPatternRecognizer:
    """Ten digits without separators: a phone number only with a phone word before it."""
    return PhiPatternRecognizer(
        entity_type="PHONE",
        name="BarePhoneRecognizer",
        context=["phone", "tel", "telephone", "cell", "mobile", "call", "pager", "contact"],
        patterns=[PhiPattern("bare_ten_digits", r"(?<![\w+-])\d{10}(?![\w-])", 0.2)],
    )


def fax_recognizer() -> PhiPatternRecognizer:
    """Fax numbers: a phone number with "fax" (or "F:") in front; outranks the phone span."""
    return PhiPatternRecognizer(
        entity_type="FAX",
        name="FaxRecognizer",
        patterns=[
            PhiPattern(
                "labelled",
                r"\b(?:fax|facsimile|telefax)\b\.?[ \t]*(?:no\.?|number|#)?[ \t]*[:#]?[ \t]*"
                rf"(?P<phi>{_PHONE_VALUE})(?![\w])",
                0.9,
            ),
            PhiPattern(
                "letterhead", rf"(?<![\w])F[ \t]*:[ \t]*(?P<phi>{_PHONE_VALUE})", 0.85, False
            ),
        ],
    )


_SSN = r"(?<![\w-])\d{3}(?P<sep>[- ]?)\d{2}(?P=sep)\d{4}(?![\w-])"
_INVALID_SSNS = frozenset({"078051120", "219099999", "123456789", "457555462"})


def _valid_ssn(_: str, value: str) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (
        len(digits) != 9
        or area in {"000", "666"}
        or area.startswith("9")
        or group == "00"
        or serial == "0000"
        or digits in _INVALID_SSNS
        or len(set(digits)) == 1
    )


def ssn_recognizer() -> PhiPatternRecognizer:
    """US social security numbers; numbers the SSA never issues are rejected."""
    return PhiPatternRecognizer(
        entity_type="SSN",
        name="SsnRecognizer",
        validator=_valid_ssn,
        patterns=[
            PhiPattern("dashed", r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", 0.6),
            PhiPattern(
                "labelled",
                r"\b(?:ssn|ss#|soc(?:ial)?[ \t]+sec(?:urity)?)(?![a-z])[ \t]*(?:no\.?|number|#)?"
                rf"[ \t]*[:#]?[ \t]*(?P<phi>{_SSN})",
                0.95,
            ),
        ],
    )


def bare_ssn_recognizer() -> PhiPatternRecognizer:
    """Nine digits, bare or spaced: an SSN only with "SSN"/"social security" before it."""
    return PhiPatternRecognizer(
        entity_type="SSN",
        name="BareSsnRecognizer",
        validator=_valid_ssn,
        context=["ssn", "social", "security", "ss#"],
        patterns=[PhiPattern("spaced_or_bare", r"(?<![\w-])\d{3} ?\d{2} ?\d{4}(?![\w-])", 0.1)],
    )


def _id_recognizer(
    entity_type: str, labels: str, *, extra: Sequence[PhiPattern] = (), score: float = 0.85
) -> PhiPatternRecognizer:
    return PhiPatternRecognizer(
        entity_type=entity_type,
        patterns=[PhiPattern("labelled", labelled(labels), score), *extra],
        context=[],
    )


_MRN_LABELS = (
    r"mrn|m\.r\.n\.?|mr[ \t]*#|mr[ \t]*no|mr[ \t]+number|medical[ \t]+record(?:s)?"
    r"|med[ \t]*rec(?:ord)?|hospital[ \t]+(?:number|no)|unit[ \t]+(?:number|no)"
    r"|patient[ \t]+(?:id|identifier|number|no)|pt\.?[ \t]*(?:id|#|no)|chart(?:[ \t]+no)?"
    r"|pid|ur[ \t]*(?:number|no)|record[ \t]*(?:#|no|number)|hosp[ \t]*#|nhs(?:[ \t]+number)?"
    r"|hosp\.?[ \t]*(?:no|number|num)|hospital[ \t]+(?:id|#)|case[ \t]*note[ \t]*(?:no|number)"
    r"|crn|k[ \t]*number|rxr|mrn[ \t]*/[ \t]*hosp[ \t]*no"
)


def mrn_recognizer() -> PhiPatternRecognizer:
    """Medical record numbers: only recognisable by their label, which has many spellings.

    NHS-style numbers in three space-separated groups ("943 476 5919") are matched too, so a
    labelled record number is not mistaken for a phone number.
    """
    grouped = labelled(_MRN_LABELS, r"\d{3}[ \t]\d{3}[ \t]\d{4}(?![\w-])")
    return _id_recognizer(
        "MRN", _MRN_LABELS, extra=[PhiPattern("labelled_grouped", grouped, 0.9)], score=0.9
    )


def accession_recognizer() -> PhiPatternRecognizer:
    """Imaging/lab accession and study numbers (identifier 18, "other unique numbers")."""
    return _id_recognizer(
        "ACCESSION",
        r"accession|acc\.?[ \t]*(?:#|no)|acc|acn|study[ \t]+(?:id|number|no|uid)"
        r"|exam[ \t]+(?:id|number|no)|order[ \t]+(?:id|number|no|#)|specimen[ \t]+(?:id|no)",
    )


def encounter_recognizer() -> PhiPatternRecognizer:
    """Encounter, visit and admission numbers (CSN, FIN)."""
    return _id_recognizer(
        "ENCOUNTER",
        r"encounter|enc\.?|visit(?:[ \t]+(?:id|number|no))?|csn|fin"
        r"|admission[ \t]+(?:id|number|no|#)"
        r"|adm[ \t]*#|episode|case[ \t]+(?:id|number|no|#)",
    )


#: an identifier written in slash- or dash-separated parts ("CR/2023/0412"), not a date
_SLASHED_ID = (
    r"(?!\d{1,2}/\d{1,2}/\d{2,4}\b)(?=[a-z/-]*\d)[a-z0-9]{1,8}(?:[/-][a-z0-9]{1,10}){1,4}"
    r"(?![\w/-])"
)
_REFERENCE_LABELS = (
    r"claim|reference|ref|incident|run[ \t]+sheet|case[ \t]+ref(?:erence)?|crime"
    r"|coroner'?s[ \t]+ref(?:erence)?|report[ \t]+(?:no|number)|ticket|authori[sz]ation"
    r"|prior[ \t]+auth|pre-?auth|complaint|safeguarding[ \t]+ref(?:erence)?|datix"
)


def account_recognizer() -> PhiPatternRecognizer:
    """Billing and bank account numbers; claim, reference and incident numbers."""
    return _id_recognizer(
        "ACCOUNT",
        r"account|acct\.?|a/c|billing(?:[ \t]+(?:account|id|number))?|har|invoice"
        rf"|guarantor(?:[ \t]+(?:account|id))?|{_REFERENCE_LABELS}",
        extra=[
            PhiPattern(
                "labelled_slashed",
                labelled(rf"account|acct\.?|{_REFERENCE_LABELS}", _SLASHED_ID),
                0.8,
            )
        ],
    )


_MBI = (
    r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?"
    r"[AC-HJKMNP-RT-Y]{2}\d{2}\b"
)


def health_plan_recognizer() -> PhiPatternRecognizer:
    """Health-plan beneficiary, member and policy numbers; a bare Medicare MBI too."""
    return _id_recognizer(
        "HEALTH_PLAN",
        r"(?:health[ \t]*plan|insurance|insurer|policy|member|subscriber|beneficiary|medicare"
        r"|medicaid|mbi|hicn|payer|plan|group|bcbs|aetna|cigna|humana|ohip|medicare[ \t]+card"
        r"|band(?=[ \t]*(?:no|number|#))|status[ \t]+card|ihi|dva|health[ \t]+card)"
        r"(?:[ \t]+(?:member|beneficiary|subscriber|policy|plan|insurance))?",
        extra=[PhiPattern("mbi", _MBI, 0.65, False)],
    )


def _valid_dea(_: str, value: str) -> bool:
    digits = [int(c) for c in value[2:]]
    if len(digits) != 7:
        return False
    check = digits[0] + digits[2] + digits[4] + 2 * (digits[1] + digits[3] + digits[5])
    return check % 10 == digits[6]


def license_recognizer() -> PhiPatternRecognizer:
    """Certificate and licence numbers (driver, medical, DEA, NPI) but not licence plates."""
    return PhiPatternRecognizer(
        entity_type="LICENSE",
        name="LicenseRecognizer",
        patterns=[
            PhiPattern(
                "labelled",
                labelled(
                    r"driver'?s?[ \t]+licen[cs]e|licen[cs]e(?![ \t]+plate)|lic\.?|dl|certificate"
                    r"|cert\.?|dea|npi|permit|board[ \t]+cert(?:ification)?"
                ),
                0.85,
            )
        ],
    )


def dea_recognizer() -> PhiPatternRecognizer:
    """A bare DEA registration number, accepted only when its check digit is right."""
    return PhiPatternRecognizer(
        entity_type="LICENSE",
        name="DeaNumberRecognizer",
        validator=_valid_dea,
        patterns=[PhiPattern("dea", r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b", 0.6, False)],
    )


_PLATE_VALUE = r"(?=[a-z -]*\d)[a-z0-9]{1,4}(?:[ -]?[a-z0-9]{1,5}){1,2}(?![\w-])"
_VIN = r"\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b"


def vehicle_recognizer() -> PhiPatternRecognizer:
    """Licence plates and vehicle identification numbers."""
    return PhiPatternRecognizer(
        entity_type="VEHICLE",
        name="VehicleRecognizer",
        patterns=[
            PhiPattern(
                "plate",
                labelled(
                    r"licen[cs]e[ \t]+plate|plate|reg(?:istration)?[ \t]+plate|number[ \t]+plate"
                    r"|vehicle[ \t]+(?:registration|reg|tag)|tag[ \t]+number",
                    _PLATE_VALUE,
                ),
                0.85,
            ),
            PhiPattern(
                "vin_labelled",
                labelled(r"vin|vehicle[ \t]+(?:id|identification)(?:[ \t]+number)?", _ID_VALUE),
                0.9,
            ),
            PhiPattern("vin", _VIN, 0.6, False),
            # current UK plates: two letters, two digits, three letters ("AB12 CDE")
            PhiPattern(
                "uk_plate", r"\b[A-HJ-PR-Y][A-HJ-PR-Y]\d{2}[ \t]?[A-HJ-PR-Z]{3}\b", 0.65, False
            ),
            PhiPattern(
                "reg_labelled",
                labelled(r"(?:car|vehicle|ambulance|van)?[ \t]*reg(?:istration)?", _PLATE_VALUE),
                0.6,
            ),
        ],
    )


def device_recognizer() -> PhiPatternRecognizer:
    """Device identifiers and serial numbers (implants, pumps, monitors), UDIs, MACs."""
    return PhiPatternRecognizer(
        entity_type="DEVICE_ID",
        name="DeviceIdRecognizer",
        patterns=[
            PhiPattern(
                "labelled",
                labelled(
                    r"serial(?:[ \t]+(?:number|no|#))?|s/n|sn|ser\.?[ \t]*no|device[ \t]+"
                    r"(?:id|identifier|serial)|udi|imei|model[ \t]+(?:and[ \t]+)?serial"
                    r"|(?:pacemaker|icd|pump|implant|generator|monitor|transmitter|sensor"
                    r"|receiver|stimulator|valve|lead|hearing[ \t]+aid|cgm)[ \t]+(?:id|serial)"
                    r"|transmitter"
                ),
                0.85,
            ),
            PhiPattern("udi", r"\(01\)\d{14}(?:\(\d{2}\)[A-Z0-9]+)*", 0.7, False),
            PhiPattern("mac", r"\b(?:[0-9A-F]{2}[:-]){5}[0-9A-F]{2}\b", 0.6),
        ],
    )


_STATE_CODES = "|".join(US_STATES)
_UNAMBIGUOUS_CODES = "|".join(c for c in US_STATES if c not in AMBIGUOUS_STATE_CODES)
_STATE_NAMES = "(?i:" + "|".join(sorted(US_STATES.values(), key=len, reverse=True)) + ")"
_PLACE_WORD = r"[A-Z][a-zA-Z'\u2019.-]*[a-zA-Z]|[A-Z][A-Z'\u2019.-]*[A-Z]|[A-Z]"
_CITY = rf"(?:{_PLACE_WORD})(?:[ \t-](?:{_PLACE_WORD})){{0,2}}"
_STREET_SUFFIX = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl"
    r"|terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|crescent|close|row"
    r"|alley|plaza|loop|pike|gardens|grove|mews|walk|hill)"
)
_BUILDING = (
    r"(?:House|Court|Lodge|Building|Tower|Towers|Mansions|Block|Park|Estate|Village|Cottage"
    r"|Farm|Manor|Hall|Apartments|Flats|Residences|Heights|Gardens|Place)"
)
_UNIT = (
    r"(?:,?[ \t]*(?i:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|#)\.?[ \t]*#?[ \t]*"
    r"[A-Z0-9-]{1,5}\b)"
)


class AddressRecognizer(PhiPatternRecognizer):
    """Street addresses, cities, ZIP and postal codes; a city ends before a common word
    ("lives in Springfield with her daughter" gives "Springfield")."""

    def refine(
        self, entity_type: str, text: str, start: int, end: int, pattern: PhiPattern
    ) -> tuple[int, int] | None:
        """Trim trailing stop words and clinical words from a city; refuse an empty one."""
        if entity_type != "LOCATION" or pattern.name in {
            "street",
            "po_box",
            "romance_street",
            "unit_building",
        }:
            return start, end
        kept_end = start
        for match in _WORD.finditer(text, start, end):
            lower = match.group().lower().strip(".,")
            if lower in NAME_STOPWORDS or lower in _CITY_BREAK:
                break
            kept_end = match.end()
        if kept_end <= start or text[start:kept_end].lower() in NON_PHI_PLACES:
            return None
        return start, kept_end


_CITY_BREAK = words("with his her their a an the and alone who where since for")


def address_recognizer() -> PhiPatternRecognizer:
    """Street addresses, cities before a state, ZIP and postal codes (US, UK, CA, EU)."""
    return AddressRecognizer(
        entity_type="LOCATION",
        name="AddressRecognizer",
        patterns=[
            PhiPattern(
                "street",
                rf"(?:(?i:flat|apt|unit|suite)[ \t]+\w{{1,4}},?[ \t]+)?(?<![\w.,/-])"
                rf"\d{{1,5}}[A-Za-z]?"
                rf"(?:-\d{{1,5}})?[ \t]+(?:(?:[NSEW]\.?|(?i:north|south|east|west))[ \t]+)?"
                rf"(?:(?:{_PLACE_WORD}|\d{{1,3}}(?:st|nd|rd|th))[ \t]+){{1,4}}{_STREET_SUFFIX}\b\.?"
                rf"(?:[ \t]+(?:[NS][EW]?|[EW])\b)?{_UNIT}?",
                0.8, False,
            ),
            PhiPattern("po_box", r"\bP\.?[ \t]?O\.?[ \t]+Box[ \t]+\d{1,6}\b", 0.8),
            # "Flat 12B, Kestrel House, 4 Quay Road", "Lot 14, Ridgeview Trailer Park"
            PhiPattern(
                "unit_building",
                r"\b(?i:flat|apt|apartment|unit|lot|suite|room|site|space)[ \t]+[A-Z0-9-]{1,5},?"
                rf"[ \t]+(?:(?:{_PLACE_WORD})[ \t]+){{1,3}}{_BUILDING}\b"
                rf"(?:,?[ \t]+\d{{1,5}}[A-Za-z]?[ \t]+(?:(?:{_PLACE_WORD})[ \t]+){{1,3}}"
                rf"{_STREET_SUFFIX}\b\.?)?",
                0.8, False,
            ),
            # "Toronto ON M6E 2G8", "Sydney NSW 2000": city, province or state, postcode
            PhiPattern(
                "city_province_postcode",
                rf"(?<![\w])(?P<LOCATION>{_CITY}),?[ \t]+(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT)"
                r"\.?,?[ \t]+(?P<ZIP>[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]?"
                r"\d[ABCEGHJ-NPRSTV-Z]\d)\b",
                0.85, False,
            ),
            PhiPattern(
                "city_au_state_postcode",
                rf"(?<![\w])(?P<LOCATION>{_CITY}),?[ \t]+(?:NSW|VIC|QLD|WA|SA|TAS|ACT|NT)"
                r",?[ \t]+(?P<ZIP>\d{4})\b",
                0.85, False,
            ),
            # a town and a 4-5 digit postcode after a street line ("..., Stellenbosch 7600")
            PhiPattern(
                "city_code_after_street",
                rf"(?<=\b{_STREET_SUFFIX}\.?{_UNIT}?,[ \t]*)(?P<LOCATION>{_CITY})[ \t]+"
                r"(?P<ZIP>\d{4,5})\b(?![.,]?\d)",
                0.8, False,
            ),
            PhiPattern(
                "street_name_first",
                r"\b[A-ZÄÖÜ][A-Za-zÄÖÜäöüß]+(?i:straße|strasse|str\.|weg|gasse|allee|platz|laan"
                r"|gracht)[ \t]+\d{1,4}[a-z]?\b",
                0.8, False,
            ),
            PhiPattern(
                "romance_street",
                r"(?:\b\d{1,4},?[ \t]+)?\b(?i:rue|avenue|boulevard|via|calle|avenida|rua|viale"
                r"|piazza|chemin|paseo|plaza)[ \t]+(?:(?i:de|del|della|des|du|la|le|los|las|da"
                r"|do|dos|di)[ \t]+)*[A-Z][\w'\u2019-]+(?:[ \t]+[A-Z][\w'\u2019-]+){0,2}"
                r"(?:,?[ \t]+\d{1,4}\b)?",
                0.75, False,
            ),
            PhiPattern(
                "city_after_street",
                rf"(?<=\b{_STREET_SUFFIX}\.?{_UNIT}?,[ \t]*)(?P<LOCATION>{_CITY})"
                r"(?=[ \t]*(?:$|[,.;]|[ \t][A-Z]{1,2}\d))",
                0.7, False,
            ),
            PhiPattern(
                "city_state_zip",
                rf"(?<![\w])(?P<LOCATION>{_CITY}),[ \t]*(?:{_STATE_CODES}|{_STATE_NAMES})\.?,?"
                rf"[ \t]+(?P<ZIP>\d{{5}}(?:-\d{{4}})?)\b",
                0.85, False,
            ),
            PhiPattern(
                "city_state",
                rf"(?<![\w])(?P<LOCATION>{_CITY}),[ \t]*(?:{_UNAMBIGUOUS_CODES}|{_STATE_NAMES})\b"
                r"(?![ \t]+[a-z])",
                0.7, False,
            ),
            PhiPattern(
                "state_zip",
                rf"\b(?:{_STATE_CODES}|{_STATE_NAMES})\.?,?[ \t]+(?P<ZIP>\d{{5}}(?:-\d{{4}})?)\b",
                0.8, False,
            ),
            PhiPattern(
                "zip_labelled",
                r"\b(?:zip|zip[ \t]*code|postal[ \t]*code|postcode|post[ \t]+code)\b[ \t]*[:#]?"
                r"[ \t]*(?P<ZIP>\d{5}(?:-\d{4})?|[A-Z0-9]{2,4}[ \t]?[0-9][A-Z]{2}"
                r"|[A-Z]\d[A-Z][ \t]?"
                r"\d[A-Z]\d)\b",
                0.85,
            ),
            PhiPattern(
                "uk_postcode",
                r"\b(?P<ZIP>(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)[ \t]?\d[ABD-HJLNP-UW-Z]{2})\b",
                0.6, False,
            ),
            PhiPattern(
                "canada_postcode",
                r"\b(?!T[0-4X][a-d]?N[0-3X][a-c]?M[01X])"  # a TNM stage (T2N1M0) is not a postcode
                r"(?P<ZIP>[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]?\d[ABCEGHJ-NPRSTV-Z]\d)\b",
                0.6, False,
            ),
            PhiPattern(
                "europe_zip_city",
                r"(?:,|^)[ \t]*(?:[A-Z]{1,2}-)?(?P<ZIP>\d{5})[ \t]+"
                r"(?P<LOCATION>[A-Z][A-Za-zÄÖÜäöüéèàç]+"
                r"(?:[ \t-][A-Z][A-Za-zÄÖÜäöüéèàç]+)?)\b(?![ \t]*:)",
                0.75, False,
            ),
            PhiPattern(
                "county",
                rf"\b(?P<LOCATION>(?:{_PLACE_WORD})(?:[ \t](?:{_PLACE_WORD}))?[ \t]+"
                r"(?:County|Parish|"
                r"Borough))\b",
                0.7, False,
            ),
            PhiPattern(
                "lives_in",
                r"\b(?i:lives|living|resides|residing|resident|home|born|moved|relocated|visiting"
                r"|returned|travel(?:l?ed)?)"
                r"(?:[ \t]+(?i:with|alone|together)(?:[ \t]+[\w.'-]+){0,3})?"
                rf"[ \t]+(?i:in|of|to|from)[ \t]+(?:the[ \t]+)?(?P<LOCATION>{_CITY})",
                0.6, False,
            ),
            PhiPattern(
                "city_label",
                rf"\b(?i:city|town|village|residence|hometown)[ \t]*:[ \t]*(?P<LOCATION>{_CITY})",
                0.8, False,
            ),
        ],
    )  # fmt: skip


_FACILITY_KEYWORD = (
    r"(?i:hospital|medical[ \t]+cent(?:er|re)|health[ \t]+(?:center|centre|system|clinic|network)"
    r"|clinic|infirmary|healthcare|nursing[ \t]+home|rehabilitation[ \t]+(?:center|hospital)"
    r"|hospice|care[ \t]+center|surgery[ \t]+center|cancer[ \t]+(?:center|institute)"
    r"|heart[ \t]+institute|sanatorium|polyclinic|klinikum|hôpital|hopital|ospedale"
    r"|krankenhaus|clinique|children'?s[ \t]+hospital|memorial|radiology[ \t]+associates"
    r"|imaging[ \t]+center|medical[ \t]+(?:practice|group)|(?:group[ \t]+)?practice|surgery"
    r"|(?:care|residential|rest|retirement)[ \t]+home|care[ \t]+(?:centre|facility)|pharmacy"
    r"|chemist|health[ \t]+centre|school|college|academy|nursery|prison|\b(?:Co|Ltd|Inc)(?=\.)"
    r"|\b(?:Ltd|Inc|LLC|plc|Company|Corporation)\b)"
)
#: words that make "X Hospital" a common noun phrase rather than a name
_FACILITY_FILLER = words(
    """
    the a an our your this that their his her its outside prior previous other another local
    referring brief at to from in of and for st st. saint mount mt mt. discharge admission
    community general university regional county memorial city state
    pulmonary cardiology oncology medicine surgery surgical orthopedic orthopaedic neurology
    primary care urgent outpatient inpatient emergency radiology dermatology renal chest
    thoracic heart lung sleep wound anticoagulation coumadin diabetes pain family internal
    pediatric gi liver transplant women's womens children's childrens veterans va teaching
    device devices pacemaker icd
    vascular colorectal plastic cardiothoracic cardiac bariatric hand spinal paediatric breast
    upper lower day minor oral maxillofacial ent neuro elective robotic general clinical good
    best current standard private nhs gp dental high primary secondary medical nursing
    specialist hospital evening night weekend sunday local nearest
    """
)


#: words that cannot be inside a facility name: the name starts after the last of them
_FACILITY_BREAK = words(
    """
    the a an at to from in on with by for who whom which was is were has had i we he she
    they seen saw presented transferred admitted followed follow up discharged referred sent
    device note patient pt male female man woman lady gentleman dr mr mrs ms per via old
    yesterday today
    """
)


_MONTH_WORD = regex.compile(rf"(?i){_MONTH}\.?$")


def _is_facility_tail_break(word: str) -> bool:
    """Words a facility name cannot end with ("... Clinic on", "... Hospital Feb")."""
    lower = word.lower().strip(".,'\u2019")
    return not lower or lower in _FACILITY_BREAK or bool(_MONTH_WORD.match(word))


class FacilityRecognizer(PhiPatternRecognizer):
    """Hospital and clinic names: capitalised words before a facility keyword.

    "Brief Hospital Course", "the hospital" and "Pulmonary Clinic" are not names: a match
    made only of filler words (department names, articles) is refused.
    """

    def __init__(self) -> None:
        word = r"(?:[A-Z][\w'\u2019&-]*|St\.|Mt\.|ST\.|MT\.)"
        super().__init__(
            entity_type="FACILITY",
            name="FacilityRecognizer",
            patterns=[
                PhiPattern(
                    "name_keyword",
                    rf"(?<![\w'\u2019-])(?:{word}[ \t]+(?:(?i:of|the|and|for|de|&)[ \t]+)?){{1,5}}"
                    rf"{_FACILITY_KEYWORD}\b(?![ \t]+(?i:course|day|stay|admission|discharge|"
                    r"record|bed|acquired|follow|visit|floor|policy|staff|setting))"
                    r"(?:[ \t]+(?i:of|at|for)[ \t]+(?:(?i:the)[ \t]+)?[A-Z][\w'\u2019-]*"
                    r"(?:[ \t]+(?:(?i:of)[ \t]+)?"
                    r"[A-Z][\w'\u2019-]*){0,3})?",
                    0.8,
                    False,
                ),
                PhiPattern(
                    "foreign_keyword_name",
                    r"(?<![\w])(?i:h[oô]pital|klinikum|ospedale|clinique|krankenhaus|cl[ií]nica)"
                    r"[ \t]+(?:(?i:de|du|des|di|del|der|la|le)[ \t]+)*[A-Z][\w'\u2019-]*"
                    r"(?:[ \t-][A-Z][\w'\u2019-]*){0,2}",
                    0.8,
                    False,
                ),
                PhiPattern(
                    "keyword_of",
                    rf"(?<![\w]){_FACILITY_KEYWORD}[ \t]+(?:of|de|du|des|at)[ \t]+(?:the[ \t]+)?"
                    r"(?:[A-Z][\w'\u2019-]*)(?:[ \t-]+(?:of[ \t]+)?[A-Z][\w'\u2019-]*){0,3}",
                    0.8,
                    False,
                ),
            ],
        )

    def refine(
        self, entity_type: str, text: str, start: int, end: int, pattern: PhiPattern
    ) -> tuple[int, int] | None:
        """Start at the first word after a break word; refuse a match made only of filler."""
        words = list(regex.finditer(r"[\w'\u2019.&-]+", text[start:end]))
        keyword = regex.search(_FACILITY_KEYWORD, text[start:end])
        if keyword is None:
            return None
        before = [w for w in words if w.end() <= keyword.start()]
        first = keyword.start()
        for word in reversed(before):
            if word.group().lower().rstrip(".") in _FACILITY_BREAK:
                break
            first = word.start()
        last = end - start
        for word in reversed(words):
            if not _is_facility_tail_break(word.group()):
                break
            last = word.start()
        words = [w for w in words if w.end() <= last]
        kept = [w.group() for w in words if w.start() >= first]
        names = [
            w
            for w in kept
            if w.lower() not in _FACILITY_FILLER
            and w.lower() not in _FACILITY_BREAK
            and not regex.fullmatch(_FACILITY_KEYWORD, w)
            and w.lower() not in {"center", "centre", "medical", "health", "care", "system"}
        ]
        if not names or not kept:
            return None
        return start + first, start + words[-1].end()


_NAME_TOKEN = (
    r"(?:(?:Mc|Mac|O['\u2019]|D['\u2019]|Di|De|La|Le|St\.[ \t]?)?[A-Z][a-z]+(?:[A-Z][a-z]+)?"
    r"(?:['\u2019-][A-Z]?[a-z]+)*|(?:ST\.[ \t]?)?(?:[A-Z]['\u2019])?[A-Z]{2,}(?:['\u2019-][A-Z]+)*"
    r"|[A-Z][a-z]?\.(?=[ \t]))"
)
_PARTICLE = r"(?:van|von|de|der|den|del|della|di|da|la|le|du|dos|das|bin|ibn|al|el|ter|ten)"
_NAME = rf"(?:{_PARTICLE}[ \t]+)*{_NAME_TOKEN}(?:(?:[ \t]+{_PARTICLE})*[ \t]+{_NAME_TOKEN}){{0,3}}"
#: after a label a name may also be written "Last, First M" or "LAST^FIRST" (DICOM)
_LABELLED_NAME = (
    rf"{_NAME_TOKEN}\^{_NAME_TOKEN}(?:\^{_NAME_TOKEN})?"
    rf"|{_NAME},[ \t]*{_NAME_TOKEN}(?:[ \t]+(?:{_NAME_TOKEN}|[A-Z]\b))?(?![ \t]*[a-z])"
    rf"|{_NAME}"
)
_WORD_NAME = (
    "(?:"
    + "|".join(f"{w.capitalize()}|{w.upper()}" for w in sorted(WORD_NAMES, key=len, reverse=True))
    + ")"
)
_TITLE = (
    r"(?:Dr|DR|Mr|MR|Mrs|MRS|Ms|MS|Miss|MISS|Mx|Prof|PROF|Professor|Doctor|Sister|Sr|Rev|Nurse"
    r"|Master|Mstr)"
)
_PERSON_LABELS = (
    r"(?i:patient(?:'s)?[ \t]+name|patient|pt\.?[ \t]+name|pt|name|attending(?:[ \t]+physician)?"
    r"|referring(?:[ \t]+(?:physician|provider|doctor|clinician|md))?|ordering(?:[ \t]+"
    r"(?:physician|provider|clinician))?|physician|provider|pcp|primary[ \t]+care(?:[ \t]+"
    r"(?:physician|provider))?|(?:electronically[ \t]+)?signed(?:[ \t]+by)?|dictated[ \t]+by"
    r"|transcribed[ \t]+by|reviewed[ \t]+by|read[ \t]+by|reported[ \t]+by|verified[ \t]+by"
    r"|resident|fellow|radiologist|technologist|tech|surgeon|cc|seen[ \t]+by|seen[ \t]+with"
    r"|emergency[ \t]+contact|contact(?:[ \t]+person)?|next[ \t]+of[ \t]+kin|nok|guardian"
    r"|(?:his|her|their|pt's|patient's)[ \t]+(?:wife|husband|daughter|son|mother|father|sister"
    r"|brother|partner|spouse|caregiver|friend|niece|nephew|grandson|granddaughter)"
    r"|(?:wife|husband|daughter|son|mother|father|sister|brother|spouse|caregiver|partner)"
    r"|mum|mom|dad|carer|neighbou?r|friend|driver|passenger|deceased|client|resident|outpatient"
    r"|inpatient|surname|forename|given[ \t]+name|family[ \t]+name|full[ \t]+name"
    r"|dtr|dear|spoke[ \t]+(?:with|to)|talked[ \t]+(?:with|to)|called|accompanied[ \t]+by"
    r"|discussed[ \t]+with|d/w|(?m:^[ \t]*(?:to|from|re|attn)[ \t]*:))"
)
_CREDENTIALS = (
    r"(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA-C|PhD|MBBS|MBChB|FRCR|FRCP|FRCPC|DNP|CNM|APRN|MSN|BSN"
    r"|FACR|LPN|CRNA|DPM|RT|RRT|RDMS|ARRT|MPH|FACC|FCCP)"
)


class PersonRecognizer(PhiPatternRecognizer):
    """Names after a title, a label ("Patient:", "Attending:", "his wife"), before credentials.

    A pattern match is trimmed at the first word that cannot be part of a name (a clinical
    term, a label word, a lower-case word), so "Dr. Chen Reports" yields "Chen".
    """

    def __init__(self) -> None:
        super().__init__(
            entity_type="PERSON",
            name="PersonRecognizer",
            patterns=[
                PhiPattern("title", rf"\b{_TITLE}\.?[ \t]+(?P<phi>{_NAME})", 0.85, False),
                PhiPattern(
                    "label",
                    rf"\b{_PERSON_LABELS}(?![A-Za-z])[ \t]*[:,-]?[ \t]*(?:{_TITLE}\.?[ \t]+)?"
                    rf"(?P<phi>{_LABELLED_NAME})",
                    0.7,
                    False,
                ),
                PhiPattern(
                    "credentials",
                    rf"(?<![\w'-])(?P<phi>{_NAME_TOKEN}"
                    rf"(?:(?:[ \t]+{_PARTICLE})*[ \t]+{_NAME_TOKEN})"
                    r"{1,3}),?"
                    rf"[ \t]+{_CREDENTIALS}\b",
                    0.8,
                    False,
                ),
                PhiPattern(
                    "role_after",
                    rf"(?<![\w'-])(?P<phi>{_NAME_TOKEN}"
                    rf"(?:(?:[ \t]+{_PARTICLE})*[ \t]+{_NAME_TOKEN})"
                    r"{0,3})[ \t]*\((?i:hcp|health[ \t]+care[ \t]+proxy|poa|daughter|son|wife"
                    r"|husband|mother|father|sister|brother|spouse|partner|friend|guardian"
                    r"|caregiver|niece|nephew)\)",
                    0.75,
                    False,
                ),
                PhiPattern(
                    "sign_off",
                    r"(?i:sincerely|regards|best|thanks|thank you|yours(?: truly| sincerely)?"
                    r"|cheers)"
                    rf"(?:,?[ \t]*\n(?:[ \t]*\n)*[ \t]*|,[ \t]*)(?P<phi>{_NAME})",
                    0.75,
                    False,
                ),
                # a capitalised given name that is also a word, before a surname ("Hope Abbott")
                PhiPattern(
                    "word_name_surname",
                    rf"(?<![\w'-])(?P<phi>{_WORD_NAME}[ \t]+{_NAME_TOKEN})(?![\w'-])",
                    0.6,
                    False,
                ),
                # "OKAFOR, GRACE" in capitals where a name stands (start of a line, after ':')
                PhiPattern(
                    "caps_last_first",
                    r"(?:^|(?<=[:\t-][ \t]*))(?P<phi>[A-Z][A-Z'-]{2,},[ \t]*[A-Z][A-Z'-]{2,})"
                    r"(?![\w^])",
                    0.65,
                    False,
                ),
                # "Lena Marsh, DOB ...", "Hope Abbott, 94F": a name before demographics
                PhiPattern(
                    "before_demographics",
                    rf"(?<![\w'-])(?P<phi>{_NAME_TOKEN}(?:[ \t]+{_NAME_TOKEN}){{1,3}}),?[ \t]+\(?"
                    r"(?:(?i:dob|d\.o\.b\.?|born|mrn|nhs|aged?)\b|\d{1,3}[ \t]?(?:y/?o|yrs?|[MF])\b"
                    r"|\d{1,3}-year-old)",
                    0.7,
                    False,
                ),
                # "mrs patel", "dr oyelaran": a lower-case name after a lower-case title
                PhiPattern(
                    "lowercase_title",
                    r"(?<![\w.])(?:dr|mr|mrs|ms|miss)\.?[ \t]+(?P<phi>[a-z][a-z'\u2019-]{2,})"
                    r"(?=[ \t]*(?:[,.;:)\n]|$))",
                    0.6,
                    False,
                ),
                PhiPattern(
                    "dicom_name", r"(?<![\w^])(?P<phi>[A-Za-z'-]+\^[A-Za-z'-]+(?:\^[A-Za-z'-]*)*)",
                    0.8, False,
                ),
            ],
        )  # fmt: skip

    def refine(
        self, entity_type: str, text: str, start: int, end: int, pattern: PhiPattern
    ) -> tuple[int, int] | None:
        """Keep the run of name-like words after the label (before credentials)."""
        if pattern.name in {"credentials", "role_after", "before_demographics"}:
            return trim_name_backwards(text, start, end)
        if pattern.name == "dicom_name" and regex.match(r"\d", text[end : end + 1]):
            return None  # an HL7 message type ("ORU^R01"), not LAST^FIRST
        if pattern.name == "lowercase_title":
            word = text[start:end].lower()
            if word in NAME_STOPWORDS or word in CLINICAL_TERMS or word in _NOT_LOWER_NAMES:
                return None
            return start, end
        if pattern.name == "caps_last_first":
            parts = [p.strip() for p in text[start:end].split(",")]
            if not all(is_name_word(p) or p.lower() in WORD_NAMES for p in parts) or any(
                p.lower() in NON_PHI_PLACES for p in parts
            ):
                return None
            return start, end
        refined = trim_name(text, start, end)
        if pattern.name == "word_name_surname" and (
            refined is None or len(text[refined[0] : refined[1]].split()) < 2
        ):
            return None
        return refined


_WORD = regex.compile(r"[^\s,^]+")
#: lower-case words after "dr"/"mrs" that are not names ("dr aware", "ms relapse")
_NOT_LOWER_NAMES = words(
    "aware informed notified said says asked called contacted happy present review reviewed "
    "request requested team office relapse flare plan note letter and or"
)


def is_name_word(word: str) -> bool:
    """Could ``word`` be (part of) a person's name? Clinical terms and label words cannot."""
    bare = word.strip(".,;:'\u2019()")
    if bare.endswith(("'s", "\u2019s")):
        bare = bare[:-2]
    lower = bare.lower()
    if len(bare) == 0 or lower in CLINICAL_TERMS or lower in NAME_STOPWORDS or lower in TITLES:
        return len(bare) == 1 and bare.isupper()  # an initial
    if bare.isupper() and len(bare) == 2 and not word.endswith("."):
        return False
    return (
        bare[0].isupper()
        and bare.replace("-", "").replace("'", "").replace("\u2019", "").replace(".", "").isalpha()
    )


_PARTICLES = frozenset(_PARTICLE[3:-1].split("|"))


def trim_name(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim ``text[start:end]`` to its leading name words; None when nothing name-like is left.

    Lower-case particles ("van der", "de la") stay when a name word follows them.
    """
    kept_end = start
    found = list(_WORD.finditer(text, start, end))
    for index, match in enumerate(found):
        word = match.group()
        if word.lower() in _PARTICLES:
            continue
        if not (is_name_word(word) or _word_name_in_position(text, found, index)):
            break
        kept_end = match.end()
    span = text[start:kept_end]
    # possessive 's and trailing punctuation are not part of the name
    stripped = regex.sub(r"(?:['\u2019]s)?[.,;:]*$", "", span)
    if not stripped or stripped.endswith(" "):
        return None
    lead = len(stripped) - len(stripped.lstrip())
    too_short = sum(c.isalpha() for c in stripped) < 2
    if (too_short or stripped.split()[0].lower() in _PARTICLES) and not any(
        is_name_word(w) for w in stripped.split()
    ):
        return None
    return start + lead, start + len(stripped)


def _word_name_in_position(text: str, found: list[Any], index: int) -> bool:
    """A capitalised word-name ("Will", "WILL") before a surname or after "Surname,"."""
    word = found[index].group().strip(".,;:")
    if not word or not word[0].isupper() or word.lower() not in WORD_NAMES:
        return False
    if index + 1 < len(found) and is_name_word(found[index + 1].group()):
        return True
    before = text[: found[index].start()].rstrip(" \t")
    return index > 0 and before.endswith((",", "^"))


def trim_name_backwards(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The run of name words that ends the span, at most four ("Findings discussed with Ann
    Lee" before ", MD" gives "Ann Lee")."""
    found = list(_WORD.finditer(text, start, end))
    first = None
    for count, match in enumerate(reversed(found)):
        word = match.group()
        if count >= 4 or not (is_name_word(word) or word.lower() in _PARTICLES):
            break
        first = match.start()
    if first is None:
        return None
    return trim_name(text, first, end)


# --- structured text: tab-separated tables and HL7 v2 segments ------------------------------

#: a column header (lower case, without punctuation) to the entity type of its cells
_COLUMN_TYPES: dict[str, str] = {
    **dict.fromkeys(
        ["name", "patient", "patient name", "pt", "pt name", "surname", "forename", "consultant",
         "doctor", "clinician", "gp", "nurse", "physician", "provider", "attending", "nok",
         "next of kin", "contact", "resident", "client"],
        "PERSON",
    ),
    **dict.fromkeys(
        ["mrn", "hosp no", "hospital no", "hospital number", "unit no", "nhs", "nhs no",
         "nhs number", "patient id", "pt id", "id", "chart", "ur", "crn"],
        "MRN",
    ),
    **dict.fromkeys(
        ["dob", "date of birth", "date", "admitted", "admission", "discharged", "implanted",
         "seen", "date seen", "adm date", "visit date", "dod"],
        "DATE",
    ),
    **dict.fromkeys(
        ["serial", "sn", "s/n", "serial no", "device id", "serial number"], "DEVICE_ID"
    ),
    **dict.fromkeys(["phone", "tel", "telephone", "mobile", "contact no"], "PHONE"),
    **dict.fromkeys(["address", "street"], "LOCATION"),
    **dict.fromkeys(["postcode", "zip", "postal code"], "ZIP"),
    **dict.fromkeys(["acct", "account", "account no"], "ACCOUNT"),
    **dict.fromkeys(["policy", "policy no", "member id", "insurance no"], "HEALTH_PLAN"),
}  # fmt: skip
_CELL_PREFIX = regex.compile(rf"^(?:{_TITLE}\.?[ \t]+|(?i:sn|s/n|mrn|no\.?)[ \t:#]+)")


class TableRecognizer(PhiPatternRecognizer):
    """Cells of a tab-separated table (a spreadsheet paste), typed by their column header.

    A header row is a line of two or more tab-separated cells without digits; each following
    row's cells are taken as PHI when their header names an identifier column ("Name",
    "MRN", "DOB", "Serial"). Cells without a letter or digit, and titles, are left out.
    """

    def __init__(self) -> None:
        super().__init__(entity_type="PERSON", patterns=[], name="TableRecognizer")
        self.supported_entities = sorted(set(_COLUMN_TYPES.values()))

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        """A span per identifier cell of every tab-separated table in ``text``."""
        results = []
        header: list[str | None] | None = None
        offset = 0
        for line in text.split("\n"):
            cells = line.split("\t")
            if len(cells) < 2:
                header = None
            elif header is None or not any(c.isdigit() for c in line):
                keys = [regex.sub(r"[^a-z/ ]", "", c.lower()).strip() for c in cells]
                types = [_COLUMN_TYPES.get(k) for k in keys]
                header = types if any(types) and not any(c.isdigit() for c in line) else header
            else:
                position = offset
                for cell, entity_type in zip(cells, header, strict=False):
                    span = self._cell_span(cell, position, entity_type)
                    if span is not None and (not entities or span[0] in entities):
                        results.append(self._result(*span, _TABLE_CELL))
                    position += len(cell) + 1
            offset += len(line) + 1
        return results

    @staticmethod
    def _cell_span(
        cell: str, position: int, entity_type: str | None
    ) -> tuple[str, int, int] | None:
        stripped = cell.strip()
        if entity_type is None or not any(c.isalnum() for c in stripped):
            return None
        start = position + cell.index(stripped)
        prefix = _CELL_PREFIX.match(stripped)
        if prefix:
            start, stripped = start + prefix.end(), stripped[prefix.end() :]
        if entity_type in {
            "MRN",
            "DEVICE_ID",
            "ACCOUNT",
            "HEALTH_PLAN",
            "PHONE",
            "DATE",
        } and not any(c.isdigit() for c in stripped):
            return None
        return (entity_type, start, start + len(stripped)) if stripped else None


_TABLE_CELL = PhiPattern("table_cell", "", 0.75)
_HL7_FIELD = PhiPattern("hl7_field", "", 0.8)
_HL7_SEGMENT = regex.compile(
    r"^(?:MSH|PID|PD1|PV1|PV2|NK1|IN1|IN2|GT1|OBR|ORC|OBX|NTE|EVN|MRG|AL1|DG1|TXA|SCH|AIP|ROL)\|",
    regex.MULTILINE,
)
_HL7_TIMESTAMP = regex.compile(
    r"^(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:\d{2,6})?(?:[+-]\d{4})?$"
)
#: (segment, field number) to how its components are read: "id" (first component an
#: identifier), "xpn" (a name: family^given^middle), "xcn" (id^family^given: a clinician),
#: "xad" (street^other^city^state^zip), "phone", "facility"
_HL7_FIELDS: dict[tuple[str, int], tuple[str, str]] = {
    ("MSH", 4): ("facility", "FACILITY"),
    ("PID", 2): ("id", "MRN"), ("PID", 3): ("id", "MRN"), ("PID", 4): ("id", "MRN"),
    ("PID", 5): ("xpn", "PERSON"), ("PID", 6): ("xpn", "PERSON"), ("PID", 9): ("xpn", "PERSON"),
    ("PID", 11): ("xad", "LOCATION"), ("PID", 13): ("phone", "PHONE"),
    ("PID", 14): ("phone", "PHONE"), ("PID", 18): ("id", "ACCOUNT"), ("PID", 19): ("id", "SSN"),
    ("PID", 20): ("id", "LICENSE"),
    ("PV1", 7): ("xcn", "PERSON"), ("PV1", 8): ("xcn", "PERSON"), ("PV1", 9): ("xcn", "PERSON"),
    ("PV1", 17): ("xcn", "PERSON"), ("PV1", 19): ("id", "ENCOUNTER"),
    ("PV1", 50): ("id", "ENCOUNTER"),
    ("NK1", 2): ("xpn", "PERSON"), ("NK1", 4): ("xad", "LOCATION"), ("NK1", 5): ("phone", "PHONE"),
    ("IN1", 2): ("id", "HEALTH_PLAN"), ("IN1", 8): ("id", "HEALTH_PLAN"),
    ("IN1", 16): ("xpn", "PERSON"), ("IN1", 19): ("xad", "LOCATION"),
    ("IN1", 36): ("id", "HEALTH_PLAN"), ("IN1", 49): ("id", "HEALTH_PLAN"),
    ("GT1", 3): ("xpn", "PERSON"), ("GT1", 5): ("xad", "LOCATION"), ("GT1", 6): ("phone", "PHONE"),
    ("OBR", 2): ("id", "ACCESSION"), ("OBR", 3): ("id", "ACCESSION"),
    ("OBR", 16): ("xcn", "PERSON"), ("OBR", 32): ("xcn", "PERSON"),
    ("ORC", 2): ("id", "ACCESSION"), ("ORC", 3): ("id", "ACCESSION"),
    ("ORC", 12): ("xcn", "PERSON"),
    ("OBX", 16): ("xcn", "PERSON"),
}  # fmt: skip


class Hl7Recognizer(PhiPatternRecognizer):
    """Identifying fields of HL7 v2 segments, found by position rather than by look.

    PID-3 "7741203^^^MRN" gives the MRN 7741203, PID-5 "DOE^JANE^Q" the name parts, PV1-7
    "1234^LEE^ANN" the clinician's name, PID-11 the street, city and ZIP; any field holding a
    timestamp (YYYYMMDD[hhmm[ss]]) gives its date. Message types ("ORU^R01"), coding systems
    and results are not identifiers and are not reported.
    """

    def __init__(self) -> None:
        super().__init__(entity_type="DATE", patterns=[], name="Hl7Recognizer")
        self.supported_entities = sorted({t for _, t in _HL7_FIELDS.values()} | {"DATE", "ZIP"})

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        """Spans of the identifying fields of every segment line."""
        spans: list[tuple[str, int, int]] = []
        for segment in _HL7_SEGMENT.finditer(text):
            line_end = text.find("\n", segment.start())
            line_end = len(text) if line_end < 0 else line_end
            name = segment.group()[:3]
            position = segment.start()
            fields = text[segment.start() : line_end].split("|")
            for index, field in enumerate(fields):
                number = index + 1 if name == "MSH" else index
                spans.extend(self._field_spans(name, number, field, position))
                position += len(field) + 1
        return [
            self._result(t, s, e, _HL7_FIELD)
            for t, s, e in spans
            if e > s and (not entities or t in entities)
        ]

    @staticmethod
    def _field_spans(
        name: str, number: int, field: str, position: int
    ) -> list[tuple[str, int, int]]:
        components = []
        offset = position
        for component in field.split("^"):
            components.append((component, offset))
            offset += len(component) + 1
        found = []
        for component, offset in components:
            value = component.split("&")[0].strip()
            if _HL7_TIMESTAMP.match(value) and number > 2:
                found.append(("DATE", offset, offset + 8))
        kind, entity_type = _HL7_FIELDS.get((name, number), ("", ""))
        if not kind or found:
            return found

        def span(index: int, entity: str, need_alpha: bool = False) -> None:
            if index < len(components):
                value, offset = components[index]
                if value.strip() and (not need_alpha or any(c.isalpha() for c in value)):
                    found.append((entity, offset, offset + len(value.rstrip())))

        if kind in {"id", "facility", "phone"}:
            span(0, entity_type)
        elif kind == "xpn":
            for index in range(3):
                span(index, "PERSON", need_alpha=True)
        elif kind == "xcn":
            for index in range(1, 4):
                span(index, "PERSON", need_alpha=True)
        elif kind == "xad":
            span(0, "LOCATION")
            span(2, "LOCATION")
            span(4, "ZIP")
        return found


class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
    """Presidio's e-mail recognizer, validating domains with the offline suffix snapshot.

    Presidio's own ``validate_result`` calls ``tldextract.extract``, whose module-level
    extractor downloads the public suffix list on first use; this one never touches the network.
    """

    def __init__(self) -> None:
        super().__init__(supported_entity="EMAIL")

    def validate_result(self, pattern_text: str) -> bool:
        """A real public suffix after the '@' (example.invalid fails, example.org passes)."""
        return bool(OFFLINE_TLD_EXTRACTOR(pattern_text).fqdn)


def url_recognizer() -> UrlRecognizer:
    """Presidio's URL recognizer (regex only, no network)."""
    return UrlRecognizer(supported_entity="URL")


def ip_recognizer() -> IpRecognizer:
    """Presidio's IPv4/IPv6 recognizer, validated with :mod:`ipaddress`."""
    return IpRecognizer(supported_entity="IP_ADDRESS")


def phi_recognizers() -> list[LocalRecognizer]:
    """Every recognizer :class:`~securemed.phi.PhiAnonymizer` registers (besides spaCy NER)."""
    return [
        date_recognizer(),
        compact_date_recognizer(),
        age_recognizer(),
        phone_recognizer(),
        bare_phone_recognizer(),
        fax_recognizer(),
        ssn_recognizer(),
        bare_ssn_recognizer(),
        mrn_recognizer(),
        accession_recognizer(),
        encounter_recognizer(),
        account_recognizer(),
        health_plan_recognizer(),
        license_recognizer(),
        dea_recognizer(),
        vehicle_recognizer(),
        device_recognizer(),
        address_recognizer(),
        FacilityRecognizer(),
        PersonRecognizer(),
        TableRecognizer(),
        Hl7Recognizer(),
        OfflineEmailRecognizer(),
        url_recognizer(),
        ip_recognizer(),
    ]
