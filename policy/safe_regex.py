"""Regular expressions from untrusted authors (an LLM, a policy file) made safe to run.

Two guards against catastrophic backtracking: patterns with the classic nested-quantifier
shapes are refused when a rule is built, and every match runs with a time limit on a bounded
slice of input (50 ms, and 500 ms for a second try: the limit is wall time, which a busy machine
eats). A match that ran out of both raises `RegexTimeout`; the engine then applies the policy's
``on_error`` rather than treating the text as clean.
"""

from __future__ import annotations

import re._constants as sre_constants  # type: ignore[import-not-found]  # the parser `re` itself uses
import re._parser as sre_parser  # type: ignore[import-not-found]
from functools import lru_cache
from typing import Any

import regex

from .errors import RuleError

__all__ = [
    "MAX_PATTERN_CHARS", "MAX_SCAN_CHARS", "RegexTimeout", "casefolded", "compile_safe", "required_literals",
    "search_all",
]

MAX_PATTERN_CHARS = 512
MAX_SCAN_CHARS = 1_048_576
MATCH_TIMEOUT_S = 0.05
# The limit is wall time, and a thread waiting for the interpreter lock (models loading, a busy machine)
# loses it too: a match that ran out once is tried again with this much, before the policy's on_error.
RETRY_TIMEOUT_S = 0.5

# A group that itself ends in a quantifier, quantified again: (a+)+, (\w*)*, (x{2,})+ ...
_NESTED_QUANTIFIER = regex.compile(r"\((?:[^()\\]|\\.)*[+*}]\)(?:[+*]|\{\d*,\d*\})")
# A quantified group of alternatives where one alternative is a prefix of another: (a|ab)+ ...
_QUANTIFIED_ALTERNATION = regex.compile(r"\((?:\?:)?([^()|\\]+)\|([^()|\\]+)\)[+*]")


class RegexTimeout(RuleError):
    """A match exceeded its time limit."""


@lru_cache(maxsize=1024)
def compile_safe(pattern: str, ignore_case: bool = True) -> Any:
    """Compile `pattern` or raise `RuleError` saying why it is unsafe or invalid."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RuleError(
            f"regex is {len(pattern)} characters long (limit {MAX_PATTERN_CHARS}); split it into several rules"
        )
    if _NESTED_QUANTIFIER.search(pattern):
        raise RuleError(
            f"regex {pattern!r} nests quantifiers (like (a+)+), which can take exponential time; "
            "rewrite it without a quantified group that ends in a quantifier"
        )
    alternation = _QUANTIFIED_ALTERNATION.search(pattern)
    if alternation and _overlapping(alternation.group(1), alternation.group(2)):
        raise RuleError(
            f"regex {pattern!r} repeats overlapping alternatives, which can take exponential time; "
            "make the alternatives mutually exclusive"
        )
    flags = regex.IGNORECASE if ignore_case else 0
    try:
        return regex.compile(pattern, flags | regex.VERSION0)
    except regex.error as exc:
        raise RuleError(f"regex {pattern!r} does not compile: {exc}") from exc


def _overlapping(first: str, second: str) -> bool:
    return first.startswith(second) or second.startswith(first)


def search_all(compiled: Any, text: str, limit: int = 32) -> list[tuple[int, int]]:
    """Spans of up to `limit` matches in the first MAX_SCAN_CHARS of `text`, time-limited."""
    try:
        return _spans(compiled, text, limit, MATCH_TIMEOUT_S)
    except TimeoutError:
        pass
    try:
        return _spans(compiled, text, limit, RETRY_TIMEOUT_S)
    except TimeoutError as exc:
        raise RegexTimeout(f"regex {compiled.pattern!r} took longer than {RETRY_TIMEOUT_S * 1000:.0f} ms") from exc


def _spans(compiled: Any, text: str, limit: int, timeout: float) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for match in compiled.finditer(text[:MAX_SCAN_CHARS], timeout=timeout):
        spans.append(match.span())
        if len(spans) >= limit:
            break
    return spans


# --- a cheap test before the scan -------------------------------------------------------------
# A pattern that must contain one of a few words ("\\b(?:ignore|disregard)\\s+...") cannot match
# a text that contains none of them, and `in` finds that out far faster than the regex engine
# walks 64 KiB (about 35 ns a character for a pattern that starts with an alternation).

_ZERO_WIDTH = {sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT}
_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None)}
_MIN_LITERAL = 3
# what the `regex` module reads otherwise than the standard parser: a POSIX class or a nested set, and a
# brace that is no counted repeat ({e<=1}: a fuzzy match; a literal brace here too, to be safe)
_REGEX_ONLY = regex.compile(r"\[\[|\[:|\{(?!\d+(?:,\d*)?\}|,\d+\})")


@lru_cache(maxsize=1024)
def required_literals(pattern: str) -> frozenset[str] | None:
    """Lower-case ASCII words one of which any match of `pattern` must contain, or None if unknown.

    Taken from the first element of the pattern's top-level sequence that must match and yields
    words: a literal run of at least three characters, alternatives that each must contain one, a
    group, or a repeat of at least once. Elements that yield none (a class, an optional part, a
    lookaround) are passed over, so "(?:^|[.!])\\s*new\\s+instructions" gives {"new"}. A pattern with
    no such element, or syntax only the `regex` module knows, gives None, and the pattern is always
    run: the standard parser must not read a POSIX class ("[[:alpha:]]") or a fuzzy match
    ("(?:password){e<=1}") as literal characters a match would need."""
    if _REGEX_ONLY.search(pattern):
        return None
    try:
        parsed = sre_parser.parse(pattern)
    except Exception:  # any syntax the standard parser does not know means "no hint"
        return None
    return _required(list(parsed))


def _required(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    """The first required element of `items` that yields words (see `required_literals`)."""
    index = 0
    while index < len(items):
        op, value = items[index]
        found: frozenset[str] | None = None
        if op is sre_constants.LITERAL:
            chars = []
            while index < len(items) and items[index][0] is sre_constants.LITERAL:
                chars.append(chr(items[index][1]))
                index += 1
            word = "".join(chars)
            if len(word) >= _MIN_LITERAL and word.isascii():
                return frozenset({word.casefold()})
            continue
        if op is sre_constants.SUBPATTERN:
            found = _required(list(value[-1]))
        elif op is sre_constants.BRANCH:
            words: set[str] = set()
            for alternative in value[1]:
                each = _required(list(alternative))
                if each is None:
                    words = set()
                    break
                words |= each
            found = frozenset(words) or None
        elif op in _REPEATS and value[0] >= 1:
            found = _required(list(value[2]))
        if found:
            return found
        index += 1
    return None


@lru_cache(maxsize=4)
def casefolded(text: str) -> str:
    """The part of `text` a regex scans (`search_all`), case-folded; remembered for the few texts a
    check is looking at (a handful, as messages may be megabytes)."""
    # "İ" (U+0130) folds to "i" and a combining dot, which would split "admİn" from "admin", though the
    # regex matches it case-insensitively; it is the only character that folds apart from its ASCII match
    return text[:MAX_SCAN_CHARS].replace("\u0130", "i").casefold()
