"""JSON-RPC frames as bytes: parsed once on the way in, encoded only when something changed them."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Invalid", "Message", "decode", "encode", "error_frame", "error_message", "log_skipped", "request_key"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]
PARSE_ERROR, INVALID_REQUEST = -32700, -32600
_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,20})')


def request_id_in(head: bytes) -> str | int | None:
    """The id a message that could not be read carries, where one can be made out in its first bytes."""
    match = _ID.search(head)
    if match is None:
        return None
    raw = match.group(1)
    return raw[1:-1].decode(errors="replace") if raw.startswith(b'"') else int(raw)


class _Refused(ValueError):
    """A JSON text that is valid for Python's parser but that no strict peer would read the same way."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        # parsers differ on which of the two they keep: what was checked need not be what is used
        raise _Refused(f"the key {twice!r} appears twice in one object")
    return value


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise _Refused(f"the number {text[:40]} is too large for JSON")
    return number


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float)


@dataclass(frozen=True)
class Invalid:
    """Why a line is no JSON-RPC message, the JSON-RPC error code that says so, and the request id it
    carried where one could be read (the sender of a request waits for an answer to it)."""

    code: int
    problem: str
    request_id: Any = None


def decode(line: bytes) -> Message | Invalid:
    """A JSON-RPC message, strictly read: one object, no repeated keys, no NaN or infinite numbers."""
    try:
        message = _DECODER.decode(line.decode("utf-8"))
    except _Refused as exc:
        return Invalid(INVALID_REQUEST, str(exc), request_id_in(line[:4096]))
    except (ValueError, RecursionError) as exc:  # RecursionError: a line of a hundred thousand brackets
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Invalid(PARSE_ERROR, f"not valid JSON ({problem})")
    if isinstance(message, list):
        return Invalid(INVALID_REQUEST, "a batch (JSON array) of messages, which MCP does not use; send each alone")
    if not isinstance(message, dict):
        return Invalid(INVALID_REQUEST, "not a JSON object")
    request_id = message.get("id")
    if message.get("jsonrpc") != "2.0":
        return Invalid(INVALID_REQUEST, 'it does not say "jsonrpc": "2.0"', request_id)
    if "method" in message:
        if not isinstance(message["method"], str):
            return Invalid(INVALID_REQUEST, "its method is not a string", request_id)
        return message
    if "id" in message and ("result" in message) != ("error" in message):
        if "error" in message and not isinstance(message["error"], dict):
            return Invalid(INVALID_REQUEST, "its error is not an object", request_id)
        return message
    return Invalid(INVALID_REQUEST, "not a JSON-RPC request, notification or response", request_id)


def log_skipped(line: bytes, origin: str, problem: str, fate: str = "skipped") -> None:
    """Say, naming `origin`, that a line was no JSON-RPC message and what became of it."""
    preview = line[:200].decode(errors="replace")
    logger.warning(
        "%s sent a line that is not JSON-RPC (%d bytes), %s: %r (%s)", origin, len(line), fate, preview, problem
    )


def encode(message: Message) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def error_message(request_id: Any, code: int, message: str) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def error_frame(request_id: Any, code: int, message: str) -> bytes:
    return encode(error_message(request_id, code, message))


def request_key(request_id: Any) -> str | int | None:
    """A request id usable as a dict key (JSON-RPC ids are strings or numbers; anything else is not tracked)."""
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | float):
        return None
    if isinstance(request_id, float):
        return int(request_id) if request_id.is_integer() else None
    return request_id
