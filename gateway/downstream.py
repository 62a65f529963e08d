"""One downstream MCP server: connecting, supervising, restarting.

A server that crashes is restarted on the next request, and the client's original
``initialize`` is replayed to it, so the client never has to reconnect. A request that
outlives ``request_timeout_s`` is answered with an error (and cancelled downstream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
from mcp.shared.dispatcher import CallOptions, DispatchContext
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from .errors import DOWNSTREAM_UNAVAILABLE, DownstreamError, server_stopped, server_timed_out
from .handshake import EarlyStart
from .remote_start import RemoteStart
from .specs import Limits, ServerSpec
from .transports import stdio_downstream

__all__ = ["DOWNSTREAM_UNAVAILABLE", "Downstream", "Restarts", "ServerSpec"]

logger = logging.getLogger(__name__)

OnRequest = Callable[[DispatchContext[TransportContext], str, Mapping[str, Any] | None], Awaitable[dict[str, Any]]]
OnNotify = Callable[[DispatchContext[TransportContext], str, Mapping[str, Any] | None], Awaitable[None]]


@dataclass
class _Connection:
    dispatcher: JSONRPCDispatcher[TransportContext]
    process: EarlyStart | None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    failure: str | None = None  # why it ended, when it ended with an error


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside nested exception groups (a transport's task group wraps its own)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@dataclass
class Restarts:
    """When a server may be started again, what is logged when it is, and what a failed replay says;
    shared by `Downstream` and the stdio relay's `StdioServer`."""

    spec: ServerSpec
    backoff_s: float
    last_exit: str = ""  # how the last run ended, for the log line of the next start
    _last_start: float = 0.0

    async def pace(self, starts: int) -> None:
        """Call before each start; `starts` is how many there were before."""
        wait = self._last_start + self.backoff_s - time.monotonic()
        if starts and wait > 0:
            await anyio.sleep(wait)  # a server that dies at once must not be respawned in a tight loop
        self._last_start = time.monotonic()
        if starts:
            after = f" after: {self.last_exit}" if self.last_exit else ""
            logger.warning("restarting server %r (%s)%s", self.spec.name, self.spec.describe(), after)

    def not_initialized(self, exc: MCPError) -> MCPError:
        if self.spec.url is not None:
            why = self.last_exit or exc.error.message
            advice = f"check that the server is running and reachable at {self.spec.url}"
        else:
            why = exc.error.message + (f" ({self.last_exit})" if self.last_exit else "")
            advice = "its stderr (in the gateway's log) may say why; a slow server needs a larger init_timeout_s"
        name = self.spec.name
        text = f"mcp-gateway: server {name!r} was restarted but did not initialize again: {why}; {advice}"
        return MCPError(code=DOWNSTREAM_UNAVAILABLE, message=text)


class Downstream:
    def __init__(
        self,
        spec: ServerSpec,
        *,
        limits: Limits,
        started: EarlyStart | None = None,
        fast: RemoteStart | None = None,
    ) -> None:
        self.spec = spec
        # a remote server whose initialize the fast start of `wrap --url` sent: the first connection's HTTP layer
        # answers the SDK's initialize with the recorded result and session id
        self._fast = fast
        # a stdio server's process started ahead (run mode starts them while the gateway loads): the first
        # connection takes it over instead of starting one
        self._started = started
        self.name = spec.name
        self.limits = limits
        self.init_params: dict[str, Any] | None = None
        self.init_result: dict[str, Any] | None = None
        self.starts = 0
        self._connection: _Connection | None = None
        self._lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._on_request: OnRequest | None = None
        self._on_notify: OnNotify | None = None
        self._restarts = Restarts(spec, limits.restart_backoff_s)
        self._closed = False  # closed for good: the relay is ending, nothing may start the server again

    def bind(self, tg: anyio.abc.TaskGroup, on_request: OnRequest, on_notify: OnNotify) -> None:
        """Attach to the relay's task group and its handlers for what the server sends."""
        self._tg, self._on_request, self._on_notify = tg, on_request, on_notify

    @property
    def alive(self) -> bool:
        return self._connection is not None and not self._connection.done.is_set()

    async def initialize(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Forward the client's initialize (and remember it, to replay after a restart)."""
        self.init_params = dict(params or {})
        started = self._started
        if started is not None and started.init_sent:
            return await self._adopt(started)
        async with self._lock:
            connection = await self._start_locked(replay=False)
        try:
            result = await self._send(
                connection,
                "initialize",
                self.init_params,
                {"timeout": self.limits.init_timeout_s, "cancel_on_abandon": False},
            )
        except BaseException:
            # a server that did not initialize (hung, refused, gone) is stopped, so that the next request
            # starts it afresh instead of waiting out a timeout on a process that never became a server
            with anyio.CancelScope(shield=True):
                await self.close()
            raise
        self.init_result = result
        return result

    async def drop_started(self) -> None:
        """Stop the process started ahead, if nothing has connected to it: a server that will not be used."""
        started, self._started = self._started, None
        if started is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(started.stop)

    async def _adopt(self, started: EarlyStart) -> dict[str, Any]:
        """The outcome of the initialize `run`'s fast start sent this server (waited for, under its own
        init_timeout_s): its process taken over with its result, or stopped and its error raised."""
        await anyio.to_thread.run_sync(started.done.wait, abandon_on_cancel=True)
        if started.init_result is None:
            await self.drop_started()
            error = started.init_error or {
                "code": CONNECTION_CLOSED,
                "message": f"mcp-gateway: server {self.name!r} did not answer initialize",
            }
            raise MCPError(code=error["code"], message=error["message"], data=error.get("data"))
        async with self._lock:
            await self._start_locked(replay=False)
        self.init_result = started.init_result
        return started.init_result

    async def request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        connection = await self._ensure()
        options: CallOptions = {"timeout": self.limits.request_timeout_s}
        options.update(opts or {})
        return await self._send(connection, method, params, options)

    async def notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        if self.alive:
            assert self._connection is not None
            await self._connection.dispatcher.notify(method, params)
        elif method != "notifications/initialized":
            logger.debug("dropped %s for server %r: not running", method, self.name)

    async def close(self, *, for_good: bool = False) -> None:
        """End the connection (and the server's process); `for_good` when the relay is ending, so that a start
        under way or asked for later (a background retry) does not leave a server behind."""
        if for_good:
            self._closed = True
            await self.drop_started()
        if self._connection is not None:
            self._connection.scope.cancel()
            with anyio.move_on_after(8, shield=True):
                await self._connection.done.wait()

    async def _ensure(self) -> _Connection:
        if self.alive:
            assert self._connection is not None
            return self._connection
        async with self._lock:
            if self.alive:
                assert self._connection is not None
                return self._connection
            return await self._start_locked(replay=self.init_params is not None)

    async def _start_locked(self, *, replay: bool) -> _Connection:
        if self._connection is not None and not self._connection.done.is_set():
            return self._connection
        if self._closed:
            raise DownstreamError(f"server {self.name!r}: the gateway is closing")
        await self._restarts.pace(self.starts)
        assert self._tg is not None, "Downstream.bind() must be called first"
        connection: _Connection = await self._tg.start(self._run_connection)
        self.starts += 1
        self._connection = connection
        if self._closed:  # closed for good while it started
            connection.scope.cancel()
            raise DownstreamError(f"server {self.name!r}: the gateway is closing")
        if replay and self.init_params is not None:
            try:
                await connection.dispatcher.send_raw_request(
                    "initialize", self.init_params, {"timeout": self.limits.init_timeout_s, "cancel_on_abandon": False}
                )
                await connection.dispatcher.notify("notifications/initialized", None)
            except MCPError as exc:
                with anyio.CancelScope(shield=True):
                    await self.close()  # not left connected to a process that never became a server again
                raise self._restarts.not_initialized(exc) from exc
        return connection

    async def _run_connection(self, *, task_status: anyio.abc.TaskStatus[_Connection]) -> None:
        connection: _Connection | None = None
        try:
            async with self._transport() as (read, write, process):
                dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(read, write)
                connection = _Connection(dispatcher, process)
                assert self._on_request is not None and self._on_notify is not None
                with connection.scope:
                    async with anyio.create_task_group() as tg:
                        await tg.start(dispatcher.run, self._on_request, self._on_notify)
                        task_status.started(connection)
        except Exception as exc:  # the session boundary: a dead server must not take the relay down
            if connection is None:
                raise
            cause = _leaf(exc)
            reason = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
            if self.spec.url is not None:
                reason = f"cannot reach {self.spec.url} ({reason})"
            connection.failure = reason
            # while the gateway closes it (its client has gone), a write that no longer lands is no news
            level = logging.DEBUG if connection.scope.cancel_called else logging.ERROR
            logger.log(level, "connection to server %r ended with an error: %s", self.name, reason)
        finally:
            if connection is not None:
                connection.done.set()
                self._restarts.last_exit = self._exit_note(connection)

    def _refused(self, reason: str) -> None:
        """A remote server's message was over max_message_bytes and its stream was stopped (legacy SSE)."""
        if self._connection is not None and self._connection.failure is None:
            self._connection.failure = reason

    def _exit_note(self, connection: _Connection) -> str:
        process = connection.process
        if process is None:
            return connection.failure or "connection closed"
        return process.exit_note()

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any, EarlyStart | None]]:
        spec = self.spec
        if spec.stdio is not None:
            limit = self.limits.max_message_bytes
            started, self._started = self._started, None
            async with stdio_downstream(spec.name, spec.stdio, max_message_bytes=limit, started=started) as (r, w, p):
                yield r, w, p
            return
        assert spec.url is not None
        import httpx2

        from .remote import ReplayedInitialize, bounded_client, bounded_client_factory

        headers = dict(spec.headers)
        limit = self.limits.max_message_bytes
        try:
            if spec.transport == "sse":
                from mcp.client.sse import sse_client

                async with sse_client(
                    spec.url,
                    headers=headers or None,
                    timeout=self.limits.init_timeout_s,
                    httpx_client_factory=bounded_client_factory(limit, self._refused),
                ) as (r, w):
                    yield r, w, None
            else:
                from mcp.client.streamable_http import streamable_http_client

                timeout = httpx2.Timeout(self.limits.request_timeout_s)
                recorded = self._fast.take() if self._fast is not None else None
                replay = ReplayedInitialize(*recorded) if recorded is not None else None
                http_client = bounded_client(limit, sse_lines=False, headers=headers, timeout=timeout, transport=replay)
                async with (
                    http_client as http,
                    streamable_http_client(spec.url, http_client=http, max_sse_event_size=limit) as streams,
                ):
                    yield streams[0], streams[1], None
        except (OSError, httpx2.HTTPError) as exc:
            raise DownstreamError(f"server {spec.name!r}: cannot connect to {spec.url}: {exc}") from exc

    async def _send(
        self, connection: _Connection, method: str, params: Mapping[str, Any] | None, opts: CallOptions
    ) -> dict[str, Any]:
        try:
            return await connection.dispatcher.send_raw_request(method, params, opts)
        except MCPError as exc:
            if self.spec.url is not None:
                from .remote import too_large_error

                over = too_large_error(exc, self.name, method, self.limits.max_message_bytes)
                if over is not None:
                    logger.error("%s", over.error.message.removeprefix("mcp-gateway: "))
                    raise over from exc
            code = exc.error.code
            # The SDK's own word for a connection that ended; a server may answer with the same code (-32000,
            # JSON-RPC's first "server error") for a failure of its own, which passes on as it is.
            if code == CONNECTION_CLOSED and exc.error.message == "Connection closed" and exc.error.data is None:
                with anyio.move_on_after(2):
                    await connection.done.wait()
                note = self._exit_note(connection)
                raise MCPError(code=CONNECTION_CLOSED, message=server_stopped(self.name, method, note)) from exc
            if code == REQUEST_TIMEOUT and "timed out" in exc.error.message:
                seconds = float(opts.get("timeout") or 0)
                raise MCPError(code=REQUEST_TIMEOUT, message=server_timed_out(self.name, method, seconds)) from exc
            raise
