"""The server side of the stdio relay: the process, its pipes, its output line by line, its end,
its restarts, and the gateway's own requests to it.

A process is started by `gateway.handshake` (at once, before the gateway has loaded) or, after it
stopped, again here; either way its stderr is already being forwarded and its last lines kept.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR, REQUEST_TIMEOUT

from .downstream import Restarts
from .frames import Message, encode
from .handshake import EarlyStart, spawn_server
from .specs import Limits, ServerSpec
from .transports import LineFramer, end_server, pipe_streams

__all__ = ["ServerLink", "StdioServer"]

logger = logging.getLogger(__name__)


@dataclass
class ServerLink:
    """One run of the server (a restart is a new link with the next generation number)."""

    started: EarlyStart
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    generation: int
    closers: list[Callable[[], None]]
    done: anyio.Event = field(default_factory=anyio.Event)

    @classmethod
    async def open(cls, started: EarlyStart, generation: int) -> ServerLink:
        reader, writer, closers = await pipe_streams(started.process)
        return cls(started, reader, writer, generation, closers)

    @property
    def alive(self) -> bool:
        return not self.done.is_set()

    def send(self, frame: bytes) -> None:
        if self.alive:
            self.writer.write(frame + b"\n")

    async def pump(self, framer: LineFramer, after_chunk: Callable[[], Awaitable[None]]) -> None:
        """Feed everything the server writes to `framer` until its output closes."""
        framer.feed(self.started.server_leftover)
        while True:
            try:
                data = await self.reader.read(1 << 16)
            except (ConnectionError, OSError):
                return
            if not data:
                return
            framer.feed(data)
            await after_chunk()

    async def finish(self) -> str:
        """The output closed: make sure the whole process group is gone and say how it ended."""
        self.done.set()
        return await self.stop()

    async def stop(self) -> str:
        return await end_server(self.started, self.writer, self.closers)


class StdioServer:
    """The server side of the stdio relay: one process at a time, started again on demand after it
    stops (the client's initialize replayed to it), and the gateway's own requests to it.

    What the server writes goes to `on_line` line by line (`on_oversize` for a line over the limit);
    when a run ends, `on_gone(link, how it ended)` lets the relay answer what that run still owed."""

    def __init__(
        self,
        spec: ServerSpec,
        *,
        limits: Limits,
        on_line: Callable[[bytes], None],
        on_oversize: Callable[[bytes, int], None],
        on_gone: Callable[[ServerLink, str], None],
        after_chunk: Callable[[], Awaitable[None]],
    ) -> None:
        assert spec.stdio is not None, "a stdio server needs a command"
        self.spec = spec
        self.limits = limits
        self.init_params: dict[str, Any] | None = None  # the client's initialize, replayed after a restart
        self.link: ServerLink | None = None
        self.starts = 0
        self._on_line, self._on_oversize, self._on_gone, self._after_chunk = on_line, on_oversize, on_gone, after_chunk
        self._restarts = Restarts(spec, limits.restart_backoff_s)
        self._lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._own: dict[str, asyncio.Future[Message]] = {}
        self._own_prefix = f"mcp-gateway-{uuid.uuid4().hex[:8]}-"  # ids no client uses
        self._own_ids = itertools.count(1)

    @property
    def name(self) -> str:
        return self.spec.name

    def bind(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg

    async def connect(self, started: EarlyStart) -> ServerLink:
        self.starts += 1
        link = await ServerLink.open(started, self.starts)
        self.link = link
        assert self._tg is not None, "StdioServer.bind() must be called first"
        self._tg.start_soon(self._read, link)
        return link

    async def ensure(self, *, replay: bool = True) -> ServerLink:
        """The running server, started (again) if it is not running."""
        link = self.link
        if link is not None and link.alive:
            return link
        async with self._lock:
            link = self.link
            if link is not None and link.alive:
                return link
            return await self._start(replay=replay and self.init_params is not None)

    async def stop(self) -> None:
        if self.link is not None:
            with anyio.CancelScope(shield=True):
                await self.link.stop()

    async def _start(self, *, replay: bool) -> ServerLink:
        await self._restarts.pace(self.starts)
        assert self.spec.stdio is not None
        link = await self.connect(spawn_server(self.name, self.spec.stdio, max_bytes=self.limits.max_message_bytes))
        if replay and self.init_params is not None:
            try:
                await self._request(link, "initialize", self.init_params, self.limits.init_timeout_s)
            except MCPError as exc:
                raise self._restarts.not_initialized(exc) from exc
            link.send(encode({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        return link

    async def _read(self, link: ServerLink) -> None:
        try:
            framer = LineFramer(self.limits.max_message_bytes, self._on_line, self._on_oversize)
            await link.pump(framer, self._after_chunk)
        finally:
            with anyio.CancelScope(shield=True):
                note = await link.finish()
                self._restarts.last_exit = note
                for own_id, future in list(self._own.items()):
                    del self._own[own_id]
                    if not future.done():
                        future.set_exception(
                            MCPError(code=CONNECTION_CLOSED, message=f"server {self.name!r} stopped ({note})")
                        )
                self._on_gone(link, note)

    # --- the gateway's own requests ------------------------------------------------------------

    def take_answer(self, message: Message) -> bool:
        """True when `message` answers one of the gateway's own requests (it is consumed here)."""
        request_id = message.get("id")
        if not (isinstance(request_id, str) and request_id.startswith(self._own_prefix)):
            return False
        future = self._own.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(message)
        return True

    async def request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        """A request of the gateway's own (see `gateway.relay.recheck_tools`)."""
        link = await self.ensure()
        return await self._request(link, method, params, (opts or {}).get("timeout") or self.limits.request_timeout_s)

    async def _request(
        self, link: ServerLink, method: str, params: Mapping[str, Any] | None, timeout_s: float
    ) -> dict[str, Any]:
        request_id = f"{self._own_prefix}{next(self._own_ids)}"
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._own[request_id] = future
        frame: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            frame["params"] = dict(params)
        link.send(encode(frame))
        try:
            with anyio.fail_after(timeout_s):
                answer = await future
        except TimeoutError:
            raise MCPError(
                code=REQUEST_TIMEOUT, message=f"server {self.name!r} did not answer {method} within {timeout_s:g} s"
            ) from None
        finally:
            self._own.pop(request_id, None)
        error = answer.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            text = error.get("message") if isinstance(error, dict) else None
            raise MCPError(code=code if isinstance(code, int) else INTERNAL_ERROR, message=str(text or error))
        result = answer.get("result")
        return result if isinstance(result, dict) else {}
