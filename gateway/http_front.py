"""The gateway as a local HTTP MCP server: Streamable HTTP at ``/mcp``, legacy HTTP+SSE at ``/sse``.

The SDK's server transports frame HTTP and hand each session raw `SessionMessage` streams, so the
relay is the one used on stdio and messages pass through unchanged.

Sessions: each client session gets its own relay and downstream (one server process each), because
nothing in a server's requests to the client (sampling, elicitation, roots) or its notifications
says which client they are for. A Streamable HTTP session starts with a POST of ``initialize`` and
ends on DELETE, after ``http_session_idle_s`` without requests (30 minutes unless set), or at shutdown; a legacy SSE
session lasts as long as its GET ``/sse`` stream. The downstream stops with its session. The
2026-07-28 sessionless era is refused with -32022 naming the versions served (``auto`` clients
fall back to ``initialize``).

Security, since any web page the user visits can send requests to 127.0.0.1: loopback only; Host
and Origin must be localhost names (DNS rebinding); bodies limited to ``max_message_bytes``; an
optional bearer token (``MCP_GATEWAY_HTTP_TOKEN``); at most ``http_max_sessions`` sessions (32 unless set).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import json
import logging
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import uuid4

import anyio
import anyio.abc
import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.dispatcher import as_request_id
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    UNSUPPORTED_PROTOCOL_VERSION,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    UnsupportedProtocolVersionErrorData,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import ConfigError
from .relay import WrapRelay
from .serve import GatewayParts, make_downstream
from .settings import Settings
from .specs import ServerSpec

__all__ = ["HttpFront", "Relay", "serve_http", "serve_run_http", "serve_wrap_http"]

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
ROUTE_WAIT_S = 30.0
CLOSE_WAIT_S = 12.0
CLIENT_UNREACHABLE = -32044
# A connection must have sent a whole request (line, headers and body) this long after it opened, or after
# the first byte of its next request; one that trickles it in, or sends a head and no body, is closed, so
# idle sockets cannot hold the front's memory or its requests. (Nothing caps the number of connections:
# uvicorn's cap counts silent ones too, so a local process holding 256 open shut every client out.)
REQUEST_TIMEOUT_S = 10.0

_LOCAL_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?", re.IGNORECASE)
_LOCAL_ORIGIN = re.compile(r"https?://(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?", re.IGNORECASE)
_UNAUTHORIZED = "mcp-gateway needs 'Authorization: Bearer <token>' with the token in its MCP_GATEWAY_HTTP_TOKEN"


class Relay(Protocol):
    async def serve(self, read: Any, write: Any) -> None: ...


class _Wrapper:
    def __init__(self, inner: Any, routes: _Routes) -> None:
        self._inner, self._routes = inner, routes

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Routes:
    """Which stream carries a message the server sends on its own (not tied to a client request).

    Progress and cancellations are tied to their request by the dispatchers; nothing on a stdio
    pipe says which client request made a server ask for sampling or log something. The stream of
    a client request in flight reaches the client and is where the spec wants such messages (the
    answer comes back as a POST either way); with none in flight, the GET stream; with neither,
    the message waits (bounded) for one: the SDK transport would drop it silently, e.g. a
    server's roots request right after initialize, before the client's GET stream is up.
    """

    def __init__(self) -> None:
        self.open: dict[str, RequestId] = {}  # client requests in flight, oldest first
        self.standalone = 0  # GET streams open
        self.lock = anyio.Lock()
        self.changed = anyio.Event()

    def touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def target(self) -> ServerMessageMetadata | None:
        """Routing for the next such message; None while no stream can take it."""
        if self.open:  # the newest request is the likeliest cause
            return ServerMessageMetadata(related_request_id=next(reversed(self.open.values())))
        return ServerMessageMetadata() if self.standalone else None  # no related request: the GET stream


class _Inbound(_Wrapper):
    """The client's messages on their way to the relay: notes which requests are in flight."""

    @property
    def last_context(self) -> contextvars.Context | None:
        return getattr(self._inner, "last_context", None)  # handlers run in their HTTP request's context

    async def receive(self) -> SessionMessage | Exception:
        item: SessionMessage | Exception = await self._inner.receive()
        message = item.message if isinstance(item, SessionMessage) else None
        if isinstance(message, JSONRPCRequest):
            self._routes.open[str(message.id)] = message.id
            self._routes.touch()
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            # The transport ends a cancelled request's stream itself.
            self._routes.open.pop(str(as_request_id((message.params or {}).get("requestId"))), None)
        return item

    def __aiter__(self) -> _Inbound:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class _Outbound(_Wrapper):
    """The relay's messages on their way to the client: routes those no request claims."""

    async def send(self, item: SessionMessage, /) -> None:
        message, routes = item.message, self._routes
        related = isinstance(item.metadata, ServerMessageMetadata) and item.metadata.related_request_id is not None
        if related or isinstance(message, JSONRPCResponse | JSONRPCError):
            # Under the lock: nothing may be routed to a request's stream after its answer, which
            # closes that stream.
            async with routes.lock:
                if isinstance(message, JSONRPCResponse | JSONRPCError):
                    routes.open.pop(str(message.id), None)
                await self._inner.send(item)
            return
        with anyio.move_on_after(ROUTE_WAIT_S):
            while True:
                async with routes.lock:
                    if (metadata := routes.target()) is not None:
                        await self._inner.send(SessionMessage(message, metadata))
                        return
                    changed = routes.changed
                await changed.wait()
        explanation = (
            f"cannot deliver {getattr(message, 'method', '?')} to the HTTP client: it had no request in flight "
            f"and no GET stream open for {ROUTE_WAIT_S:g} s; it must keep the GET stream open"
        )
        if isinstance(message, JSONRPCRequest):
            raise MCPError(code=CLIENT_UNREACHABLE, message=f"mcp-gateway: {explanation}")
        logger.warning("%s (dropped)", explanation)


@dataclass
class _Session:
    stop: Callable[[], Awaitable[None]]
    transport: StreamableHTTPServerTransport | None = None  # None: a legacy SSE session
    routes: _Routes = field(default_factory=_Routes)
    done: anyio.Event = field(default_factory=anyio.Event)


class HttpFront:
    """The ASGI application: checks every request, then serves MCP sessions, each on its own relay."""

    def __init__(
        self,
        make_relay: Callable[[], Relay],
        tg: anyio.abc.TaskGroup,
        *,
        max_body_bytes: int,
        max_sessions: int,
        idle_timeout_s: float,
        token: str | None = None,
    ) -> None:
        self._make_relay, self._tg, self._token = make_relay, tg, token
        self.max_sessions, self.idle_timeout_s = max_sessions, idle_timeout_s
        self._sessions: dict[str, _Session] = {}
        self._closing = False
        self._sse = SseServerTransport("/messages/", max_request_body_size=max_body_bytes)
        # Before anything reads a body: an oversized one is refused as it streams in.
        self._mcp_limited = RequestBodyLimitMiddleware(self._mcp, max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # uvicorn runs without lifespan events and without websockets
        path = scope["path"].rstrip("/")
        if (refusal := self._refusal(Headers(scope=scope))) is not None:
            await refusal(scope, receive, send)
        elif path == "/mcp":
            await self._mcp_limited(scope, receive, send)
        elif path == "/sse":
            await self._legacy_session(scope, receive, send)
        elif path == "/messages":
            await self._sse.handle_post_message(scope, receive, send)
        else:
            await _plain(404, f"mcp-gateway: nothing at {path!r}; MCP is at /mcp, legacy SSE at /sse")(
                scope, receive, send
            )

    def _refusal(self, headers: Headers) -> Response | None:
        # DNS rebinding: a page from evil.example whose name now resolves to 127.0.0.1 sends its own
        # name as Host; a page from any other site sends its Origin. Neither may reach the tools.
        host, origin = headers.get("host", ""), headers.get("origin")
        if not _LOCAL_HOST.fullmatch(host):
            logger.warning("refused a request with Host %r: not a localhost name", host[:100])
            return _plain(
                421, f"mcp-gateway answers only localhost names (DNS-rebinding protection), not {host[:100]!r}"
            )
        if origin is not None and not _LOCAL_ORIGIN.fullmatch(origin):
            logger.warning("refused a request from Origin %r: not a localhost page", origin[:100])
            return _plain(403, f"mcp-gateway refuses requests from pages outside localhost (Origin {origin[:100]!r})")
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken must not tell how much of a guessed token was right.
        if self._token is not None and not (
            scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), self._token.encode())
        ):
            logger.warning("refused a request without the right bearer token")
            return _plain(401, _UNAUTHORIZED, {"WWW-Authenticate": 'Bearer realm="mcp-gateway"'})
        return None

    def _admission(self) -> Response | None:
        if self._closing:
            return _plain(503, "mcp-gateway is shutting down")
        if len(self._sessions) < self.max_sessions:
            return None
        # Each session runs a server process: a client opening sessions in a loop must not fill the machine.
        logger.warning("refused a new session: %d are open, the limit", len(self._sessions))
        return _plain(
            503,
            f"mcp-gateway has {len(self._sessions)} sessions open, its limit; end one (DELETE), or raise "
            "MCP_GATEWAY_HTTP_MAX_SESSIONS (http_max_sessions)",
        )

    # --- Streamable HTTP --------------------------------------------------------------------

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        version, session_id = headers.get(MCP_PROTOCOL_VERSION_HEADER), headers.get(MCP_SESSION_ID_HEADER)
        session = self._sessions.get(session_id or "")
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS and session_id is None:
            await _refuse_sessionless(version, scope, receive, send)
        elif version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS and scope["method"] != "DELETE":
            # a session's request (a DELETE still ends it, whatever it says)
            spoken = ", ".join(sorted(HANDSHAKE_PROTOCOL_VERSIONS))
            message = f"MCP-Protocol-Version {version!r} is not a version this gateway speaks ({spoken})"
            await _jsonrpc_error(400, INVALID_REQUEST, message)(scope, receive, send)
        elif session_id is None:
            await self._open_session(scope, receive, send)
        elif session is None or session.transport is None:
            message = "Session not found: it ended (DELETE, idle timeout, restart); start a new one with initialize"
            await _jsonrpc_error(404, INVALID_REQUEST, message)(scope, receive, send)
        elif scope["method"] == "GET":
            await self._standalone_stream(session, session.transport, scope, receive, send)
        else:
            await session.transport.handle_request(scope, receive, send)
            if session.transport.is_terminated:
                self._sessions.pop(session_id, None)  # 404 from now on, not once the relay is gone

    async def _open_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            message = "Missing Mcp-Session-Id header: start a session with a POST of initialize"
            await _jsonrpc_error(400, INVALID_REQUEST, message)(scope, receive, send)
            return
        if (refusal := self._admission()) is not None:
            await refusal(scope, receive, send)
            return
        transport = StreamableHTTPServerTransport(mcp_session_id=uuid4().hex, idle_timeout=self.idle_timeout_s)
        session_id, session = transport.mcp_session_id or "", _Session(stop=transport.terminate, transport=transport)
        self._sessions[session_id] = session
        status: int | None = None
        body = bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            status = message["status"] if message["type"] == "http.response.start" else status
            if message["type"] == "http.response.body" and len(body) < ANSWER_SNIFF_BYTES:
                body.extend(message.get("body", b"")[: ANSWER_SNIFF_BYTES - len(body)])
            await send(message)

        try:
            await self._tg.start(self._run_session, session_id, session, transport)
            await transport.handle_request(scope, receive, watch)
        finally:
            # not an initialize, or one the server did not take (the error rides in a 200 answer): a session
            # nothing can use must not hold one of the slots until its idle timeout
            if status is None or status >= 400 or _answered_with_error(bytes(body)):
                self._sessions.pop(session_id, None)
                with anyio.CancelScope(shield=True):
                    await transport.terminate()

    async def _run_session(
        self,
        session_id: str,
        session: _Session,
        transport: StreamableHTTPServerTransport,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        try:
            async with transport.connect() as (read, write):
                task_status.started()
                with transport.idle_scope or anyio.CancelScope() as idle:
                    await self._serve_relay(_Inbound(read, session.routes), _Outbound(write, session.routes))
                if idle.cancelled_caught:
                    logger.info("session %s ended after %g s without requests", session_id[:8], self.idle_timeout_s)
        finally:
            self._sessions.pop(session_id, None)
            with anyio.CancelScope(shield=True):
                await transport.terminate()
            session.done.set()

    async def _standalone_stream(
        self, session: _Session, transport: StreamableHTTPServerTransport, scope: Scope, receive: Receive, send: Send
    ) -> None:
        opened = False

        async def watch(message: Message) -> None:
            nonlocal opened
            await send(message)
            if message["type"] == "http.response.start" and message["status"] == 200 and not opened:
                # The transport registers the stream in the same scheduling round as these headers,
                # before any task woken here runs, so waiting messages find it.
                opened = True
                session.routes.standalone += 1
                session.routes.touch()

        # no events are stored to resume from: a client's Last-Event-ID gets a fresh stream (the SDK would
        # answer it with nothing at all, which the server reports as a 500)
        headers = [(key, value) for key, value in scope.get("headers", []) if key.lower() != b"last-event-id"]
        try:
            await transport.handle_request({**scope, "headers": headers}, receive, watch)
        finally:
            if opened:
                session.routes.standalone -= 1

    # --- legacy HTTP+SSE and both -----------------------------------------------------------

    async def _legacy_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._admission() if scope["method"] == "GET" else _plain(405, "GET /sse", {"Allow": "GET"})
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        cancel = anyio.CancelScope()

        async def stop() -> None:
            cancel.cancel()

        session_id, session = uuid4().hex, _Session(stop=stop)
        self._sessions[session_id] = session
        try:
            async with self._sse.connect_sse(scope, receive, send) as (read, write):  # type: ignore[no-untyped-call]
                with cancel:
                    await self._serve_relay(read, write)
        finally:
            self._sessions.pop(session_id, None)
            session.done.set()

    async def _serve_relay(self, read: Any, write: Any) -> None:
        try:
            await self._make_relay().serve(read, write)
        except Exception:  # the session boundary: one client's failure must not end the others
            logger.exception("a client session ended with an error")

    async def close(self) -> None:
        """End every session, and so every downstream; refuse new ones."""
        self._closing = True
        sessions = list(self._sessions.values())
        with anyio.CancelScope(shield=True):
            for session in sessions:
                await session.stop()
            with anyio.move_on_after(CLOSE_WAIT_S):
                for session in sessions:
                    await session.done.wait()


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain", headers=headers)


def _jsonrpc_error(
    status: int, code: int, message: str, request_id: RequestId | None = None, data: Any = None
) -> Response:
    error = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message, data=data))
    return Response(
        error.model_dump_json(by_alias=True, exclude_unset=True), status_code=status, media_type="application/json"
    )


async def _refuse_sessionless(version: str, scope: Scope, receive: Receive, send: Send) -> None:
    request_id: RequestId | None = None
    with contextlib.suppress(ValueError, RecursionError):
        decoded = json.loads(await Request(scope, receive).body())
        request_id = as_request_id(decoded.get("id")) if isinstance(decoded, dict) else None
    served = list(HANDSHAKE_PROTOCOL_VERSIONS)
    data = UnsupportedProtocolVersionErrorData(supported=served, requested=version).model_dump(mode="json")
    message = (
        f"mcp-gateway does not serve protocol version {version} (sessionless) over HTTP yet; "
        f"connect with initialize at one of {', '.join(served)}"
    )
    await _jsonrpc_error(400, UNSUPPORTED_PROTOCOL_VERSION, message, request_id, data)(scope, receive, send)


class _Http(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request to arrive whole (`REQUEST_TIMEOUT_S`).
    Answers take as long as they take: a stream of server events is not cut."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._received():
            self._disarm()
        elif self._deadline is None:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _received(self) -> bool:
        """Whether a request has arrived whole and is being answered."""
        return self.cycle is not None and not self.cycle.response_complete and not self.cycle.more_body

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(REQUEST_TIMEOUT_S, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if not self._received() and not self.transport.is_closing():
            _SLOW_CLOSES.note(f"{self.client[0]}:{self.client[1]}" if self.client else "a client")
            self.transport.close()


class _Closes:
    """Warns of connections closed for sending no whole request: the first at once, later ones at most
    once a minute with how many there were (a process holding thousands open would flood the log)."""

    def __init__(self) -> None:
        self._last = -1e9
        self._since = 0

    def note(self, peer: str) -> None:
        self._since += 1
        now = time.monotonic()
        if now - self._last < 60.0:
            return
        more = f" ({self._since - 1} more since the last warning)" if self._since > 1 else ""
        logger.warning("closed the connection of %s: no whole request within %.0f s%s", peer, REQUEST_TIMEOUT_S, more)
        self._last, self._since = now, 0


_SLOW_CLOSES = _Closes()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The gateway handles SIGINT/SIGTERM itself (`_stop_on_signal`): sessions, and with them the
        # open SSE streams uvicorn would wait for, end first; then the process exits 0 instead of
        # uvicorn re-raising the signal.
        yield


async def _stop_on_signal(server: uvicorn.Server, front: HttpFront) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if server.should_exit:
                server.force_exit = True  # a second signal: stop waiting
                continue
            logger.info("%s: ending every session and stopping", signal.Signals(signum).name)
            await front.close()
            server.should_exit = True


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))  # loopback only: other machines never reach the gateway
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot listen on {LOOPBACK}:{port} ({reason}); if another program uses the port, pick another with --port"
        ) from exc
    return sock


async def serve_http(make_relay: Callable[[], Relay], settings: Settings, port: int, token: str | None = None) -> None:
    """Serve MCP on http://127.0.0.1:PORT until SIGINT or SIGTERM; every session's downstream is stopped."""
    if token is not None and not token.strip():
        raise ConfigError("MCP_GATEWAY_HTTP_TOKEN (or --http-token) is set but empty; set a token or unset it")
    sock = _bind(port)
    port = sock.getsockname()[1]
    async with anyio.create_task_group() as tg:
        front = HttpFront(
            make_relay,
            tg,
            max_body_bytes=settings.max_message_bytes,
            token=token,
            max_sessions=settings.http_max_sessions,
            idle_timeout_s=settings.http_session_idle_s,
        )
        # Logs go to the root logger (stderr); no lifespan, no websockets, no trusted proxy headers.
        options: dict[str, Any] = {"lifespan": "off", "ws": "none", "log_config": None, "access_log": False}
        server = _Server(
            uvicorn.Config(
                front,
                http=_Http,
                proxy_headers=False,
                timeout_graceful_shutdown=5,
                **options,
            )
        )
        tg.start_soon(_stop_on_signal, server, front)
        # At the default level: the user needs the address (and to know when nothing guards it).
        unguarded = "" if token else "; no bearer token: any local process can use it (set MCP_GATEWAY_HTTP_TOKEN)"
        logger.warning("serving MCP at http://%s:%d/mcp (legacy SSE: /sse)%s", LOOPBACK, port, unguarded)
        try:
            with contextlib.redirect_stdout(sys.stderr):  # whatever a library prints: stdout stays empty
                await server.serve(sockets=[sock])
        finally:
            await front.close()
            tg.cancel_scope.cancel()


async def serve_wrap_http(
    spec: ServerSpec, settings: Settings, parts: GatewayParts, port: int, token: str | None = None
) -> None:
    def relay() -> Relay:
        return WrapRelay(make_downstream(spec, settings), parts.guard())

    await serve_http(relay, settings, port, token)


async def serve_run_http(
    specs: Sequence[ServerSpec], settings: Settings, parts: GatewayParts, port: int, token: str | None = None
) -> None:
    from .router import RouterRelay

    def relay() -> Relay:
        return RouterRelay(
            [make_downstream(spec, settings) for spec in specs], parts.guard(), start_grace_s=settings.start_grace_s
        )

    relay()  # two servers whose names collide fail now, not in every session
    await serve_http(relay, settings, port, token)


ANSWER_SNIFF_BYTES = 65536  # of an initialize's answer, read to see whether it is an error


def _answered_with_error(body: bytes) -> bool:
    """Whether an answer (a JSON body, or an event stream's data lines) is a JSON-RPC error."""
    texts = [line[5:] for line in body.splitlines() if line.startswith(b"data:")] or [body]
    for text in texts:
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if isinstance(message, dict) and "error" in message and "result" not in message:
            return True
    return False
