"""JSON with comments and trailing commas, parsed with source spans so that edits stay minimal.

Editors' config files (VS Code's ``mcp.json`` and ``settings.json`` above all) allow ``//`` and
``/* */`` comments and trailing commas. Rewriting such a file through ``json.dumps`` would drop the
user's comments and reflow every line, so this module keeps, for every value, where its text starts
and ends; `gateway.clientconfig` then splices new text into exactly those places.

Semantics follow ``JSON.parse``: for a repeated key the last one wins (the repeats are reported,
because an edit to one copy of a repeated key would be silently ignored by the client).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pydantic import JsonValue

__all__ = ["ArrayNode", "JsoncError", "Member", "Node", "ObjectNode", "ScalarNode", "parse", "skip_trivia"]

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LITERALS: dict[str, JsonValue] = {"true": True, "false": False, "null": None}


class JsoncError(ValueError):
    """The text is not JSON, even allowing comments and trailing commas."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.line = text.count("\n", 0, pos) + 1
        self.column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        self.message = message
        super().__init__(f"line {self.line}, column {self.column}: {message}")


@dataclass(frozen=True)
class ScalarNode:
    start: int
    end: int
    value: JsonValue

    def to_python(self) -> JsonValue:
        return self.value


@dataclass(frozen=True)
class Member:
    key: str
    key_start: int
    value: Node


@dataclass(frozen=True)
class ObjectNode:
    start: int
    end: int
    members: tuple[Member, ...]
    duplicates: tuple[str, ...] = field(default=())

    def get(self, key: str) -> Node | None:
        member = self.member(key)
        return member.value if member is not None else None

    def member(self, key: str) -> Member | None:
        for member in reversed(self.members):  # the last repeat wins, as in JSON.parse
            if member.key == key:
                return member
        return None

    def to_python(self) -> dict[str, JsonValue]:
        return {member.key: member.value.to_python() for member in self.members}


@dataclass(frozen=True)
class ArrayNode:
    start: int
    end: int
    items: tuple[Node, ...]

    def to_python(self) -> list[JsonValue]:
        return [item.to_python() for item in self.items]


Node = ObjectNode | ArrayNode | ScalarNode


def parse(text: str) -> Node:
    """Parse JSONC text into a span tree; raise `JsoncError` with line and column on bad input."""
    parser = _Parser(text)
    node = parser.value()
    parser.skip_trivia()
    if parser.pos != len(text):
        raise JsoncError("unexpected text after the JSON value", text, parser.pos)
    return node


def skip_trivia(text: str, pos: int) -> int:
    """The position of the first character at or after `pos` that is not whitespace or a comment."""
    parser = _Parser(text)
    parser.pos = pos
    parser.skip_trivia()
    return parser.pos


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> JsoncError:
        return JsoncError(message, self.text, self.pos if pos is None else pos)

    def skip_trivia(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            if ch in " \t\r\n":
                self.pos += 1
            elif text.startswith("//", self.pos):
                newline = text.find("\n", self.pos)
                self.pos = n if newline < 0 else newline + 1
            elif text.startswith("/*", self.pos):
                close = text.find("*/", self.pos + 2)
                if close < 0:
                    raise self.fail("unterminated /* comment")
                self.pos = close + 2
            else:
                return

    def value(self) -> Node:
        self.skip_trivia()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of file, expected a value")
        ch = self.text[self.pos]
        if ch == "{":
            return self.object()
        if ch == "[":
            return self.array()
        if ch == '"':
            start = self.pos
            return ScalarNode(start, *self.string_end())
        match = _NUMBER.match(self.text, self.pos)
        if match:
            start, self.pos = self.pos, match.end()
            return ScalarNode(start, self.pos, json.loads(match.group()))
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, self.pos):
                start, self.pos = self.pos, self.pos + len(word)
                return ScalarNode(start, self.pos, literal)
        raise self.fail(f"unexpected character {ch!r}")

    def string_end(self) -> tuple[int, str]:
        try:
            # the json module's own string scanner: the same escapes and errors as json.loads
            decoded, end = json.decoder.scanstring(self.text, self.pos + 1)  # type: ignore[attr-defined]
        except json.JSONDecodeError as exc:
            raise self.fail(exc.msg, exc.pos) from exc
        self.pos = end
        return end, decoded

    def object(self) -> ObjectNode:
        start = self.pos
        self.pos += 1
        members: list[Member] = []
        seen: set[str] = set()
        duplicates: list[str] = []
        while True:
            self.skip_trivia()
            if self.pos < len(self.text) and self.text[self.pos] == "}":
                self.pos += 1
                return ObjectNode(start, self.pos, tuple(members), tuple(duplicates))
            if self.pos >= len(self.text) or self.text[self.pos] != '"':
                raise self.fail("expected a double-quoted key or '}'")
            key_start = self.pos
            _, key = self.string_end()
            self.skip_trivia()
            if self.pos >= len(self.text) or self.text[self.pos] != ":":
                raise self.fail(f"expected ':' after the key {key!r}")
            self.pos += 1
            if key in seen:
                duplicates.append(key)
            seen.add(key)
            members.append(Member(key, key_start, self.value()))
            self.skip_trivia()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
            elif self.pos >= len(self.text) or self.text[self.pos] != "}":
                raise self.fail("expected ',' or '}' (is a comma missing?)")

    def array(self) -> ArrayNode:
        start = self.pos
        self.pos += 1
        items: list[Node] = []
        while True:
            self.skip_trivia()
            if self.pos < len(self.text) and self.text[self.pos] == "]":
                self.pos += 1
                return ArrayNode(start, self.pos, tuple(items))
            items.append(self.value())
            self.skip_trivia()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
            elif self.pos >= len(self.text) or self.text[self.pos] != "]":
                raise self.fail("expected ',' or ']' (is a comma missing?)")
