"""Remote servers (Streamable HTTP, legacy SSE): every message bounded like a local server's line.

The SDK's Streamable HTTP client bounds one Server-Sent Event (1 MiB unless told otherwise; the
gateway tells it ``max_message_bytes``) but reads a JSON response whole; its legacy SSE client bounds
an event at 1 MiB whatever the setting. The HTTP clients made here stop a response body at
``max_message_bytes`` and, for the legacy client, any one event-stream line, counted after
decompression: they ask for uncompressed answers, decode gzip or deflate themselves when a server
compresses anyway (so a small compressed body cannot unpack into gigabytes), and refuse other
encodings. The request such an answer was for gets an error that says which limit to raise. The
clients keep httpx's own transport, so proxies from the environment and TLS settings apply as usual.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, PARSE_ERROR

from .errors import MESSAGE_TOO_LARGE

__all__ = ["ReplayedInitialize", "bounded_client", "bounded_client_factory", "too_large_error"]

_MARK = "over the max_message_bytes limit"
_SLICE = 1 << 16  # bytes decompressed at a time
_LINE_END = re.compile(rb"[\r\n]")


class _Refused(httpx2.StreamError):
    pass


class _Bounded(httpx2.AsyncByteStream):
    """A response body that fails once it passes `limit` bytes (with `per_line`, once a line does)."""

    def __init__(
        self, inner: httpx2.AsyncByteStream, limit: int, *, per_line: bool, refused: Callable[[str], None] | None
    ) -> None:
        self._inner, self._limit, self._per_line, self._refused = inner, limit, per_line, refused

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0  # bytes of the body, or of the line under way
        async for chunk in self._inner:
            start = 0
            if self._per_line:  # an event-stream line ends at CR, LF or CRLF
                for found in _LINE_END.finditer(chunk):
                    end = found.start()
                    self._check(seen + end - start)
                    seen, start = 0, end + 1
            seen += len(chunk) - start
            self._check(seen)
            yield chunk

    def _check(self, size: int) -> None:
        if size > self._limit:
            what = "an event-stream line" if self._per_line else "a response"
            text = f"{what} of more than {size:,} bytes, {_MARK} ({self._limit:,} bytes)"
            if self._refused is not None:
                self._refused(text)
            raise _Refused(text)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Decoded(httpx2.AsyncByteStream):
    """A gzip or deflate body, decoded here a slice at a time, so what it unpacks to can be bounded."""

    def __init__(self, inner: httpx2.AsyncByteStream, encoding: str) -> None:
        self._inner, self._encoding = inner, encoding
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS)
        self._started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            pending = chunk
            while pending:
                try:
                    out = self._z.decompress(pending, _SLICE)
                except zlib.error as exc:
                    if self._started or "gzip" in self._encoding:
                        raise _Refused(f"the {self._encoding} answer does not decode: {exc}") from exc
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate without its zlib header
                    continue
                self._started = True
                pending = self._z.unconsumed_tail
                if out:
                    yield out
        if tail := self._z.flush():
            yield tail

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Unread(httpx2.AsyncByteStream):
    """A body in an encoding the gateway does not decode: reading it fails, saying why."""

    def __init__(self, inner: httpx2.AsyncByteStream, encoding: str) -> None:
        self._inner, self._encoding = inner, encoding

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise _Refused(
            f"the server compressed its answer as {self._encoding!r} although the gateway asked for none; only "
            "gzip and deflate are decoded"
        )
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        await self._inner.aclose()


def _bounding(
    limit: int, *, sse_lines: bool, refused: Callable[[str], None] | None
) -> Callable[[httpx2.Response], Awaitable[None]]:
    """A response hook putting the bounds on each body before anything reads it; `refused` is told why a
    body was stopped (the legacy SSE client swallows the error, and its stream just ends)."""

    async def hook(response: httpx2.Response) -> None:
        event_stream = response.headers.get("content-type", "").lower().startswith("text/event-stream")
        if event_stream and not sse_lines:
            return  # the Streamable HTTP client bounds each event itself
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            del response.headers["content-encoding"]  # decoded here, not again by httpx
            if encoding not in ("gzip", "x-gzip", "deflate"):
                response.stream = _Unread(stream, encoding)
                return
            stream = _Decoded(stream, encoding)
        response.stream = _Bounded(stream, limit, per_line=event_stream, refused=refused)

    return hook


def bounded_client(
    limit: int, *, sse_lines: bool, refused: Callable[[str], None] | None = None, **options: Any
) -> httpx2.AsyncClient:
    """An httpx client whose response bodies are bounded as above (`options` as for `httpx2.AsyncClient`)."""
    headers = {**dict(options.pop("headers", None) or {}), "Accept-Encoding": "identity"}
    hook = _bounding(limit, sse_lines=sse_lines, refused=refused)
    return httpx2.AsyncClient(headers=headers, event_hooks={"response": [hook]}, **options)


class ReplayedInitialize(httpx2.AsyncBaseTransport):
    """The HTTP layer of a connection whose initialize the fast start of `wrap --url` already sent
    (`gateway.remote_start`): the first initialize POST is answered with the recorded result and session id,
    under the id the SDK gave it, and reaches the server no more; everything else goes to the server."""

    def __init__(self, result: dict[str, Any], session_id: str | None) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._recorded: tuple[dict[str, Any], str | None] | None = (result, session_id)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._recorded is not None and request.method == "POST":
            try:
                message = json.loads(await request.aread())
            except ValueError:
                message = None
            if isinstance(message, dict) and message.get("method") == "initialize" and "id" in message:
                (result, session_id), self._recorded = self._recorded, None
                headers = {"content-type": "application/json"}
                if session_id:
                    headers["mcp-session-id"] = session_id
                body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
                return httpx2.Response(200, headers=headers, content=body, request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client_factory(limit: int, refused: Callable[[str], None]) -> Any:
    """An `httpx_client_factory` for the SDK's legacy SSE client, its streams and bodies bounded; `refused`
    is told why one was stopped."""

    def factory(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        timeout = timeout or httpx2.Timeout(30.0, read=300.0)
        return bounded_client(limit, sse_lines=True, refused=refused, headers=headers, timeout=timeout, auth=auth)

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
