"""Personal data in MCP traffic: Presidio, fully offline, behind a prefilter that keeps it fast.

Running Presidio with spaCy's NER over every string would cost 20-60 ms per KB on a small
machine, and the gateway scans every tool call. So the detector does as little as it can:

1. **Triggers.** Cheap regular expressions find the places where PII could be: an ``@`` between
   word characters, a run of seven or more digits, a dotted quad or IPv6-like group, an IBAN-like
   prefix, a capitalised word that could start a name. A string with none costs microseconds.
2. **Pattern windows.** Presidio's pattern recognisers (plus two context-gated ones of ours) run
   only on short windows around the triggers, with a regex tokenizer standing in for the spaCy
   pipeline: context words ("SSN:", "Phone:") still raise scores, by Presidio's rule. A bare run
   of fewer than twelve digits opens a window only next to such a word, since without one no
   recogniser would report it (JSON is full of ids and sizes).
3. **Names.** An honorific ("Mr. Smith"), a label ("Name: ...", "Dear ...") or a first name from
   the optional ``names`` package followed by a surname makes a PERSON with no model at all.
   spaCy NER runs only on the phrases around the remaining name-like words, at most
   `ner_max_chars` characters per call; a capitalised label alone on its line ("Max Length", a
   JSON-schema title) is left to the cues. The small model calls many unfamiliar full names
   organisations ("Miklós Hajdu"): an ORG of two or three capitalised words that begins with a
   known first name, or none of whose words its vocabulary knows, counts as a person. A model
   person that is one word and no known first name or common surname ("Tales", "Grafana"), or
   only ordinary words ("Email Routing"), does not.
   **Beyond that cap**, names are found only by those cues; pattern entities are always scanned
   in full, whatever the size.
4. **Spans.** Findings are trimmed to the value (no quotes, delimiters or "'s"), filtered
   (a version string is not an IP address; "Docker" or a code identifier is not a person) and
   de-duplicated: where findings overlap, the higher score wins, then the more specific entity.

Scores are Presidio's (a checksum-validated card or IBAN scores 1.0, NER 0.85, a name cue 0.6, a
phone number without a phone word 0.4); findings below `score_threshold` (0.4) are dropped.
Labels are lower-case kebab names (`LABELS`), like the secrets detector's: ``email``, ``phone``,
``credit-card``, ``us-ssn``, ``iban``, ``ip-address``, ``person``; optional entities add
``us-bank-account``, ``us-passport``, ``us-driver-license``, ``uk-nhs``, ``medical-license``,
``crypto-wallet`` and ``location``. The `entities` option takes Presidio's entity names.
"""

from __future__ import annotations

import bisect
import importlib.abc
import logging
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import regex

from ..verdict import Span
from .escapes import unescaped_spans
from .pii_names import AMBIGUOUS_FIRST_NAMES, NOT_NAME_WORDS, first_names, last_names

if TYPE_CHECKING:
    from .pii_presidio import PresidioEngine

__all__ = ["AS_SUBJECT", "DEFAULT_ENTITIES", "LABELS", "NER_RECOGNIZER", "Found", "PiiDetector"]

logger = logging.getLogger(__name__)

# an "@" written as a URL or JSON escape: the text is also read unescaped for addresses
_ESCAPED_AT = regex.compile(r"%40|\\u0040", regex.IGNORECASE)

LABELS: Mapping[str, str] = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit-card",
    "US_SSN": "us-ssn",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip-address",
    "PERSON": "person",
    "US_BANK_NUMBER": "us-bank-account",
    "US_PASSPORT": "us-passport",
    "US_DRIVER_LICENSE": "us-driver-license",
    "UK_NHS": "uk-nhs",
    "MEDICAL_LICENSE": "medical-license",
    "CRYPTO": "crypto-wallet",
    "LOCATION": "location",
}
# The optional entities are off by default: on benign MCP traffic their weak patterns (any 8-17
# digits for a bank account, any valid NHS checksum) or NER (LOCATION) flag ordinary values.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "PERSON",
)
# Which entity wins where two findings overlap with the same score: checksummed and
# structurally distinctive values first, NER guesses last.
_SPECIFICITY = {entity: rank for rank, entity in enumerate(reversed((
    "CREDIT_CARD", "IBAN_CODE", "CRYPTO", "EMAIL_ADDRESS", "UK_NHS", "US_SSN", "IP_ADDRESS", "MEDICAL_LICENSE",
    "US_PASSPORT", "US_DRIVER_LICENSE", "PHONE_NUMBER", "US_BANK_NUMBER", "PERSON", "LOCATION",
)))}
_DIGIT_ENTITIES = frozenset({
    "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE",
    "UK_NHS", "MEDICAL_LICENSE",
})
_NER_ENTITIES = frozenset({"PERSON", "LOCATION"})
_IPV6 = frozenset({"IP_ADDRESS"})

# --- triggers: where PII could be --------------------------------------------------------------
_TRIGGERS: tuple[tuple[regex.Pattern[str], frozenset[str]], ...] = (
    (regex.compile(r"[\w.+-]@[\w-]"), frozenset({"EMAIL_ADDRESS"})),
    (regex.compile(r"\d(?:[ \-.()/+]{1,3}+\d|\d){6,}"), _DIGIT_ENTITIES),
    (regex.compile(r"\d{1,3}(?:\.\d{1,3}){3}"), frozenset({"IP_ADDRESS"})),
    # IPv6 starts at a colon, so the regex engine can skip ahead to colons; _pattern_windows widens it
    (regex.compile(r":[0-9A-Fa-f]{0,4}:"), _IPV6),
    (regex.compile(r"\b[A-Z]{2}\d{2}[ -]?[A-Z0-9]{4}"), frozenset({"IBAN_CODE"})),
    (regex.compile(r"\b(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25,61}\b"), frozenset({"CRYPTO"})),
)
# A bare run of fewer than 12 digits (an id, a size, a count) is a phone, SSN, passport or bank
# number to Presidio only with a context word nearby; without one its score stays below the
# threshold, so such runs open no window. These are the context words of the recognisers that
# accept bare digits (substrings, as Presidio matches them). Card numbers (12+ digits) have a
# checksum and need none.
_DIGIT_CONTEXT_WORDS = (
    "ssn", "social", "security", "ssid", "phone", "mobile", "tel", "cell", "fax", "desk", "call", "whatsapp", "contact",
    "number", "card", "credit", "visa", "amex", "mastercard", "discover", "iban", "bank", "account", "acct", "check",
    "save", "debit", "routing", "passport", "travel", "document", "united", "states", "driver", "licen", "permit",
    "lic", "identification", "driving", "medical", "certificate", "dea",
)
_NEEDS_NO_CONTEXT = frozenset({"UK_NHS", "US_DRIVER_LICENSE", "MEDICAL_LICENSE"})
# Digit runs that are plainly dates, times or decimals hold none of the digit entities.
_NOT_PII_DIGITS = regex.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}|\d+\.\d+|\d{4}-\d{2}-\d{2}[ T]\d{2}"
)
# A capitalised word, not inside a code token or a path.
_TITLE = r"\p{Lu}\p{Ll}+(?:[-']\p{Lu}?\p{Ll}+)*"
# The words after a sentence's first word that make it the sentence's subject, perhaps a person:
# "Jennifer is ...", "Magnus spent a year ...". An imperative ("Convert time ...") has none.
_SUBJECT_VERB = (
    r"(?:is|was|has|had|will|would|can|could|did|does|may|might|must|should|shall|spent|began|begins|started"
    r"|lives|lived|works|worked|went|goes|came|comes|joined|left|wrote|writes|said|says|told|asked|called|wants"
    r"|wanted|needs|needed|loves|loved|likes|liked|knows|knew|thinks|thought|became|got|gets|made|makes|took"
    r"|takes|gave|gives|moved|studied|graduated|married|died|won|lost|played|sang|met|saw|felt|seems|seemed)"
)
# what follows a sentence's first word when it is the sentence's subject: a verb, or a comma and a
# lower-case word ("Bryce, can I ...")
AS_SUBJECT = rf"(?=,[ \t]+\p{{Ll}}|[ \t]+{_SUBJECT_VERB}\b)"
# A capitalised word that could be (part of) a name: two or more of them (an initial, dotted or not,
# may sit between: "Ryan P Costa"), one after a lower-case word, or one opening a sentence or a line
# as its subject ("Jennifer is ...", "Bryce, can I ..."). Unless places are wanted too, an opener is
# asked about only when it may be a name (`PresidioEngine.may_be_name`): most sentences open with an
# ordinary word ("However, ...").
_NAME_LIKE = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}_@./\\#$-])(?:{_TITLE}(?:[ \t]+\p{{Lu}}\.?)?(?:[ \t]+{_TITLE})+"
    rf"|(?<=\p{{Ll}},?[ \t]+){_TITLE}"
    rf"|(?P<opener>(?:(?<=^[ \t]*)|(?<=[.!?][\"”]?\s+)){_TITLE}{AS_SUBJECT}))"
    r"(?![\p{L}\p{N}_@/\\(])",
    regex.MULTILINE,
)
# Honorifics and labels make a name of the next capitalised word ("Mr. Smith", "Name: Lee"),
# which _NAME_LIKE may skip.
_HONORIFIC_HINT = regex.compile(
    r"(?i:\b(?:mr|mrs|ms|mx|miss|dr|prof|sir|dame|madam|mister|madame|mme|herr|frau"
    r"|name[ \t]*(?:is|:|=)|dear|calls?[ \t]+me|sincerely,?|regards,?))\.?[ \t]+\p{Lu}"
    # someone's own name needs no capital ("my name is borna"): see pii_presidio._OWN_NAME
    r"|(?i:\b(?:my|his|her|their|maiden)[ \t]+name[ \t]+is|\bcalls?[ \t]+me)[ \t]+\p{L}"
    # a speaker label opening a line or a sentence ('Ella: "Who are you?"'), with what pii_presidio._LONE_CUED
    # needs after it: "Status: ok" is no cue, and spares a pass of the cue recognisers
    r"|(?:^[ \t]*|[.!?][\"”]?[ \t]+)\p{Lu}\p{Ll}{2,}:[ \t]*[\"“]?\p{Lu}"
    # a possessive ("Priya's birthday"): see the first branch of pii_presidio._LONE_CUED
    r"|(?<![\p{L}\p{N}_@./\\#$-])\p{Lu}\p{Ll}{2,}['’]s\b",
    regex.MULTILINE,
)
# A NER "person" right after a house number or a place preposition is a street or a town:
# "5850 Jana Nerudy", "I am in Akureyri", "flew to Coles", "home city Assen".
_PLACE_BEFORE = regex.compile(
    r"(?:\b\d+[A-Za-z]?|\b(?i:in|at|near|city|town|village|visit|visiting|rua|avenida|av\.|calle|via|viale"
    r"|piazza|piazzetta|rue|ulica|ul\.|strada|praça|largo|c/"
    r"|(?:flew|fly|flying|flown|travel(?:l?ed|s)?|moved?|moving|trip|drove|drive|went|go|going|headed|heading"
    r"|relocated?|welcome|back|returned|return|coming|come|came|originally|here)[ \t]+(?:to|from)))\s+$"
)
# ... or right before a house number, after a word like "on": "lives on Joaquin Suarez 2906".
_STREET_AFTER = regex.compile(r"[ \t]\d{1,5}(?![\d:/-]|\.\d)")
_STREET_BEFORE = regex.compile(r"\b(?i:on|at|in|to|of)[ \t]+$")
_CUE_RECOGNIZER = "NameCueRecognizer"
_OWN_NAME_CUE = f"{_CUE_RECOGNIZER} (own name)"
_FIRST_NAME_CUE = f"{_CUE_RECOGNIZER} (first-name list)"
NER_RECOGNIZER = "SpacyRecognizer"
_PLACE_SENSITIVE = frozenset((NER_RECOGNIZER, _FIRST_NAME_CUE))
# The lines under a name that make it the head of a contact card or a postal address: a house
# number and street, a military or PO box, or a labelled phone line.
_CONTACT_LINE = regex.compile(
    r"^[ \t]*(?:\d+[A-Za-z]?[ \t,]+\p{L}|(?i:psc|unit|box|po[ \t]+box|usns|uss|apo|fpo|the[ \t]+corner)\b"
    r"|(?i:mobile|phone|tel|fax|office|desk|cell|e-?mail)[ \t]*:|\+?[\d(][\d ()./-]{6,}[ \t]*-?(?i:office|fax|mobile))",
    regex.MULTILINE,
)

_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_DELIMS = frozenset(" \t\r\n\"'`<>()[]{},;|")
_SNAP = 32  # how far a window edge may move to land on a delimiter
_PATTERN_LEFT, _PATTERN_RIGHT = 48, 24  # context for "SSN: ..." before and "... office" after
_NER_SIDE = 40
# where a phrase ends, for NER windows: a line, a JSON or HTML string, a table cell, a sentence
_PHRASE_END = regex.compile(r"[\n\t\"{}\[\]|<>]|[.!?;](?=\s)")
_MAX_PATTERN_WINDOW = 2048  # neighbouring windows merge up to this size: fewer Presidio calls
_MAX_NER_WINDOW = 400
# between the phrases of one NER call: a line of its own, so a name's phrase is read less with the one
# before it ("Sven Hedlund" over a street line was no person); chosen on the train and dev splits
_NER_JOIN = "\n.\n"

_TRIM = " \t\r\n\"'`()[]{}<>,;:.!?*_"
_LINE_DECOR = " \t\r#*->|`\"',:;.!?[](){}"
_POSSESSIVE = ("'s", "’s")
_IP_VERSION_CONTEXT = regex.compile(
    r"(?:\b(?:v|ver|version|release|build|firmware|tag)[\"']?\s*[:=]?\s*[\"']?|[vV@=^~<>]=?)$", regex.IGNORECASE
)
_DECIMAL = regex.compile(r"\d+\.\d+")
_DATE = regex.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}")
_CODEY = regex.compile(r"[\d_/\\@#$%&=<>{}|]|\p{Ll}\p{Lu}\p{Ll}*\p{Lu}|\b\p{Lu}{2,}\b")


@dataclass(frozen=True, slots=True)
class Found:
    """One recogniser's finding, in plain values: no Presidio type leaves `pii_presidio`."""

    entity: str  # Presidio's entity name
    start: int
    end: int
    score: float
    recognizer: str


@dataclass(slots=True)
class _Window:
    start: int
    end: int
    entities: set[str]
    clean_start: bool = True
    clean_end: bool = True


def _import_presidio() -> ModuleType:
    """`pii_presidio`, imported with transformers kept out of Presidio's way.

    Presidio's NLP engines module imports transformers whenever it is installed (for a Hugging Face
    engine this detector never uses): 2.2 s of the gateway's start on two cores, and hundreds of MB.
    While this thread imports the module, its ``import transformers`` fails as if it were not
    installed, which Presidio handles; other threads import it as usual, and a process that had
    imported transformers already keeps it."""
    blocker = None if "transformers" in sys.modules else _NoTransformersOnThisThread()
    if blocker is not None:
        sys.meta_path.insert(0, blocker)
    try:
        from . import pii_presidio
    finally:
        if blocker is not None:
            sys.meta_path.remove(blocker)
    return pii_presidio


class _NoTransformersOnThisThread(importlib.abc.MetaPathFinder):
    """Makes ``import transformers`` fail on the thread that created it, and nowhere else."""

    def __init__(self) -> None:
        self._thread = threading.get_ident()

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if threading.get_ident() == self._thread and fullname.partition(".")[0] == "transformers":
            raise ModuleNotFoundError(f"No module named {fullname!r} (not loaded for Presidio)", name=fullname)


class PiiDetector:
    """Finds people's names, contact details and identity, card, bank and IP numbers.

    Presidio and spaCy load on `warm` or on the first scan that needs them, under a lock; after
    that `scan` may be called from several threads at once (spaCy NER runs under its own lock).
    `first_names` and `last_names` replace the optional ``names`` package's lists (lower-case names).
    """

    name = "pii"

    def __init__(
        self,
        *,
        entities: Iterable[str] = DEFAULT_ENTITIES,
        score_threshold: float = 0.4,
        ner_max_chars: int = 300,
        first_names: Iterable[str] | None = None,
        last_names: Iterable[str] | None = None,
    ) -> None:
        chosen = tuple(dict.fromkeys(entities))
        unknown = [entity for entity in chosen if entity not in LABELS]
        if unknown:
            raise ValueError(f"unknown PII entities {unknown}; supported: {', '.join(LABELS)}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be within [0, 1], not {score_threshold}")
        if ner_max_chars < 0:
            raise ValueError(f"ner_max_chars must be >= 0, not {ner_max_chars}")
        self.entities = chosen
        self.score_threshold = score_threshold
        self.ner_max_chars = ner_max_chars
        self._wanted = frozenset(chosen)
        self._given_first_names = None if first_names is None else frozenset(n.lower() for n in first_names)
        self._given_last_names = None if last_names is None else frozenset(n.lower() for n in last_names)
        self._engine: PresidioEngine | None = None
        self._load_lock = threading.Lock()

    def warm(self) -> None:
        """Load Presidio, the spaCy model and the name list, and exercise every recogniser once."""
        self._load()
        self.scan("warm", "Mr. John Smith, john.smith@example.com, +1 212 555 0187, card 4111 1111 1111 1111, "
                          "SSN 372-84-5519, IBAN GB82 WEST 1234 5698 7654 32, IP 10.0.0.1, fe80::1.")

    def _load(self) -> PresidioEngine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._load_lock:
            if self._engine is None:
                # Presidio and spaCy load here, not at import: about a second that a gateway
                # without a PII policy must not pay
                pii_presidio = _import_presidio()

                given_first, given_last = self._given_first_names, self._given_last_names
                self._engine = pii_presidio.build(
                    self._wanted, exclude=NOT_NAME_WORDS | AMBIGUOUS_FIRST_NAMES,
                    first_names=given_first if given_first is not None else first_names(),
                    last_names=given_last if given_last is not None else last_names(),
                )
            return self._engine

    @staticmethod
    def field_context(field: str) -> str:
        return ""  # the text alone decides

    def scan(self, field: str, text: str) -> list[Span]:
        spans = self._scan(field, text)
        if "EMAIL_ADDRESS" in self._wanted and _ESCAPED_AT.search(text):
            # an address written with URL or JSON escapes (`?to=ann.lee%40example.com`): found as it reads
            # unescaped (addresses only: names and numbers were looked for in the text as written)
            for found in unescaped_spans(lambda view: self._addresses(field, view), text):
                if not any(span.start < found.end and found.start < span.end for span in spans):
                    spans.append(found)
        return spans

    def _addresses(self, field: str, text: str) -> list[Span]:
        windows = [window for window in self._pattern_windows(text) if "EMAIL_ADDRESS" in window.entities]
        if not windows:
            return []
        engine = self._load()
        found = self._pattern_findings(engine, text, windows, only=("EMAIL_ADDRESS",))
        return self._spans(field, text, found, engine)

    def _pattern_findings(
        self, engine: PresidioEngine, text: str, windows: list[_Window], only: tuple[str, ...] = ()
    ) -> list[Found]:
        """What the pattern recognisers find in each window (of `only` these entities, if given)."""
        found: list[Found] = []
        for window in windows:
            piece = text[window.start : window.end]
            entities = sorted(window.entities & set(only)) if only else sorted(window.entities)
            for found_item in engine.patterns(piece, entities, self.score_threshold):
                item = _address_alone(found_item, piece)
                if _clean_edges(item, window):
                    found.append(_shift(item, window.start))
        return found

    def _scan(self, field: str, text: str) -> list[Span]:
        windows = self._pattern_windows(text)
        people = self._wanted & _NER_ENTITIES
        matches = list(_NAME_LIKE.finditer(text)) if people else []
        cued = "PERSON" in people and (bool(matches) or _HONORIFIC_HINT.search(text) is not None)
        if not windows and not matches and not cued:
            return []
        engine = self._load()
        # a sentence opener is asked about only if it may be a name; when places are wanted too, the
        # others are asked about with what budget the rest leaves
        candidates: list[tuple[int, int]] = []
        later: list[tuple[int, int]] = []
        for match in matches:
            if match.group("opener") is None or engine.may_be_name(match.group()):
                candidates.append(match.span())
            elif "LOCATION" in people:
                later.append(match.span())
        found = self._pattern_findings(engine, text, windows)
        if cued:
            found.extend(engine.name_cues(text, self.score_threshold))
        if candidates or later:
            found.extend(self._ner(engine, text, candidates, found, later))
        return self._spans(field, text, found, engine)

    # --- windows --------------------------------------------------------------------------------
    def _pattern_windows(self, text: str) -> list[_Window]:
        raw: list[_Window] = []
        context: _ContextIndex | None = None
        for pattern, entities in _TRIGGERS:
            wanted = entities & self._wanted
            if not wanted:
                continue
            for match in pattern.finditer(text):
                start, end = match.span()
                if entities is _DIGIT_ENTITIES:
                    value = match.group()
                    if _NOT_PII_DIGITS.fullmatch(value):
                        continue
                    if value.isdigit() and len(value) < 12 and not self._wanted & _NEEDS_NO_CONTEXT:
                        context = context or _ContextIndex(text)
                        if not context.near(start - _PATTERN_LEFT, end + _PATTERN_RIGHT):
                            continue
                elif entities is _IPV6:
                    start, end = _hex_token(text, start, end)
                    if text.count(":", start, end) < 3 and "::" not in text[start:end]:
                        continue  # a time of day ("10:30:00"), not an IPv6 address
                raw.append(_window(text, start, end, wanted, left=_PATTERN_LEFT, right=_PATTERN_RIGHT))
        return _merge(raw, _MAX_PATTERN_WINDOW)

    def _ner(self, engine: PresidioEngine, text: str, candidates: list[tuple[int, int]],
             found: Sequence[Found], later: Sequence[tuple[int, int]] = ()) -> list[Found]:
        """NER over the phrases around `candidates`, then around `later` ones while the budget lasts."""
        inside = _Cover([(f.start, f.end) for f in found if f.entity == "PERSON"])

        def worth_asking(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
            return [
                (s, e) for s, e in spans
                if not _stopword_only(text[s:e]) and not inside.covers(s, e)
                and (not _whole_line(text, s, e) or _heads_contact(text, e))
            ]

        asked = worth_asking(candidates)
        budget = self.ner_max_chars
        chosen: list[_Window] = []
        todo = 0

        def take(spans: list[tuple[int, int]]) -> None:
            nonlocal budget, todo
            for window in _merge([_ner_window(text, s, e) for s, e in spans], _MAX_NER_WINDOW):
                todo += 1
                if window.end - window.start <= budget:
                    chosen.append(window)
                    budget -= window.end - window.start

        take(asked)
        # the later ones a chosen phrase already holds are read with it; the others get what budget is left
        later_asked = worth_asking(later)
        read = _Cover([(w.start, w.end) for w in chosen])
        take([(s, e) for s, e in later_asked if not read.covers(s, e)])
        asked += later_asked
        chosen.sort(key=lambda w: w.start)
        if len(chosen) < todo and logger.isEnabledFor(logging.DEBUG):
            logger.debug("pii: NER budget of %d characters reached; names beyond it rely on cues",
                         self.ner_max_chars)
        # one NER call over the chosen phrases, one a line: spaCy's fixed cost per call is paid once
        starts: list[int] = []
        lines: list[str] = []
        at = 0
        for window in chosen:
            starts.append(at)
            lines.append(text[window.start:window.end])
            at += window.end - window.start + len(_NER_JOIN)
        results: list[Found] = []
        for item in engine.ner(_NER_JOIN.join(lines), self.score_threshold):
            index = bisect.bisect_right(starts, item.start) - 1
            window = chosen[index]
            offset = window.start - starts[index]
            shifted = _shift(item, offset)
            # NER only answers for the name-like words it was run for, not for a sentence-initial
            # "Convert" that happens to share their phrase
            if item.end - starts[index] <= window.end - window.start and any(
                s < shifted.end and shifted.start < e for s, e in asked
            ):
                results.append(shifted)
        return results

    # --- spans ----------------------------------------------------------------------------------
    def _spans(self, field: str, text: str, found: Iterable[Found], engine: PresidioEngine) -> list[Span]:
        kept: list[tuple[int, int, str, float]] = []
        anchors: set[tuple[int, int]] = set()
        for item in found:
            if item.entity not in self._wanted:
                continue
            start, end = _trim(text, item.start, item.end, item.entity)
            if end <= start or not _plausible(text, start, end, item.entity,
                                              cased=item.recognizer != _OWN_NAME_CUE):
                continue
            if item.recognizer in _PLACE_SENSITIVE and (
                _PLACE_BEFORE.search(text, max(0, start - 24), start)
                or (_STREET_AFTER.match(text, end) and _STREET_BEFORE.search(text, max(0, start - 8), start))
            ):
                continue
            if item.recognizer == NER_RECOGNIZER and _whole_line(text, start, end) and not _heads_contact(text, end):
                # a capitalised label alone on its line or in its string ("Max Length", "Font Name":
                # JSON-schema titles) reads as a name to NER; only a name cue, or the address and
                # phone lines of a contact card below it, may claim it
                continue
            kept.append((start, end, item.entity, item.score))
            if item.entity == "PERSON" and _anchors(item.recognizer, text[start:end], engine):
                anchors.add((start, end))
        kept.sort(key=lambda k: (-k[3], -_SPECIFICITY.get(k[2], 0), -(k[1] - k[0]), k[0]))
        # greedy, best first; `chosen` stays sorted and disjoint, so one neighbour check per finding
        chosen: list[tuple[int, int, str, float]] = []
        for candidate in kept:
            at = bisect.bisect_left(chosen, candidate[:1])
            if at > 0 and chosen[at - 1][1] > candidate[0]:
                continue
            if at < len(chosen) and chosen[at][0] < candidate[1]:
                continue
            chosen.insert(at, candidate)
        if anchors:
            chosen = _repeated_names(text, chosen, anchors)
        return [Span(field=field, start=s, end=e, label=LABELS[entity], score=round(score, 3))
                for s, e, entity, score in chosen]


class _Cover:
    """Whether a span lies inside one of a set of spans, in log time (a text can hold thousands)."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        spans.sort()
        self._starts = [start for start, _ in spans]
        self._reach: list[int] = []  # the furthest end among the spans up to each one
        furthest = -1
        for _, end in spans:
            furthest = max(furthest, end)
            self._reach.append(furthest)

    def covers(self, start: int, end: int) -> bool:
        at = bisect.bisect_right(self._starts, start) - 1
        return at >= 0 and self._reach[at] >= end


class _ContextIndex:
    """Where digit context words occur in a text, found once per scan with fast substring search."""

    def __init__(self, text: str) -> None:
        low = text.lower()
        positions: list[int] = []
        for word in _DIGIT_CONTEXT_WORDS:
            at = low.find(word)
            while at != -1:
                positions.append(at)
                at = low.find(word, at + 1)
        self._positions = sorted(positions)

    def near(self, start: int, end: int) -> bool:
        at = bisect.bisect_left(self._positions, start)
        return at < len(self._positions) and self._positions[at] < end


def _hex_token(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and text[start - 1] in _HEX_COLON:
        start -= 1
    while end < len(text) and text[end] in _HEX_COLON:
        end += 1
    return start, end


def _window(text: str, start: int, end: int, entities: Iterable[str], *, left: int, right: int) -> _Window:
    """[start, end) widened by context and moved out to delimiters, so no token is cut in two."""
    s = max(0, start - left)
    e = min(len(text), end + right)
    floor = max(0, s - _SNAP)
    while s > floor and text[s - 1] not in _DELIMS:
        s -= 1
    ceiling = min(len(text), e + _SNAP)
    while e < ceiling and text[e] not in _DELIMS:
        e += 1
    clean_start = s == 0 or text[s - 1] in _DELIMS
    clean_end = e == len(text) or text[e] in _DELIMS
    return _Window(s, e, set(entities), clean_start, clean_end)


def _ner_window(text: str, start: int, end: int) -> _Window:
    """The phrase around a name-like word: its sentence, line or JSON string, at most _NER_SIDE each side.

    NER costs about 0.15 ms per token here, and JSON punctuation is tokens too; the phrase alone
    is also what the model reads best ("Priya Raman" is a person, '"name": "Priya Raman",' less so).
    """
    lo = max(0, start - _NER_SIDE)
    hi = min(len(text), end + _NER_SIDE)
    for boundary in _PHRASE_END.finditer(text, lo, start):
        lo = boundary.end()
    stop = _PHRASE_END.search(text, end, hi)
    if stop is not None:
        hi = stop.start()
    # never cut a word: move a cut edge inwards to the next delimiter
    while 0 < lo < start and not _boundary(text, lo - 1):
        lo += 1
    while end < hi < len(text) and not _boundary(text, hi):
        hi -= 1
    return _Window(lo, hi, set())


def _boundary(text: str, at: int) -> bool:
    return text[at] in _DELIMS or text[at].isspace() or _PHRASE_END.match(text, at) is not None


def _merge(windows: list[_Window], cap: int) -> list[_Window]:
    merged: list[_Window] = []
    for window in sorted(windows, key=lambda w: w.start):
        last = merged[-1] if merged else None
        if last is not None and window.start <= last.end and max(last.end, window.end) - last.start <= cap:
            if window.end > last.end:
                last.end, last.clean_end = window.end, window.clean_end
            last.entities |= window.entities
        else:
            merged.append(_Window(window.start, window.end, set(window.entities), window.clean_start,
                                  window.clean_end))
    return merged


def _address_alone(item: Found, text: str) -> Found:
    """An e-mail finding without the URL or assignment before it: the address pattern admits "=", "?", "/",
    "&" and ":" in the part before "@", as RFC 5322 does, so `/unsubscribe?to=ann@example.com` matched from
    "unsubscribe"; no address people use holds them."""
    if item.entity != "EMAIL_ADDRESS":
        return item
    at = text.find("@", item.start, item.end)
    cut = max(text.rfind(ch, item.start, at) for ch in "=?/&:") if at != -1 else -1
    return item if cut == -1 else Found(item.entity, cut + 1, item.end, item.score, item.recognizer)


def _clean_edges(item: Found, window: _Window) -> bool:
    """False for a finding that touches a window edge cut through a token (it may be half a value)."""
    if item.start == 0 and not window.clean_start:
        return False
    return not (window.start + item.end == window.end and not window.clean_end)


def _shift(item: Found, offset: int) -> Found:
    return Found(item.entity, item.start + offset, item.end + offset, item.score, item.recognizer)


def _stopword_only(candidate: str) -> bool:
    words = candidate.replace(".", " ").split()
    return all(word.lower() in NOT_NAME_WORDS or len(word) == 1 for word in words)


def _trim(text: str, start: int, end: int, entity: str) -> tuple[int, int]:
    while start < end and text[start] in _TRIM and not (text[start] == "(" and ")" in text[start:end]):
        start += 1
    while end > start and text[end - 1] in _TRIM and not (text[end - 1] == ")" and "(" in text[start:end]):
        end -= 1
    if entity in _NER_ENTITIES:
        newline = text.find("\n", start, end)
        if newline != -1:
            end = newline
        if text.endswith(_POSSESSIVE, start, end):
            end -= 2
        while end > start and text[end - 1] in _TRIM:
            end -= 1
    return start, end


def _anchors(recognizer: str, name: str, engine: PresidioEngine) -> bool:
    """Whether a person is sure enough that its name words are followed elsewhere in the text:
    a cue in the words around it found it (honorific, label, own name, relation, speech), or the
    model or the first-name cue did and the name has a middle initial ("Faina D. Yefremova"), or is
    two words of which the name lists know the first as a first name or the second as a surname
    ("Magnus Poulsen"). A model guess they do not back ("Asia Star") is not followed."""
    if recognizer.startswith(_CUE_RECOGNIZER) and recognizer != _FIRST_NAME_CUE:
        return True
    if recognizer not in (NER_RECOGNIZER, _FIRST_NAME_CUE):
        return False
    if _MIDDLE_INITIAL.search(name) is not None:
        return True
    words = name.lower().split()
    return not any(w in NOT_NAME_WORDS or w in AMBIGUOUS_FIRST_NAMES for w in words) and engine.listed_full_name(words)


# a capitalised word, an initial (with or without its dot), a capitalised word
_MIDDLE_INITIAL = regex.compile(r"^\p{Lu}\p{Ll}+[ \t]+\p{Lu}\.?[ \t]+\p{Lu}\p{Ll}+$")


def _heads_contact(text: str, end: int) -> bool:
    """Whether the line ending at `end` opens a contact card: it starts the text or follows a blank
    line, and one of the four lines with text after it is an address or phone line (a job title and a
    "Personal Info:" heading may come first)."""
    line_start = text.rfind("\n", 0, end) + 1
    if text[:line_start].strip() and not text[:line_start].rstrip(" \t").endswith("\n\n"):
        return False
    at = text.find("\n", end)
    if at == -1:
        return False
    below = [line for line in text[at + 1:at + 1 + _CARD_REACH].split("\n") if line.strip()][:4]
    return any(_CONTACT_LINE.match(line) for line in below)


_CARD_NETWORK_DIGITS = frozenset("23456")  # Mastercard 2/5, Amex, JCB and Diners 3, Visa 4, Discover and others 6
# a card word, also as part of a field name ("card_number", "cardNumber", "credit_card", "CC_NUM")
_CARD_WORD = regex.compile(
    r"(?<![A-Za-z])(?:[Cc]ards?|CARDS?|[Cc][Cc]|[Vv]isa|VISA|[Mm]astercard|[Aa]mex|AMEX|JCB|[Mm]aestro|[Rr]u[Pp]ay|PAN)"
    r"(?![a-z])"
)
_CARD_REACH = 600  # characters below a card's first line in which its address or phone line is looked for


def _whole_line(text: str, start: int, end: int) -> bool:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start:len(text) if line_end == -1 else line_end]
    return line.strip(_LINE_DECOR) == text[start:end]


def _plausible(text: str, start: int, end: int, entity: str, *, cased: bool = True) -> bool:
    value = text[start:end]
    if entity not in _NER_ENTITIES and (text[start - 1:start].isalnum() or text[end:end + 1].isalnum()):
        return False  # part of a longer token: "CT0428070" inside the trial id "NCT04280705"
    if entity == "IP_ADDRESS":
        if ":" not in value and "." not in value:
            return False  # what is left of "::2" (a slice, xs[::2]) or "::1" once the colons are not part of it
        if ":" in value:
            # "0::2", "1::2" (a slice step in code: boxes[:, 0::2]) are no addresses anyone writes out; "::1" and
            # "fe80::1" are, and so is anything with three groups
            groups = [group for group in value.split(":") if group]
            if "::" in value and 0 < len(groups) <= 2 and all(len(group) <= 2 for group in groups):
                return False
        # "version 1.2.3.4", "v1.2.3.4", "pkg@1.2.3.4", "==1.2.3.4" and 1.2.3.4.5 are versions
        before = text[max(0, start - 12):start]
        if _IP_VERSION_CONTEXT.search(before) or (text[end:end + 1] == "." and text[end + 1:end + 2].isdigit()):
            return False
        return not (start >= 2 and text[start - 1] == "." and text[start - 2].isdigit())
    if entity == "CREDIT_CARD" and value[:1] not in _CARD_NETWORK_DIGITS:
        # the major networks' numbers start 2-6; an older JCB (1800...) or a Maestro (0604...) number is taken only
        # where the text says it is a card: a 16-digit seed or id in code is neither
        return _CARD_WORD.search(text, max(0, start - 60), start) is not None
    if entity == "PHONE_NUMBER":
        # a decimal ("0.657268"), a table row ("709961  1416") or a timestamp is not a phone number
        return not (_DECIMAL.fullmatch(value) or "  " in value or "\n" in value or _DATE.search(value))
    if entity in _NER_ENTITIES:
        if (cased and not value[:1].isupper()) or _CODEY.search(value):
            return False
        words = value.replace(".", " ").split()
        if any(word.lower() in NOT_NAME_WORDS for word in words) or len(words) > 4:
            return False
        return not (len(words) == 1 and words[0].lower() in AMBIGUOUS_FIRST_NAMES)
    return True


# a capitalised word right before or after a name word: it is part of a longer phrase there
_NEXT_TITLE = regex.compile(r"[ \t]+\p{Lu}")
_PREV_TITLE = regex.compile(r"\p{Lu}[\p{L}.'’-]*[ \t]+$")


def _repeated_names(
    text: str, chosen: list[tuple[int, int, str, float]], anchors: set[tuple[int, int]],
) -> list[tuple[int, int, str, float]]:
    """`chosen` plus every other whole-word use of the name words of its `anchors` (sure persons).

    "My name is Antti Poutiainen but everyone calls me Antti": masking the full name and leaving the
    second "Antti" would still say who it is. Words that are also ordinary words ("Will", "Grant")
    or product words are not followed, nor are uses inside a longer capitalised phrase, and only
    cued names are followed at all: spreading a guess would turn one mistake in a table ("Asia
    Star") into a mask on every "Asia".
    """
    words: dict[str, float] = {}
    for start, end, entity, score in chosen:
        if entity != "PERSON" or (start, end) not in anchors:
            continue
        for part in regex.split(r"[ \t]+", text[start:end]):
            word = part.strip(".,")
            key = word.lower()
            if len(word) > 2 and key not in NOT_NAME_WORDS and key not in AMBIGUOUS_FIRST_NAMES:
                words[word] = max(score, words.get(word, 0.0))
    if not words:
        return chosen
    alternatives = "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))
    pattern = regex.compile(r"(?<![\w@./\\#$-])(?:" + alternatives + r")(?![\w@/\\])")
    added = list(chosen)
    for match in pattern.finditer(text):
        start, end = match.span()
        if _NEXT_TITLE.match(text, end) or _PREV_TITLE.search(text, max(0, start - 40), start):
            continue
        at = bisect.bisect_left(chosen, (start,))
        if at > 0 and chosen[at - 1][1] > start:
            continue
        if at < len(chosen) and chosen[at][0] < end:
            continue
        added.append((start, end, "PERSON", words[match.group()]))
    return sorted(added) if len(added) != len(chosen) else chosen
