"""Fold free text to the plain form the injection patterns are written against.

An attacker who knows a filter matches "ignore previous instructions" writes it with dotless
i's, Cyrillic look-alikes, fullwidth letters, accents, zero-width joiners or spaces between the
letters. Folding undoes those before matching: remove invisible characters, NFKC (fullwidth and
mathematical letters become ASCII), strip combining marks, casefold, map the common homoglyphs,
and join runs of single spaced-out letters. :func:`squash` goes further (letters only, digits
read as the letters they imitate) for patterns long and distinctive enough not to match across
the words of a benign sentence.

This module only transforms text; it decides nothing. It does not try to be a full confusables
table (Unicode TR39): it covers the scripts whose letters pass for Latin ones in a sans-serif
font, which is what a clinician's screen and a model's tokenizer both see.
"""

from __future__ import annotations

import re
import unicodedata

#: characters that render as nothing: zero-width space/joiners, word joiner, invisible
#: operators, soft hyphen, BOM, variation selectors, Mongolian vowel separator
ZERO_WIDTH = frozenset(
    "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u034f\u180e"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
)
#: explicit bidirectional formatting: the "Trojan Source" characters
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_TAG_START, _TAG_END = 0xE0000, 0xE007F  # Unicode tags: invisible copies of ASCII

# (look-alike, Latin letter) pairs; the ambiguity ruff warns of is the point of the table
_LOOKALIKE_PAIRS = (
    "аaвbеeёeкkмmнhоoрpсcтtуyхxіiїiјjѕsԁdһhӏlԛqԝwցgոnսuօo"  # noqa: RUF001 - Cyrillic, Armenian
    "αaβbεeηnιiκkνvοoρpτtυuχxωwγy"  # noqa: RUF001 - Greek
    "ıiȷjɩiɡgʀrᴀaᴇeɪiɴnᴏoꜱsᴛtᴜuℓløoðdłlđdħh"  # noqa: RUF001 - Latin that NFKC keeps
)
_HOMOGLYPHS = str.maketrans(_LOOKALIKE_PAIRS[0::2], _LOOKALIKE_PAIRS[1::2])
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "|": "l", "!": "i"})  # fmt: skip
#: three or more single letters separated by one space-like character: "i g n o r e"
_SPACED_LETTERS = re.compile(r"(?<![^\W_])(?:[^\W_][\s.\-_*·•|/]){2,}[^\W_](?![^\W_])")
_SPACE_LIKE = re.compile(r"[\s.\-_*·•|/]")
_WHITESPACE = re.compile(r"\s+")


def is_tag_character(char: str) -> bool:
    return _TAG_START <= ord(char) <= _TAG_END


def decode_tag_characters(text: str) -> str:
    """The ASCII hidden in Unicode tag characters ("ASCII smuggling"), empty if none."""
    return "".join(chr(ord(c) - _TAG_START) for c in text if _TAG_START + 0x20 <= ord(c) < _TAG_END)


def strip_invisible(text: str) -> str:
    """``text`` without zero-width, bidi and tag characters: what a reader sees."""
    return "".join(
        c
        for c in text
        if c not in ZERO_WIDTH and c not in BIDI_CONTROLS and not is_tag_character(c)
    )


def fold(text: str) -> str:
    """Lower-case ASCII-like text with look-alikes mapped and spaced-out letters joined."""
    text = unicodedata.normalize("NFKC", strip_invisible(text))
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    text = text.casefold().translate(_HOMOGLYPHS)
    text = _SPACED_LETTERS.sub(lambda m: _SPACE_LIKE.sub("", m.group(0)), text)
    return _WHITESPACE.sub(" ", text).strip()


def squash(folded: str) -> str:
    """Letters only, with digits and symbols read as the letters they imitate ("1gn0re")."""
    return re.sub(r"[^a-z]", "", folded.translate(_LEET))
