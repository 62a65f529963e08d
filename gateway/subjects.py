"""MCP messages → engine subjects, and masks back onto MCP messages.

The engine sees one `Subject` per message. Text-bearing parts of a result (content items,
embedded resources, prompt messages, sampling messages) are joined into ``Subject.text``; a
`TextLayout` remembers where each part sits, so spans found in the joined text can be masked in
the original parts. ``structuredContent`` and arguments keep their JSON shape; spans on them
carry JSON paths.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy.subject import Subject, SubjectKind
from policy.verdict import Span

from .masking import mask_string, mask_value_at, spans_by_field

__all__ = ["Part", "TextLayout", "call_subject", "mask_message", "result_subject"]

SEPARATOR = "\n"


@dataclass(frozen=True)
class Part:
    """One text-bearing place in a message: a path of keys/indices from the message root."""

    path: tuple[str | int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class TextLayout:
    parts: tuple[Part, ...]


def _collect(items: list[tuple[tuple[str | int, ...], str]]) -> tuple[str, TextLayout]:
    texts: list[str] = []
    parts: list[Part] = []
    cursor = 0
    for path, text in items:
        if texts:
            cursor += len(SEPARATOR)
        parts.append(Part(path, cursor, cursor + len(text)))
        texts.append(text)
        cursor += len(text)
    return SEPARATOR.join(texts), TextLayout(tuple(parts))


def _content_texts(content: Any, base: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Text in MCP content blocks: text blocks, embedded text resources, and anything else carrying 'text'."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(content, dict):
        content = [content]
        single = True
    else:
        single = False
    if not isinstance(content, list):
        return found
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            continue
        where = base if single else (*base, index)
        if isinstance(block.get("text"), str):
            found.append(((*where, "text"), block["text"]))
        resource = block.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("text"), str):
            found.append(((*where, "resource", "text"), resource["text"]))
    return found


def call_subject(kind: SubjectKind, server: str, name: str, method: str, arguments: Any) -> Subject:
    args = arguments if isinstance(arguments, dict) else {}
    return Subject(kind=kind, server=server, tool=name, method=method, arguments=args)


def result_subject(
    method: str, server: str, params: Mapping[str, Any] | None, result: Mapping[str, Any]
) -> tuple[Subject, TextLayout] | None:
    """The subject a response carries, or None when it carries nothing to judge."""
    params = params or {}
    if method in ("tools/call", "tasks/result"):
        items = _content_texts(result.get("content"), ("content",))
        text, layout = _collect(items)
        structured = result.get("structuredContent")
        arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else {}
        return Subject(
            kind=SubjectKind.TOOL_RESULT,
            server=server,
            tool=str(params.get("name", "")),
            method=method,
            arguments=arguments or {},
            text=text,
            structured=structured,
        ), layout
    if method == "resources/read":
        items = []
        for index, content in enumerate(result.get("contents") or []):
            if isinstance(content, dict) and isinstance(content.get("text"), str):
                items.append((("contents", index, "text"), content["text"]))
        text, layout = _collect(items)
        uri = str(params.get("uri", ""))
        return Subject(
            kind=SubjectKind.RESOURCE, server=server, method=method, text=text, metadata={"uri": uri}
        ), layout
    if method == "prompts/get":
        items = []
        description = result.get("description")
        if isinstance(description, str):
            items.append((("description",), description))
        for index, message in enumerate(result.get("messages") or []):
            if isinstance(message, dict):
                items += _content_texts(message.get("content"), ("messages", index, "content"))
        text, layout = _collect(items)
        return Subject(
            kind=SubjectKind.PROMPT, server=server, tool=str(params.get("name", "")), method=method, text=text
        ), layout
    return None


def sampling_subject(server: str, params: Mapping[str, Any]) -> tuple[Subject, TextLayout]:
    items: list[tuple[tuple[str | int, ...], str]] = []
    system = params.get("systemPrompt")
    if isinstance(system, str):
        items.append((("systemPrompt",), system))
    for index, message in enumerate(params.get("messages") or []):
        if isinstance(message, dict):
            items += _content_texts(message.get("content"), ("messages", index, "content"))
    text, layout = _collect(items)
    return Subject(kind=SubjectKind.SAMPLING, server=server, method="sampling/createMessage", text=text), layout


def mask_message(
    message: Mapping[str, Any],
    layout: TextLayout | None,
    spans: list[Span],
    *,
    arguments_key: str | None = None,
    structured_key: str | None = None,
) -> dict[str, Any]:
    """A copy of `message` with every span masked where it was found."""
    out: dict[str, Any] = copy.deepcopy(dict(message))
    text_spans = [(s.start, s.end, s.label) for s in spans if s.field == "text"]
    if layout is not None and text_spans:
        for part in layout.parts:
            local = [
                (max(s, part.start) - part.start, min(e, part.end) - part.start, label)
                for s, e, label in text_spans
                if s < part.end and e > part.start
            ]
            if not local:
                continue
            holder: Any = out
            for key in part.path[:-1]:
                holder = holder[key]
            holder[part.path[-1]] = mask_string(holder[part.path[-1]], local)
    if arguments_key is not None and isinstance(out.get(arguments_key), dict):
        for path, field_spans in spans_by_field(spans, "arguments").items():
            out[arguments_key] = mask_value_at(out[arguments_key], path, field_spans)
    if structured_key is not None and structured_key in out:
        for path, field_spans in spans_by_field(spans, "structured").items():
            if path == "":
                value = out[structured_key]
                if isinstance(value, str):
                    out[structured_key] = mask_string(value, field_spans)
                continue
            out[structured_key] = mask_value_at(out[structured_key], path, field_spans)
    return out
