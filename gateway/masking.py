"""Masking spans out of strings and JSON values without breaking them.

A masked string gets ``[MASKED:<label>]`` where each span was. When the string is itself a JSON
document (a tool returning JSON as text), the replacement respects its syntax: a span inside a
string literal is replaced by safe characters (and never leaves half an escape sequence behind),
a span over a number becomes a quoted string, so the result still parses.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policy.subject import KEY_SUFFIX, plain_key
from policy.verdict import Span

__all__ = [
    "mask_json_text",
    "mask_string",
    "mask_value_at",
    "masked_in_place",
    "merge_spans",
    "redacted_path",
    "renamed_in_place",
    "token",
]

# A key is plain (any letters, digits, "_" or "-", as `policy.subject` writes it, non-ASCII included) or a
# quoted JSON string; an index is a number in brackets.
_PATH_PART = re.compile(r'\.([^.\[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def token(label: str) -> str:
    return f"[MASKED:{label}]"


def merge_spans(spans: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Sorted, non-overlapping spans; overlapping ones merge (keeping the first label)."""
    merged: list[tuple[int, int, str]] = []
    for start, end, label in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            first = merged[-1]
            merged[-1] = (first[0], max(first[1], end), first[2])
        else:
            merged.append((start, end, label))
    return merged


def mask_string(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """Replace each span with a mask token; JSON text stays valid JSON."""
    ranges = [(max(0, s), min(len(text), e), label) for s, e, label in merge_spans(spans)]
    if not ranges:
        return text
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[", '"'):
        masked = mask_json_text(text, ranges)
        if masked is not None:
            return masked
    return _replace(text, ranges)


def _replace(text: str, ranges: Sequence[tuple[int, int, str]]) -> str:
    out: list[str] = []
    cursor = 0
    for start, end, label in ranges:
        out.append(text[cursor:start])
        out.append(token(label))
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _json_regions(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The string literals (inside the quotes) and number literals of a JSON text."""
    strings: list[tuple[int, int]] = []
    numbers: list[tuple[int, int]] = []
    index = 0
    length = len(text)
    while index < length:
        ch = text[index]
        if ch == '"':
            start = index + 1
            index += 1
            while index < length and text[index] != '"':
                index += 2 if text[index] == "\\" else 1
            strings.append((start, min(index, length)))
            index += 1
        elif ch == "-" or ch.isdigit():
            start = index
            while index < length and text[index] in "0123456789+-.eE":
                index += 1
            numbers.append((start, index))
        else:
            index += 1
    return strings, numbers


def mask_json_text(text: str, ranges: Sequence[tuple[int, int, str]]) -> str | None:
    """Mask spans of a JSON document's text so that it still parses; None if it was not JSON."""
    try:
        json.loads(text)
    except ValueError:
        return None
    strings, numbers = _json_regions(text)
    adjusted: list[tuple[int, int, str, bool]] = []
    for start, end, label in ranges:
        # Secret content in JSON lives in string and number literals: mask each literal the span
        # touches, within the literal, and leave the quotes, commas and braces alone.
        touched = False
        for region_start, region_end in strings:
            if region_end <= start or region_start >= end:
                continue
            touched = True
            sub_start, sub_end = max(start, region_start), min(end, region_end)
            backslashes = 0
            while sub_start - backslashes - 1 >= region_start and text[sub_start - backslashes - 1] == "\\":
                backslashes += 1
            sub_start -= backslashes % 2  # never keep the backslash of a cut escape sequence
            if sub_end < region_end and text[sub_end - 1] == "\\":
                sub_end += 1
            adjusted.append((sub_start, sub_end, label, False))
        for number_start, number_end in numbers:
            if number_end <= start or number_start >= end:
                continue
            touched = True
            adjusted.append((number_start, number_end, label, True))
        if not touched:
            adjusted.append((start, end, label, True))
    out: list[str] = []
    cursor = 0
    for first, end, label, quote in sorted(adjusted):
        start = max(first, cursor)
        if end <= start:
            continue
        out.append(text[cursor:start])
        out.append(json.dumps(token(label)) if quote else token(label))
        cursor = end
    out.append(text[cursor:])
    masked = "".join(out)
    try:
        json.loads(masked)
    except ValueError:
        return None
    return masked


def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(path):
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(json.loads(quoted))
    return parts


def redacted_path(path: str) -> str:
    """A field path with every object key in it that is not a plain name written `*`: such a key may be the
    secret or the address itself (``structured.accounts.ann@example.com:key``), and a path is kept where a
    value must not be (the audit log's evidence)."""
    key = path.endswith(KEY_SUFFIX)
    body = path[: -len(KEY_SUFFIX)] if key else path
    cut = min((i for i in (body.find("."), body.find("[")) if i >= 0), default=len(body))
    out = [body[:cut]]
    for part in _parse_path(body[cut:]):
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if plain_key(part) else ".*")
    return "".join(out) + (KEY_SUFFIX if key else "")


def mask_value_at(root: Any, path: str, spans: Sequence[tuple[int, int, str]], *, keep_type: bool = True) -> Any:
    """A deep copy of `root` with the string at `path` masked (see `masked_in_place`)."""
    return masked_in_place(copy.deepcopy(root), {path: list(spans)}, keep_type=keep_type)


def masked_in_place(root: Any, grouped: dict[str, list[tuple[int, int, str]]], *, keep_type: bool = True) -> Any:
    """`root`, which the caller owns, with the spans of every path in `grouped` masked in place; `root` is
    returned (a new object only where a path is "" and `root` is that string).

    A number at a path becomes 0 (`keep_type`: a result's outputSchema may require a number) or the mask
    token (a call's argument: a server must not act on a plausible but wrong value). A key path (ending in
    `KEY_SUFFIX`) renames the key in its place; keys masked alike stay apart (``[MASKED:email]``,
    ``[MASKED:email] 2``), so no value is merged or lost. Values go first, then keys from the deepest up
    (renaming a key changes the path of everything under it), each object rebuilt once."""
    renames: dict[tuple[str | int, ...], dict[str, str]] = {}
    for path, spans in grouped.items():
        if path.endswith(KEY_SUFFIX):
            parts = _parse_path(path[: -len(KEY_SUFFIX)])
            if parts and isinstance(parts[-1], str):
                renames.setdefault(tuple(parts[:-1]), {})[parts[-1]] = mask_string(parts[-1], spans)
            continue
        if path == "":
            if isinstance(root, str):
                root = mask_string(root, spans)
            continue
        parts = _parse_path(path)
        holder = _walk(root, parts[:-1])
        if holder is None or not parts:
            continue
        last = parts[-1]
        try:
            current = holder[last]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(current, bool) or current is None:
            continue
        if isinstance(current, int | float):
            # In a result a number stays a number (clients validate outputSchema): zero. The message's _meta
            # names what was masked; the text copy of a result shows the token.
            holder[last] = type(current)(0) if keep_type else mask_string(str(current), spans)
        elif isinstance(current, str):
            holder[last] = mask_string(current, spans)
    renamed_in_place(root, renames)
    return root


def renamed_in_place(root: Any, renames: Mapping[tuple[str | int, ...], Mapping[str, str]]) -> None:
    """Rename, in `root`, the keys of the object at each path to their masked names, from the deepest object
    up (renaming a key changes the path of everything under it), each object rebuilt once."""
    for where in sorted(renames, key=len, reverse=True):
        holder = _walk(root, where)
        if isinstance(holder, dict):
            _rename_keys(holder, renames[where])


def _walk(root: Any, parts: Sequence[str | int]) -> Any:
    node = root
    for part in parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _rename_keys(holder: dict[Any, Any], masked: Mapping[str, str]) -> None:
    """Rename the keys of `holder` named in `masked`, in place and in their places, apart from each other and
    from the keys that stay."""
    taken = {key for key in holder if key not in masked}
    items = []
    for key, value in holder.items():
        name = key
        if key in masked:
            name, number = masked[key], 1
            while name in taken:
                number += 1
                name = f"{masked[key]} {number}"
            taken.add(name)
        items.append((name, value))
    holder.clear()
    holder.update(items)


def spans_by_field(spans: Iterable[Span], prefix: str) -> dict[str, list[tuple[int, int, str]]]:
    """Group spans whose field starts with `prefix`, keyed by the rest of the path."""
    grouped: dict[str, list[tuple[int, int, str]]] = {}
    for span in spans:
        if span.field == prefix or span.field.startswith(prefix + ".") or span.field.startswith(prefix + "["):
            grouped.setdefault(span.field[len(prefix) :], []).append((span.start, span.end, span.label))
    return grouped
