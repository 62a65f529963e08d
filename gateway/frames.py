"""JSON-RPC frames as bytes: parsed once on the way in, encoded only when something changed them."""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["Message", "encode", "error_frame", "parse", "request_key"]

logger = logging.getLogger(__name__)

Message = dict[str, Any]


def parse(line: bytes, origin: str) -> Message | None:
    """A JSON-RPC message, or None (logged, naming `origin`) for anything else."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: a line of a hundred thousand brackets
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        if (
            isinstance(message, dict)
            and message.get("jsonrpc") == "2.0"
            and (
                isinstance(message.get("method"), str)
                or ("id" in message and ("result" in message or "error" in message))
            )
        ):
            return message
        problem = "not a JSON-RPC request, notification or response"
    logger.warning(
        "%s sent a line that is not JSON-RPC (%d bytes), skipped: %r (%s)",
        origin,
        len(line),
        line[:200].decode(errors="replace"),
        problem,
    )
    return None


def encode(message: Message) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def error_frame(request_id: Any, code: int, message: str) -> bytes:
    return encode({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def request_key(request_id: Any) -> str | int | None:
    """A request id usable as a dict key (JSON-RPC ids are strings or numbers; anything else is not tracked)."""
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | float):
        return None
    if isinstance(request_id, float):
        return int(request_id) if request_id.is_integer() else None
    return request_id
