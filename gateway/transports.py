"""Newline-delimited JSON-RPC over pipes, in the SDK's `SessionMessage` stream contract.

The relay's dispatchers are the SDK's `JSONRPCDispatcher`; these transports only frame bytes.
They differ from the SDK's stdio transports where a gateway needs more:

* every line is bounded (``max_message_bytes``): an oversized message is discarded as it streams
  in, and the request it belonged to is answered with an error that says so, instead of memory
  growing without limit;
* garbage on a server's stdout is logged and skipped; the connection survives;
* the server's stderr is forwarded (prefixed with its name) and its last lines are kept, so a
  crash can be explained;
* the client side takes fd 0 and 1 for the protocol and points them at /dev/null and stderr, so
  nothing a library prints can corrupt the wire; no worker threads sit in the I/O path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from .errors import MESSAGE_TOO_LARGE, too_large_text
from .frames import Invalid, decode, log_skipped, request_id_in
from .handshake import EarlyStart, spawn_server
from .specs import StdioCommand

__all__ = [
    "MESSAGE_TOO_LARGE",
    "LineFramer",
    "StdioCommand",
    "client_wire",
    "end_server",
    "pipe_streams",
    "stdio_downstream",
    "stdio_upstream",
    "stop_popen",
]

logger = logging.getLogger(__name__)



@dataclass
class LineFramer:
    """Splits a byte stream into lines of at most `limit` bytes; reports what it had to drop."""

    limit: int
    on_line: Callable[[bytes], None]
    on_oversize: Callable[[bytes, int], None]  # (first bytes of the message, its size so far)
    _buffer: bytearray = field(default_factory=bytearray)
    _discarding: bool = False
    _dropped: int = 0
    _head: bytes = b""

    def feed(self, data: bytes) -> None:
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline == -1:
                self._absorb(data[start:])
                return
            self._absorb(data[start:newline])
            self._finish()
            start = newline + 1

    def _absorb(self, piece: bytes) -> None:
        if not piece:
            return
        if self._discarding:
            self._dropped += len(piece)
            return
        self._buffer += piece
        if len(self._buffer) > self.limit:
            self._discarding = True
            self._head = bytes(self._buffer[:4096])
            self._dropped = len(self._buffer)
            self._buffer.clear()

    def _finish(self) -> None:
        if self._discarding:
            self.on_oversize(self._head, self._dropped)
            self._discarding = False
            self._dropped = 0
            self._head = b""
            return
        line = bytes(self._buffer).strip()
        self._buffer.clear()
        if line:
            self.on_line(line)


def _parse(line: bytes, origin: str) -> SessionMessage | None:
    # read as strictly as the stdio relay reads (`frames.decode`: no repeated keys, no NaN), then typed
    decoded = decode(line)
    if isinstance(decoded, Invalid):
        log_skipped(line, origin, decoded.problem)
        return None
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_python(decoded, by_name=False))
    except ValueError as exc:
        log_skipped(line, origin, str(exc).splitlines()[0])
        return None


def _encode(message: SessionMessage) -> bytes:
    return message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


def _too_large(request_id: types.RequestId, size: int, limit: int, who: str) -> SessionMessage:
    return SessionMessage(
        types.JSONRPCError(
            jsonrpc="2.0",
            id=request_id,
            error=types.ErrorData(code=MESSAGE_TOO_LARGE, message=too_large_text(size, limit, who)),
        )
    )


@asynccontextmanager
async def stdio_downstream(
    name: str,
    spec: StdioCommand,
    *,
    max_message_bytes: int,
    started: EarlyStart | None = None,
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage], EarlyStart]
]:
    """Start a stdio MCP server (or take over `started`, one started ahead that nothing has talked to yet) and
    connect to it as SDK message streams; on exit, stop its whole process group."""
    inbound_send, inbound = anyio.create_memory_object_stream[SessionMessage | Exception](64)
    outbound, outbound_receive = anyio.create_memory_object_stream[SessionMessage](64)
    ready: list[SessionMessage] = []

    def on_line(line: bytes) -> None:
        message = _parse(line, f"server {name!r}")
        if message is not None:
            ready.append(message)

    def on_oversize(head: bytes, size: int) -> None:
        request_id = request_id_in(head)
        logger.error("server %r sent a message over %d bytes (limit %d); dropped", name, size, max_message_bytes)
        if request_id is not None and b'"method"' not in head[:200]:
            ready.append(_too_large(request_id, size, max_message_bytes, f"server {name!r}"))

    framer = LineFramer(max_message_bytes, on_line, on_oversize)
    if started is None:
        started = spawn_server(name, spec, max_bytes=max_message_bytes)
    try:
        reader, writer, closers = await pipe_streams(started.process)
    except BaseException:  # cancelled (the gateway is closing) or failed between the start and the pipes
        with anyio.CancelScope(shield=True):
            with suppress(OSError):
                if started.process.stdin is not None:
                    started.process.stdin.close()
            await stop_popen(started.process)
        raise

    async def read_stdout() -> None:
        async with inbound_send:
            framer.feed(started.server_leftover)  # what a fast start read past the answer it took
            while ready:
                await inbound_send.send(ready.pop(0))
            with suppress(ConnectionError, OSError):
                while True:
                    data = await reader.read(1 << 16)
                    if not data:
                        return
                    framer.feed(data)
                    while ready:
                        await inbound_send.send(ready.pop(0))

    async def write_stdin() -> None:
        async with outbound_receive:
            try:
                async for message in outbound_receive:
                    writer.write(_encode(message))
                    await writer.drain()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await inbound_send.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(write_stdin)
        try:
            yield inbound, outbound, started
        finally:
            with anyio.CancelScope(shield=True):
                await end_server(started, writer, closers)
            tg.cancel_scope.cancel()


async def pipe_streams(
    popen: subprocess.Popen[bytes],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, list[Callable[[], None]]]:
    """Asyncio streams over an existing process's stdout and stdin pipes, and how to close them."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), popen.stdout)
    write_transport, write_protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, popen.stdin)
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    return reader, writer, [write_transport.close, read_transport.close]


async def stop_popen(popen: subprocess.Popen[bytes]) -> None:
    """Wait a moment for the process to exit by itself, then end its whole process group (children it
    left behind included)."""
    with anyio.move_on_after(1.0):
        while popen.poll() is None:
            await anyio.sleep(0.01)
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, sig)
        with anyio.move_on_after(grace):
            while popen.poll() is None:
                await anyio.sleep(0.01)
        if popen.poll() is not None:
            break


async def end_server(started: EarlyStart, writer: asyncio.StreamWriter, closers: list[Callable[[], None]]) -> str:
    """Close the server's stdin (the polite way to ask a stdio server to exit), give it a moment, end its
    whole process group, wait (briefly) for its last stderr lines, and say how it ended."""
    writer.close()
    await stop_popen(started.process)
    for close in closers:
        close()
    with anyio.move_on_after(1):
        while started.stderr_thread is not None and started.stderr_thread.is_alive():
            await anyio.sleep(0.01)
    return started.exit_note()


@asynccontextmanager
async def client_wire() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """This process's stdin/stdout as asyncio streams, for the protocol only.

    While open, fd 0 reads /dev/null and fd 1 writes to stderr: a stray print from any library
    lands on stderr instead of corrupting the JSON-RPC stream.
    """
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    reader = asyncio.StreamReader(limit=1 << 16)
    in_file = os.fdopen(wire_in, "rb", buffering=0)
    out_file = os.fdopen(wire_out, "wb", buffering=0)
    read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), in_file)
    write_transport, write_protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out_file)
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    try:
        yield reader, writer
    finally:
        read_transport.close()
        write_transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


@asynccontextmanager
async def stdio_upstream(
    *, max_message_bytes: int, leftover: bytes = b""
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """Serve the protocol on this process's stdin/stdout (see `client_wire`), as SDK message streams; `leftover`
    is what a fast start read from stdin and did not take."""
    inbound_send, inbound = anyio.create_memory_object_stream[SessionMessage | Exception](64)
    outbound, outbound_receive = anyio.create_memory_object_stream[SessionMessage](64)
    replies: list[SessionMessage] = []
    pending: list[SessionMessage] = []

    def on_line(line: bytes) -> None:
        message = _parse(line, "the client")
        if message is not None:
            pending.append(message)

    def on_oversize(head: bytes, size: int) -> None:
        request_id = request_id_in(head)
        logger.error("the client sent a message over %d bytes (limit %d); dropped", size, max_message_bytes)
        if request_id is not None:
            replies.append(_too_large(request_id, size, max_message_bytes, "the client"))

    framer = LineFramer(max_message_bytes, on_line, on_oversize)

    async with client_wire() as (reader, writer):

        async def read_stdin() -> None:
            async with inbound_send:
                data = leftover
                while True:
                    framer.feed(data)
                    while replies:
                        await outbound.send(replies.pop(0))
                    while pending:
                        await inbound_send.send(pending.pop(0))
                    data = await reader.read(1 << 16)
                    if not data:
                        return

        async def write_stdout() -> None:
            async with outbound_receive:
                with suppress(ConnectionError, BrokenPipeError):
                    async for message in outbound_receive:
                        writer.write(_encode(message))
                        await writer.drain()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_stdin)
            tg.start_soon(write_stdout)
            yield inbound, outbound
            tg.cancel_scope.cancel()
