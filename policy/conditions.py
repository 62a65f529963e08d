"""The rule language: declarative conditions over a subject. Data, never code to eval.

A condition is a predicate or a combination of conditions::

    {"path": "arguments.amount", "op": "gt", "value": 1000}
    {"all": [cond, ...]}   {"any": [cond, ...]}   {"not": cond}

Paths start at a subject field (``kind``, ``server``, ``tool``, ``method``, ``text``,
``arguments``, ``structured``, ``metadata``) and go down with ``.name``, ``[3]``, ``*`` (any one
key or item) and ``**`` (any depth). A path may select several values; a predicate holds when it
holds for any of them. String comparisons ignore case unless ``case_sensitive`` is set.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from .errors import RuleError
from .safe_regex import casefolded, compile_safe, required_literals, search_all
from .subject import Subject, canonical_json
from .verdict import Span

__all__ = [
    "AllOf", "AnyOf", "Condition", "NotOf", "Operator", "Predicate", "Rule", "evaluate", "prerequisite", "resolve_path",
]

Operator = Literal[
    "equals",
    "glob",
    "regex",
    "contains",
    "starts_with",
    "ends_with",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "length_gt",
]

ROOT_FIELDS = ("kind", "server", "tool", "method", "text", "arguments", "structured", "metadata")
_NUMERIC_OPS = {"gt", "gte", "lt", "lte", "length_gt"}
_SEGMENT = re.compile(r"\*\*|\*|\[\d+\]|\[\*\]|[^.\[\]]+")


class Predicate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    op: Operator
    value: JsonValue = None
    case_sensitive: bool = False

    @field_validator("path")
    @classmethod
    def _known_root(cls, path: str) -> str:
        root = path.split(".", 1)[0].split("[", 1)[0]
        if root not in ROOT_FIELDS and root != "**":
            raise ValueError(f"path {path!r} must start with one of {', '.join(ROOT_FIELDS)} or '**'")
        if "".join(_SEGMENT.findall(path.replace(".", ""))) != path.replace(".", ""):
            raise ValueError(f"path {path!r} has an invalid segment; use names, [n], * or **")
        return path

    @model_validator(mode="after")
    def _value_fits_op(self) -> Predicate:
        if self.op in _NUMERIC_OPS and _as_number(self.value) is None:
            raise ValueError(f"operator {self.op!r} needs a number as value, got {self.value!r}")
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError(f"operator 'in' needs a list as value, got {self.value!r}")
        if self.op in {"glob", "regex", "contains", "starts_with", "ends_with"} and not isinstance(self.value, str):
            raise ValueError(f"operator {self.op!r} needs a string as value, got {self.value!r}")
        if self.op == "regex":
            try:
                compile_safe(str(self.value), not self.case_sensitive)
            except RuleError as exc:
                raise ValueError(str(exc)) from exc
        return self


class AllOf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    all: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    any: list[Condition] = Field(min_length=1)


class NotOf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    not_: Condition = Field(alias="not")


Condition = Annotated[Predicate | AllOf | AnyOf | NotOf, Field(union_mode="left_to_right")]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()


class Rule(BaseModel):
    """A deterministic rule: when the condition holds, the effect applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    when: Condition
    effect: Literal["violate", "allow", "escalate"] = "violate"


def evaluate(condition: Condition, subject: Subject, view: dict[str, Any] | None = None) -> tuple[bool, list[Span]]:
    """Whether `condition` holds for `subject`, with the spans that made it hold. A caller checking
    several conditions against one subject may pass its `subject_view` once."""
    return _evaluate(condition, subject_view(subject) if view is None else view)


def prerequisite(condition: Condition) -> tuple[str, frozenset[str]] | None:
    """A top-level field and words one of which its case-folded text must contain for `condition` to
    hold, or None when no such cheap test is known. A rule whose test fails need not be evaluated: the
    test is the one `_regex_holds` would make first, taken once per text for a policy's rules."""
    if isinstance(condition, AllOf):
        for part in condition.all:
            found = prerequisite(part)
            if found is not None:
                return found
        return None
    if isinstance(condition, Predicate) and condition.op == "regex" and condition.path in ROOT_FIELDS:
        words = required_literals(str(condition.value))
        return None if words is None else (condition.path, words)
    return None


def subject_view(subject: Subject) -> dict[str, Any]:
    """The fields a condition's path can name."""
    return {
        "kind": subject.kind.value,
        "server": subject.server,
        "tool": subject.tool,
        "method": subject.method,
        "text": subject.text,
        "arguments": subject.arguments,
        "structured": subject.structured,
        "metadata": subject.metadata,
    }


def _evaluate(condition: Condition, view: dict[str, Any]) -> tuple[bool, list[Span]]:
    if isinstance(condition, AllOf):
        spans: list[Span] = []
        for part in condition.all:
            held, part_spans = _evaluate(part, view)
            if not held:
                return False, []
            spans.extend(part_spans)
        return True, spans
    if isinstance(condition, AnyOf):
        for part in condition.any:
            held, part_spans = _evaluate(part, view)
            if held:
                return True, part_spans
        return False, []
    if isinstance(condition, NotOf):
        held, _ = _evaluate(condition.not_, view)
        return not held, []
    return _predicate(condition, view)


def resolve_path(view: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """Every (concrete path, value) that `path` selects in a subject view."""
    yield from _walk(view, _segments(path), "")


@functools.lru_cache(maxsize=1024)
def _segments(path: str) -> tuple[str, ...]:
    return tuple(_SEGMENT.findall(path))


def _walk(value: Any, segments: tuple[str, ...], here: str) -> Iterator[tuple[str, Any]]:
    if not segments:
        yield here, value
        return
    head, rest = segments[0], segments[1:]
    if head == "**":
        yield from _walk(value, rest, here)
        for child_path, child in _children(value, here):
            yield from _walk(child, segments, child_path)
    elif head in ("*", "[*]"):
        for child_path, child in _children(value, here):
            yield from _walk(child, rest, child_path)
    elif head.startswith("["):
        index = int(head[1:-1])
        if isinstance(value, list) and index < len(value):
            yield from _walk(value[index], rest, f"{here}[{index}]")
    elif isinstance(value, dict) and head in value:
        yield from _walk(value[head], rest, f"{here}.{head}" if here else head)


def _children(value: Any, here: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (f"{here}.{key}" if here else str(key)), child
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield f"{here}[{index}]", child


def _nodes(value: Any, here: str) -> Iterator[tuple[str, Any]]:
    """`value` and everything under it, in the order and with the paths the general walk of "**" gives."""
    yield here, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, f"{here}.{key}" if here else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _nodes(child, f"{here}[{index}]")


def _predicate(pred: Predicate, view: dict[str, Any]) -> tuple[bool, list[Span]]:
    if pred.path in view:
        # a top-level field ("text", "tool", "kind"): no path to walk
        value = view[pred.path]
        if pred.op == "exists":
            return True, []
        return _holds(pred, value, pred.path)
    spans: list[Span] = []
    found = False
    segments = _segments(pred.path)
    if len(segments) == 2 and segments[1] == "**" and segments[0] in view and pred.op != "exists":
        # "arguments.**" and the like (most rules on arguments): the same values as the general walk, faster
        for path, value in _nodes(view[segments[0]], segments[0]):
            held, value_spans = _holds(pred, value, path)
            if held:
                found = True
                spans.extend(value_spans)
        return found, spans
    for path, value in resolve_path(view, pred.path):
        if pred.op == "exists":
            return True, []
        if pred.path.startswith("**") and isinstance(value, dict | list):
            continue  # `**` means the leaves; containers are walked into, not matched whole
        held, value_spans = _holds(pred, value, path)
        if held:
            found = True
            spans.extend(value_spans)
    return found, spans


def _holds(pred: Predicate, value: Any, path: str) -> tuple[bool, list[Span]]:
    op = pred.op
    if op == "regex":  # most rules: first
        return _regex_holds(pred, value if isinstance(value, str) else _as_text(value), str(pred.value), path)
    if op in _NUMERIC_OPS:
        if op == "length_gt":
            size = len(value) if isinstance(value, str | list | dict) else None
            return (size is not None and size > float(pred.value)), []  # type: ignore[arg-type]
        number = _as_number(value)
        limit = _as_number(pred.value)
        if number is None or limit is None:
            return False, []
        held = {"gt": number > limit, "gte": number >= limit, "lt": number < limit, "lte": number <= limit}[op]
        return held, [_whole(path, value, op)] if held else []
    if op == "in":
        options = pred.value if isinstance(pred.value, list) else []
        held = any(_equal(value, option, pred.case_sensitive) for option in options)
        return held, [_whole(path, value, op)] if held else []
    if op == "equals":
        held = _equal(value, pred.value, pred.case_sensitive)
        return held, [_whole(path, value, op)] if held else []
    text = value if isinstance(value, str) else _as_text(value)
    needle = str(pred.value)
    folded, folded_needle = (text, needle) if pred.case_sensitive else (text.casefold(), needle.casefold())
    if op == "contains":
        start = folded.find(folded_needle)
        return (start >= 0), (
            [Span(field=path, start=start, end=start + len(needle), label="contains")] if start >= 0 else []
        )
    if op == "starts_with":
        held = folded.startswith(folded_needle)
        return held, [Span(field=path, start=0, end=len(needle), label=op)] if held else []
    if op == "ends_with":
        held = folded.endswith(folded_needle)
        return held, [Span(field=path, start=len(text) - len(needle), end=len(text), label=op)] if held else []
    if op == "glob":
        held = fnmatch.fnmatchcase(folded, folded_needle)
        return held, [_whole(path, value, op)] if held else []
    # "regex" is taken first above; "exists" is decided where the path is resolved (_predicate)
    raise AssertionError(f"operator {op!r} has no comparison")


def _regex_holds(pred: Predicate, text: str, needle: str, path: str) -> tuple[bool, list[Span]]:
    # no case-folded copy of the text here: the pre-test keeps its own, shared by every rule
    words = required_literals(needle)
    if words is not None:
        haystack = casefolded(text)
        if not any(word in haystack for word in words):
            return False, []
    matches = search_all(compile_safe(needle, not pred.case_sensitive), text)
    return bool(matches), [Span(field=path, start=s, end=e, label="regex") for s, e in matches]


def _whole(path: str, value: Any, label: str) -> Span:
    return Span(field=path, start=0, end=len(_as_text(value)), label=label)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return canonical_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _equal(value: Any, expected: Any, case_sensitive: bool) -> bool:
    if isinstance(value, str) and isinstance(expected, str):
        return value == expected if case_sensitive else value.casefold() == expected.casefold()
    left, right = _as_number(value), _as_number(expected)
    if left is not None and right is not None and not isinstance(value, str | bool):
        return left == right
    return bool(value == expected)


_NUMBER_NOISE = re.compile(r"[\s,_$€£¥]|(?:usd|eur|gbp|dollars?|euros?)$", re.IGNORECASE)


def _as_number(value: Any) -> float | None:
    """A number from a JSON value, accepting "1,000", "$5,000.50" and "1000 USD"."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= 64:
        cleaned = _NUMBER_NOISE.sub("", value.strip())
        try:
            number = float(cleaned)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
