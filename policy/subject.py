"""What the engine judges: a `Subject`, independent of MCP.

The gateway turns MCP messages into subjects; the engine never sees MCP itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = ["KEY_SUFFIX", "Subject", "SubjectKind", "canonical_json", "iter_strings", "plain_key"]

# The field path of an object's key (not its value) ends so: ``structured.users.ann@example.com:key``.
# A plain key never holds ":" (others are quoted: ``["a:b"]``), so the ending cannot be part of a key.
KEY_SUFFIX = ":key"
# Keys made of words and short numbers (``user_id``, ``createdAt``, ``x-api-version``, ``$schema``,
# ``@type``, ``application/json``, ``address2``, ``2024``) name things and are not scanned; any other key (an e-mail,
# a name with a space, a token, a hex digest) is.
_PLAIN_KEY = re.compile(r"[$@]?[A-Za-z]+(?:[_\-./]?[A-Za-z]+|[_\-./][0-9]{1,4})*[0-9]{0,2}|[0-9]{1,9}")


class SubjectKind(StrEnum):
    """Where in the traffic a subject comes from."""

    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    TOOL_DESCRIPTION = "tool_description"
    PROMPT = "prompt"
    RESOURCE = "resource"
    SAMPLING = "sampling"


class Subject(BaseModel):
    """One thing to judge.

    `text` is what a model would read (a tool result's text, a description, a prompt);
    `arguments` are a tool call's arguments; `structured` is a result's structured content.
    Evidence spans point into these by field path: ``text``, ``arguments.<path>``,
    ``structured.<path>`` (a path ending in `KEY_SUFFIX` points at an object's key).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SubjectKind
    server: str = ""
    tool: str = ""
    method: str = ""
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    text: str = ""
    structured: JsonValue = None
    metadata: dict[str, str] = Field(default_factory=dict)

    def canonical(self) -> str:
        """A canonical JSON rendering: equal subjects give equal strings."""
        return canonical_json(self.model_dump(mode="json"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def strings(self) -> Iterator[tuple[str, str]]:
        """Every string a detector should scan, with its field path.

        A tool result carries its call's arguments as context for rules; they were checked (and
        masked) as the call went out, and nothing in the result could mask them, so detectors skip them."""
        if self.text:
            yield "text", self.text
        if self.kind is not SubjectKind.TOOL_RESULT:
            yield from iter_strings(self.arguments, "arguments")
        if self.structured is not None:
            yield from iter_strings(self.structured, "structured")

    def reading(self) -> str:
        """The subject as one text, for classifiers and the judge."""
        parts: list[str] = []
        if self.kind is SubjectKind.TOOL_CALL:
            parts.append(f"call {self.tool or '?'}" + (f" on {self.server}" if self.server else ""))
            # One line per argument value, so prose in an argument reads as prose, not as JSON.
            parts.extend(
                f"{path.lstrip('.')}: {value}"
                for path, value in iter_strings(self.arguments, "", keys=False)
                if value.strip()
            )
        if self.text:
            parts.append(self.text)
        elif self.structured is not None and self.kind is not SubjectKind.TOOL_CALL:
            parts.append(canonical_json(self.structured))
        return "\n".join(parts)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def iter_strings(value: Any, path: str, *, keys: bool = True) -> Iterator[tuple[str, str]]:
    """Walk a JSON value and yield (path, string) for every string and number in it, and (with `keys`)
    for every object key that is not a plain name, at its value's path plus `KEY_SUFFIX`: servers key
    objects by e-mail address, user name or token as often as they list them.

    Numbers are included because a card number or an account id is often sent as one.
    """
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield path, str(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            step = f"{path}.{_path_key(name)}"
            if keys and not plain_key(name):
                yield step + KEY_SUFFIX, name
            yield from iter_strings(item, step, keys=keys)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{path}[{index}]", keys=keys)


@functools.lru_cache(maxsize=4096)
def plain_key(key: str) -> bool:
    """Whether an object key is a plain name, not worth scanning (see `_PLAIN_KEY`). Remembered: every
    object of every message asks it of its keys, and servers send the same few keys again and again."""
    return _PLAIN_KEY.fullmatch(key) is not None


def _path_key(key: str) -> str:
    if key and all(ch.isalnum() or ch in "_-" for ch in key):
        return key
    return json.dumps(key, ensure_ascii=False).join("[]")
