"""Checks on the clinician's request: the free-text indication and the image's size.

The indication is the one channel through which a user's words reach the report model, so it
is where prompt injection, instruction smuggling and exfiltration requests arrive. Each check
is a small function with a stable code; it returns an :class:`~securemed.safety.verdict.Issue`
or ``None``, and the policy decides whether the issue flags or blocks. Pattern checks run on
the text as a reader sees it and on its folded form (:mod:`securemed.safety.text_folding`), and
on anything hidden in Unicode tag characters, so homoglyphs, spacing and invisible characters
do not hide an attack.

What this module does not do: judge whether the clinical question is sensible, or find PHI
(the anonymizer runs before, and the report's PHI check after). Messages never quote the
indication; they name the kind of content found and what to send instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from securemed.safety.codes import Code
from securemed.safety.policy import SafetyPolicy
from securemed.safety.sections import HEADER
from securemed.safety.text_folding import (
    BIDI_CONTROLS,
    ZERO_WIDTH,
    decode_tag_characters,
    fold,
    is_tag_character,
    squash,
    strip_invisible,
)
from securemed.safety.verdict import Issue

_RESEND = "resend the indication as the clinical question only"


@dataclass(frozen=True)
class Indication:
    """One indication in the forms the checks read: as sent, as seen, folded, and hidden."""

    raw: str
    visible: str  # without invisible characters: what a reader sees
    folded: str  # see text_folding.fold; includes any tag-smuggled text
    squashed: str  # letters only, see text_folding.squash

    @classmethod
    def of(cls, text: str) -> Indication:
        visible = strip_invisible(text)
        hidden = decode_tag_characters(text)
        folded = fold(f"{visible} {hidden}" if hidden else visible)
        return cls(raw=text, visible=visible, folded=folded, squashed=squash(folded))


def _words(pattern: str) -> re.Pattern[str]:
    """A pattern over folded text where a space stands for any run of non-letters."""
    return re.compile(pattern.replace(" ", r"[\W_]+"))


# --- size and characters ----------------------------------------------------------------------


def too_long(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    if len(indication.raw) <= policy.max_indication_chars:
        return None
    return Issue(
        Code.INDICATION_TOO_LONG,
        f"the indication has {len(indication.raw)} characters, over the limit of "
        f"{policy.max_indication_chars}; send a shorter clinical question",
    )


def control_characters(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    count = sum(1 for c in indication.raw if unicodedata.category(c) == "Cc" and c not in "\t\n\r")
    if not count:
        return None
    return Issue(
        Code.CONTROL_CHARACTERS,
        f"the indication contains {count} control character(s) (terminal escapes, NUL); "
        "send plain text",
    )


def invisible_characters(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    count = sum(1 for c in indication.raw if c in ZERO_WIDTH)
    if not count:
        return None
    return Issue(
        Code.INVISIBLE_CHARACTERS,
        f"the indication contains {count} zero-width or invisible formatting character(s); "
        "they were ignored when checking it; remove them from the text sent",
    )


def unicode_tag_characters(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    count = sum(1 for c in indication.raw if is_tag_character(c))
    if not count:
        return None
    return Issue(
        Code.UNICODE_TAG_CHARACTERS,
        f"the indication contains {count} Unicode tag character(s), which hide text from "
        f"the reader (instruction smuggling); {_RESEND}",
    )


def bidi_controls(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    count = sum(1 for c in indication.raw if c in BIDI_CONTROLS)
    if not count:
        return None
    return Issue(
        Code.BIDI_CONTROLS,
        f"the indication contains {count} bidirectional control character(s), which make "
        f"text display differently from what is processed; {_RESEND}",
    )


#: characters of ordinary clinical prose besides letters, digits and spaces
_PROSE_PUNCTUATION = frozenset(".,;:!?'\"()[]/-+%#&*=<>~@_°±×→–—‘’“”…")  # noqa: RUF001
_MIN_PROSE_SHARE = 0.85
_LONGEST_REPEAT = 20


def not_text(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    text = indication.visible
    if not text.strip():
        return None
    broken = sum(1 for c in text if c == "\ufffd" or unicodedata.category(c) in ("Co", "Cn", "Cs"))
    prose = sum(
        1
        for c in text
        if unicodedata.category(c)[0] in "LNZ" or c in _PROSE_PUNCTUATION or c in "\t\n\r"
    )
    repeated = re.search(rf"(.)\1{{{_LONGEST_REPEAT - 1},}}", text)
    if not broken and prose >= _MIN_PROSE_SHARE * len(text) and not repeated:
        return None
    return Issue(
        Code.NOT_TEXT,
        "the indication does not read as text (undecodable bytes, symbols or long runs of one "
        "character); send the clinical question as plain text",
    )


# --- instructions to the model -----------------------------------------------------------------

_OVERRIDE_VERB = r"(?:ignore|disregard|forget|override|bypass|overrule|skip|drop|abandon)"
_EARLIER = r"(?:previous|prior|above|earlier|preceding|original|initial|system|safety|all|any|your)"
_RULES = (
    r"(?:instructions?|prompts?|rules?|directions?|directives?|guidelines?|guardrails?|"
    r"constraints?|polic(?:y|ies)|context|messages?|programming|restrictions?|filters?|training)"
)
_INJECTION = (
    # "ignore all previous instructions", "forget your rules", "override the system prompt"
    _words(
        rf"\b{_OVERRIDE_VERB} (?:(?:the|all|of|any|every|your|my|these|those) )*"
        rf"(?:{_EARLIER} )*{_RULES}\b"
    ),
    # "disregard the above", "ignore everything above"
    _words(rf"\b{_OVERRIDE_VERB} (?:(?:all|everything|the|of) )*(?:above|before this|said)\b"),
    _words(r"\byou are (?:now|no longer)\b"),
    _words(r"\bfrom now on,? you\b"),
    _words(r"\b(?:act|behave|respond) as (?:if|an?|the) (?!\w+ (?:patient|clinician)\b)"),
    _words(r"\bpretend (?:to be|you are|that you)\b"),
    _words(r"\b(?:new|updated|real|actual|hidden|secret) (?:instructions?|prompt|task|rules?)\b"),
    _words(r"\bsystem (?:prompt|message|instructions?)\b"),
    _words(r"\b(?:jailbreak|developer mode|do anything now|dan mode)\b"),
    _words(r"\b(?:decode|execute|eval|evaluate|run) (?:the following|this (?:code|payload))\b"),
    _words(r"\b(?:approve|sign off|finali[sz]e) (?:this|the) report without\b"),
    # "forget what you were told", "ignore anything you have been instructed"
    _words(
        rf"\b{_OVERRIDE_VERB} (?:what|everything|anything|all)(?: that)? you (?:were|have been|are)"
        r" (?:told|given|instructed|taught|programmed)"
    ),
    _words(
        r"\b(?:system|admin\w*|developer|root|sudo|security) (?:override|command|access|mode)\b"
    ),
    _words(
        r"\b(?:unrestricted|unfiltered|uncensored|jailbroken|god|debug|admin|maintenance|raw)"
        r" mode\b"
    ),
    # "repeat the text above", "translate your instructions"
    _words(
        r"\b(?:repeat|print|show|output|reveal|display|translate|summari[sz]e|paraphrase|recite)"
        r" (?:(?:the|your|all|of|everything|text|words|content) )*(?:above|before this|so far"
        r"|verbatim|instructions|prompt|rules|guidelines)\b"
    ),
)
#: matched on the letters-only form; long and specific enough not to span benign words
_INJECTION_SQUASHED = re.compile(
    rf"(?:ignore|disregard|forget)(?:all|the|any|every|your)*"
    rf"(?:previous|prior|above|earlier|preceding)?{_RULES}"
    r"|(?:ignore|disregard|forget)(?:all|everything)?(?:the)?above"
    r"|systemprompt|youarenow|jailbreak|developermode|doanythingnow"
)


def prompt_injection(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    if not (
        any(p.search(indication.folded) for p in _INJECTION)
        or _INJECTION_SQUASHED.search(indication.squashed)
    ):
        return None
    return Issue(
        Code.PROMPT_INJECTION,
        "the indication contains instructions addressed to the report model (overriding its "
        f"instructions, changing its role or revealing its prompt); {_RESEND}",
    )


_ROLE_MARKERS = (
    re.compile(r"(?:^|[\n.;>\]])\s*(?:system|assistant|developer|user|human)\s*:", re.I),
    re.compile(r"<\|[a-z_]+\|>|<\s*/?\s*s\s*>|<</?sys>>|\[/?(?:inst|system)\]", re.I),
    re.compile(r"#{2,}\s*(?:instruction|response|system|input|assistant)\b", re.I),
    re.compile(r"<(?:start|end)_of_turn>", re.I),
)


def role_marker(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    visible = unicodedata.normalize("NFKC", indication.visible)
    if not any(p.search(visible) or p.search(indication.folded) for p in _ROLE_MARKERS):
        return None
    return Issue(
        Code.ROLE_MARKER,
        "the indication contains chat-template role markers (system/assistant turns, "
        f"instruction tags) that try to speak as the service; {_RESEND}",
    )


_SECRET = (
    r"(?:(?:private|secret|api|encryption|decryption|signing|session|access|ssh|sealing|service)"
    r" keys?|keys|(?:bearer|access|auth\w*|api|session|jwt|service) tokens?|tokens|secrets?"
    r"|passwords?|credentials?|environment variables?|env vars?|config(?:uration)? files?"
    r"|(?:your|the) (?:config(?:uration)?|prompt|instructions)"
    r"|(?:other|another|all|every|each|previous|last|prior) (?:\w+ )?patients?'?s?\b"
    r"|patient (?:list|records|database|data)|(?:medical|patient) records)"
)
_DISCLOSE = (
    r"(?:reveal|show|print|output|display|leak|dump|send|give|tell|list|repeat|return|share"
    r"|expose|email|includ\w*|disclose|forward|upload|export|write out|read out|what (?:is|are)"
    r"|append|attach|insert|add|translate|summari[sz]e|paraphrase|recite)"
)
_SECRET_REQUEST = (
    _words(rf"\b{_DISCLOSE} (?:\w+ ){{0,5}}?{_SECRET}"),
    _words(
        r"\b(?:send|forward|email|upload|post|transmit|exfiltrate)\b.{0,60}\b(?:to|at)\b"
        r".{0,5}(?:\S+@\S+|https?|www)"
    ),
)


def secret_request(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    if not any(p.search(indication.folded) for p in _SECRET_REQUEST):
        return None
    return Issue(
        Code.SECRET_REQUEST,
        "the indication asks the service to disclose keys, tokens, its configuration or "
        f"other patients' data; {_RESEND}",
    )


_NORMAL = (
    r"(?:normal|negative|unremarkable|clear|clean|benign|fine"
    r"|no (?:acute )?(?:findings?|abnormalit\w+|cardiopulmonary \w+|disease))"
)
_IT_IS = r"(?:(?:there (?:are|is)|it is|it s|the (?:study|film|image|report|xray|cxr) is) )?"
_STEERING = (
    _words(
        rf"\b(?:write|report|mark|label|make|classify|call|sign|describe|document|interpret"
        rf"|present|code|treat) (?:\w+ ){{0,3}}?"
        rf"as (?:a |an )?(?:completely |totally )?{_NORMAL}"
    ),
    _words(
        rf"\b(?:(?:please|just|simply|only|must|should|always) (?:state|output|write|report)"
        rf"|say|conclude|answer|print|respond|claim|pretend) (?:that )?{_IT_IS}{_NORMAL}"
    ),
    _words(r"\b(?:do not|don t|dont|never) (?:mention|report|include|flag|describe|note|say)\b"),
    _words(r"\b(?:omit|hide|suppress|leave out) (?:any|all|the|every) "),
    _words(
        r"\b(?:regardless of|irrespective of) (?:what )?(?:the )?(?:image|film|findings|x?ray|scan)"
    ),
    _words(r"\bno matter what\b|\bwhatever (?:the (?:image|film|xray|scan)|it) shows\b"),
    # "generate an unremarkable report", "output only the word normal"
    _words(
        rf"\b(?:generate|write|produce|create|return|give|make|issue) (?:me )?(?:an? |the )?"
        rf"(?:{_NORMAL}|negative) (?:report|study|result|read|reading)"
    ),
    _words(
        r"\b(?:output|print|reply|respond|answer|return|say) (?:(?:with|only|just|exactly"
        rf"|following) )+(?:the )?(?:words?|text|phrase|{_NORMAL})\b"
    ),
)


def output_steering(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    if not any(p.search(indication.folded) for p in _STEERING):
        return None
    return Issue(
        Code.OUTPUT_STEERING,
        "the indication tells the model what the report must conclude (normal, no findings, "
        f"leave something out) instead of asking a clinical question; {_RESEND}",
    )


_HTML_TAGS = (
    r"script|iframe|img|svg|a|object|embed|style|link|meta|form|input|body|html|div|span|p|b|i"
    r"|u|br|table|button|textarea|base|video|audio|source|math|details|marquee|frame|frameset"
)
_MARKUP = (
    re.compile(rf"<\s*/?\s*(?:{_HTML_TAGS})\b[^<]*?/?\s*>", re.I),
    # any lower- or mixed-case tag; all-capitals ones (<PERSON>) are anonymizer placeholders
    re.compile(r"<\s*/?\s*(?![A-Z0-9_]+>)[a-zA-Z][\w:-]*(?:\s[^<>]*)?>"),
    re.compile(r"!?\[[^\]]*\]\([^)]*\)"),  # markdown link or image
    re.compile(r"\b(?:javascript|vbscript)\s*:|\bdata:\w+/[\w+.-]+[;,]", re.I),
    re.compile(
        r"\bon(?:error|load|click|dblclick|mouse\w+|focus\w*|blur|key\w+|submit|change|input"
        r"|begin|end|toggle|pointer\w+|animation\w+|transition\w+)\s*=",
        re.I,
    ),
    re.compile(r"https?://|\bwww\.", re.I),
    re.compile(r"&(?:#x?[0-9a-f]+|lt|gt|quot|amp);", re.I),
    re.compile(r"<!--|```|\{\{.*?\}\}|\$\{[^}]*\}|\{%.*?%\}"),
    # code calls: eval(...), atob(...), document.cookie, os.system(...)
    re.compile(
        r"\b(?:eval|exec|atob|btoa|alert|fetch|require|__import__|fromCharCode|subprocess"
        r"|os\.system|os\.popen)\s*\(|\b(?:document|window)\.\w+",
        re.I,
    ),
)


def markup(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    visible = unicodedata.normalize("NFKC", indication.visible)
    if not any(p.search(visible) for p in _MARKUP):
        return None
    return Issue(
        Code.MARKUP,
        "the indication contains markup, script, links or template syntax; "
        "send plain text without HTML, markdown or URLs",
    )


_ENCODED = (
    re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}"),  # base64
    re.compile(r"[A-Za-z0-9_-]{40,}"),  # base64url, long tokens
    re.compile(r"\b(?:0x)?[0-9a-fA-F]{24,}\b"),  # hex
    re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,}|(?:\\u[0-9a-fA-F]{4}){3,}"),  # escapes
    re.compile(r"(?:%[0-9a-fA-F]{2}){4,}"),  # percent-encoding
    re.compile(r"(?:[01]{8}\s?){6,}"),  # binary
)


def encoded_payload(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    visible = unicodedata.normalize("NFKC", indication.visible)
    if not any(p.search(visible) for p in _ENCODED):
        return None
    return Issue(
        Code.ENCODED_PAYLOAD,
        "the indication contains an encoded blob (base64, hex, escapes or percent-encoding) "
        "that could carry hidden instructions; send the clinical question as plain text",
    )


def section_header_in_indication(indication: Indication, policy: SafetyPolicy) -> Issue | None:
    # the service puts the indication in front of the report it seals: a header in it would
    # start a report section the model never wrote
    if not HEADER.search(unicodedata.normalize("NFKC", indication.visible)):
        return None
    return Issue(
        Code.SECTION_HEADER_IN_INDICATION,
        "the indication contains a report section header (INDICATION:, FINDINGS: or "
        "IMPRESSION: in capitals), which would be read as part of the report; "
        "rephrase it without the header",
    )


IndicationCheck = Callable[[Indication, SafetyPolicy], Issue | None]

#: every indication check, in the order their reasons are reported
INDICATION_CHECKS: tuple[IndicationCheck, ...] = (
    too_long,
    control_characters,
    invisible_characters,
    unicode_tag_characters,
    bidi_controls,
    not_text,
    prompt_injection,
    role_marker,
    secret_request,
    output_steering,
    markup,
    encoded_payload,
    section_header_in_indication,
)


# --- the image ---------------------------------------------------------------------------------


def image_size(image_bytes: int, policy: SafetyPolicy) -> Issue | None:
    """An empty upload or one over the limit; the image's content is the decoder's to judge."""
    if image_bytes <= 0:
        return Issue(Code.IMAGE_EMPTY, "the image is empty; send the X-ray file")
    if image_bytes > policy.max_image_bytes:
        return Issue(
            Code.IMAGE_TOO_LARGE,
            f"the image has {image_bytes} bytes, over the limit of {policy.max_image_bytes}; "
            "send a single chest film (downsample or compress it)",
        )
    return None
