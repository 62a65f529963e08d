"""MCP messages → engine subjects, and masks back onto MCP messages.

The engine sees one `Subject` per message. Text-bearing parts of a result (content items,
embedded resources, prompt messages, sampling messages) are joined into ``Subject.text``; a
`TextLayout` remembers where each part sits, so spans found in the joined text can be masked in
the original parts. ``structuredContent`` and arguments keep their JSON shape; spans on them
carry JSON paths.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policy.subject import Subject, SubjectKind, plain_key
from policy.verdict import Span

from .masking import mask_string, masked_in_place, renamed_in_place, spans_by_field

__all__ = [
    "RESULT_KIND", "Part", "Side", "TextLayout", "call_subject", "mask_message", "mask_sides", "rest_sides",
    "result_subject", "server_meta", "side_subject", "side_values",
]

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


# the kind of subject what a method returns is checked as (a tool result otherwise)
RESULT_KIND = {"resources/read": SubjectKind.RESOURCE, "prompts/get": SubjectKind.PROMPT}
_SIDE_KIND = {**RESULT_KIND, "resources/list": SubjectKind.RESOURCE, "resources/templates/list": SubjectKind.RESOURCE}
BLOB_TEXT_LIMIT = 1 << 20  # a base64 blob this large (decoded) or smaller is read when it is UTF-8 text


@dataclass(frozen=True)
class Side:
    """A place in a result that a model does not read as prose but a client receives: `_meta`, URIs,
    link descriptions, text inside base64 blobs, completion values, a task's status message. `encoding`:
    the value is a blob's decoded text, to be encoded back so (the same encoding and byte order, its BOM
    kept)."""

    path: tuple[str | int, ...]
    value: Any
    encoding: str | None = None
    read: bool = False  # text a model may be given to read (a text blob, a link's description): judged whole
    key: bool = False  # `value` is the last key of `path` (an object keyed by e-mail, name or token), not its value


def server_meta(meta: Any) -> Any:
    """A `_meta` object without the keys the protocol itself defines (a progress token, a related task's
    id): ids to pass on as they are, not text a server wrote. Anything but an object is returned as it is.
    Whoever masks the rest puts it back over the original, so those keys stay."""
    if not isinstance(meta, dict):
        return meta
    return {
        key: value for key, value in meta.items()
        if not (key == "progressToken" or str(key).startswith("io.modelcontextprotocol/"))
    }


def side_values(method: str, result: Mapping[str, Any]) -> list[Side]:
    """Every side place of a result that holds something, to be masked like its content."""
    found: list[Side] = []

    def add(path: tuple[str | int, ...], value: Any, encoding: str | None = None, read: bool = False) -> None:
        if value not in (None, "", {}, []):
            found.append(Side(path, value, encoding, read))

    def meta(path: tuple[str | int, ...], value: Any) -> None:
        add(path, server_meta(value))  # mask_sides puts the protocol's own keys back

    def block(holder: Mapping[str, Any], path: tuple[str | int, ...]) -> None:
        meta((*path, "_meta"), holder.get("_meta"))
        if holder.get("type") == "resource_link":
            add((*path, "uri"), holder.get("uri"))
            for key in ("name", "title", "description"):
                add((*path, key), holder.get(key), read=True)
        resource = holder.get("resource")
        if isinstance(resource, dict):
            resource_fields(resource, (*path, "resource"))

    def resource_fields(resource: Mapping[str, Any], path: tuple[str | int, ...]) -> None:
        add((*path, "uri"), resource.get("uri"))
        meta((*path, "_meta"), resource.get("_meta"))
        decoded = _blob_text(resource.get("blob"))
        if decoded is not None:
            add((*path, "blob"), *decoded, read=True)

    meta(("_meta",), result.get("_meta"))
    if method in ("tools/call", "tasks/result"):
        for index, item in enumerate(_list(result.get("content"))):
            if isinstance(item, dict):
                block(item, ("content", index))
    elif method == "resources/read":
        for index, item in enumerate(_list(result.get("contents"))):
            if isinstance(item, dict):
                resource_fields(item, ("contents", index))
    elif method == "prompts/get":
        for index, message in enumerate(_list(result.get("messages"))):
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, dict):
                block(content, ("messages", index, "content"))
    elif method in ("resources/list", "resources/templates/list"):
        key = "resources" if method == "resources/list" else "resourceTemplates"
        for index, item in enumerate(_list(result.get(key))):
            if isinstance(item, dict):
                for field in ("uri", "uriTemplate", "name", "title", "description"):
                    add((key, index, field), item.get(field))
                meta((key, index, "_meta"), item.get("_meta"))
    elif method == "completion/complete":
        completion = result.get("completion")
        if isinstance(completion, dict):
            add(("completion", "values"), completion.get("values"))
    elif method == "tasks/list":  # each task is also checked on its own, as a tasks/get, by its tool's policies
        for index, item in enumerate(_list(result.get("tasks"))):
            if isinstance(item, dict):
                add(("tasks", index, "statusMessage"), item.get("statusMessage"))
                meta(("tasks", index, "_meta"), item.get("_meta"))
            else:
                add(("tasks", index), item)
    if method in ("tasks/get", "tasks/cancel"):
        add(("statusMessage",), result.get("statusMessage"), read=True)
    task = result.get("task")
    if method == "tools/call" and isinstance(task, dict):  # a task started: its status line
        add(("task", "statusMessage"), task.get("statusMessage"), read=True)
    return found


# a value like "text", "image/png", "assistant", "object": a protocol word, which holds no secret or person
_TOKEN = re.compile(r"[a-z/_.+-]{1,32}")


def rest_sides(value: Any, covered: Sequence[tuple[str | int, ...]] = ()) -> list[Side]:
    """Every string in `value` outside the `covered` paths (and what lies under them): the fields no check
    reads by name (a server's own keys, annotations, cursors), so the policies that mask see them too."""
    skip = set(covered)
    found: list[Side] = []

    def walk(item: Any, path: tuple[str | int, ...]) -> None:
        if path in skip:
            return
        if isinstance(item, str):
            if item and not _TOKEN.fullmatch(item):
                found.append(Side(path, item))
        elif isinstance(item, dict):
            for key, child in item.items():
                if (*path, key) not in skip and not plain_key(str(key)):
                    found.append(Side((*path, key), str(key), key=True))
                walk(child, (*path, key))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                walk(child, (*path, index))

    walk(value, ())
    return found


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _blob_text(blob: Any) -> tuple[str, str] | None:
    """The text a base64 blob holds (line-wrapped or not; UTF-8, or UTF-16 with its byte-order mark) and its
    encoding, or None for binary (an image, an archive) and for blobs over BLOB_TEXT_LIMIT."""
    if not isinstance(blob, str) or not blob or len(blob) > BLOB_TEXT_LIMIT * 4 // 3 + 4096:
        return None
    try:
        raw = base64.b64decode("".join(blob.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    encoding = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}.get(raw[:2], "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        return None
    if "\x00" in text or not text:
        return None  # binary that happens to decode
    unprintable = sum(1 for ch in text if not ch.isprintable() and ch not in "\n\r\t\x0c\x1b\ufeff")
    return (text, encoding) if unprintable <= len(text) // 50 else None  # colour codes, a BOM: still text


def side_subject(
    server: str, method: str, tool: str, sides: list[Side], kind: SubjectKind | None = None
) -> Subject:
    return Subject(
        kind=kind or _SIDE_KIND.get(method, SubjectKind.TOOL_RESULT),
        server=server,
        tool=tool,
        method=method,
        structured={f"s{index}": side.value for index, side in enumerate(sides)},
    )


def mask_sides(result: Mapping[str, Any], sides: list[Side], spans: list[Span]) -> dict[str, Any]:
    """A copy of `result` with the spans found in `side_subject` masked where each value came from."""
    out: dict[str, Any] = copy.deepcopy(dict(result))
    by_side: dict[int, dict[str, list[tuple[int, int, str]]]] = {}
    for path, field_spans in spans_by_field(spans, "structured").items():
        match = _SIDE_PATH.match(path)
        if match is not None and int(match.group(1)) < len(sides):
            by_side.setdefault(int(match.group(1)), {})[".v" + path[match.end() :]] = field_spans
    renames: dict[tuple[str | int, ...], dict[str, str]] = {}
    for index, grouped in by_side.items():
        side = sides[index]
        value = masked_in_place({"v": copy.deepcopy(side.value)}, grouped)["v"]
        if side.key:
            renames.setdefault(side.path[:-1], {})[str(side.path[-1])] = str(value)
            continue
        if side.encoding is not None:
            value = base64.b64encode(str(value).encode(side.encoding)).decode("ascii")
        holder: Any = out
        for part in side.path[:-1]:
            holder = holder[part]
        last = side.path[-1]
        if isinstance(value, dict) and isinstance(holder[last], dict) and isinstance(side.value, dict):
            # keys left out of the side value (the protocol's own) stay; those it held are masked ones now
            kept = {name: item for name, item in holder[last].items() if name not in side.value}
            value = {**kept, **value}
        holder[last] = value
    renamed_in_place(out, renames)  # keys last: renaming one changes the path of everything under it
    return out


# a path in `side_subject`'s structured value: the side's index, then the path inside the side's value
_SIDE_PATH = re.compile(r"\.s(\d+)(?=$|[.\[:])")


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
        out[arguments_key] = masked_in_place(out[arguments_key], spans_by_field(spans, "arguments"), keep_type=False)
    if structured_key is not None and structured_key in out:
        out[structured_key] = masked_in_place(out[structured_key], spans_by_field(spans, "structured"))
    return out
