"""Remote servers (Streamable HTTP, legacy SSE): every message bounded like a local server's line.

The SDK's Streamable HTTP client bounds one Server-Sent Event (1 MiB unless told otherwise; the
gateway tells it ``max_message_bytes``) but reads a JSON response whole, and its legacy SSE client
bounds nothing. The HTTP transport here stops a response body at ``max_message_bytes`` and, on a
legacy SSE stream, any one line, so a remote server cannot fill the gateway's memory with one
message; the request it answered gets an error that says which limit to raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, PARSE_ERROR

from .transports import MESSAGE_TOO_LARGE

__all__ = ["BoundedTransport", "bounded_client_factory", "too_large_error"]

_MARK = "over the max_message_bytes limit"


class _BodyTooLarge(httpx2.StreamError):
    pass


class _BoundedStream(httpx2.AsyncByteStream):
    """A response body that fails once it passes `limit` bytes (with `per_line`, once a line does)."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int, *, per_line: bool) -> None:
        self._inner, self._limit, self._per_line = inner, limit, per_line

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0  # bytes of the body, or of the line under way
        async for chunk in self._inner:
            start = 0
            while self._per_line and (end := chunk.find(b"\n", start)) >= 0:
                self._check(seen + end - start)
                seen, start = 0, end + 1
            seen += len(chunk) - start
            self._check(seen)
            yield chunk

    def _check(self, size: int) -> None:
        if size > self._limit:
            what = "an event-stream line" if self._per_line else "a response"
            raise _BodyTooLarge(f"{what} of more than {size:,} bytes, {_MARK} ({self._limit:,} bytes)")

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """httpx's own transport, with every response body but an event stream bounded; with `sse_lines`,
    each line of an event stream too (the legacy SSE client, which does not bound its events)."""

    def __init__(self, limit: int, *, sse_lines: bool) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._limit, self._sse_lines = limit, sse_lines

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.stream = _BoundedStream(stream, self._limit, per_line=False)
        elif self._sse_lines:
            response.stream = _BoundedStream(stream, self._limit, per_line=True)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client_factory(limit: int) -> Any:
    """An `httpx_client_factory` for the SDK's legacy SSE client, its streams and bodies bounded."""

    def factory(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers=headers,
            timeout=timeout or httpx2.Timeout(30.0, read=300.0),
            auth=auth,
            transport=BoundedTransport(limit, sse_lines=True),
        )

    return factory


def too_large_error(exc: MCPError, server: str, method: str, limit: int) -> MCPError | None:
    """The error for the client when the SDK failed a request because its answer was over the limit (a
    JSON body stopped here, or one event over the SDK's bound); None for any other error."""
    message = exc.error.message
    over = (exc.error.code == PARSE_ERROR and _MARK in message) or (
        exc.error.code == CONNECTION_CLOSED and message.startswith("SSE stream failed") and "byte limit" in message
    )
    if not over:
        return None
    return MCPError(
        code=MESSAGE_TOO_LARGE,
        message=(
            f"mcp-gateway: server {server!r} answered {method} with a message over the {limit:,}-byte limit; it "
            "was dropped. Raise max_message_bytes (MCP_GATEWAY_MAX_MESSAGE_BYTES) if this is expected."
        ),
    )
