"""The stdio path of ``wrap``: frames relayed as bytes, parsed once, re-encoded only when a guard acts.

One client on this process's stdin/stdout, one server process on pipes (`gateway.stdio_server`).
There is one of each, so request ids, progress tokens and cancellations need no translating: they
pass as they are. The gateway's own requests to the server (the client's initialize replayed after
a restart, a re-check of the tools after list_changed) carry ids of a form no client uses, and
their answers never reach the client.

A frame that carries nothing to check (a ping, a progress notification, resources/list, a method
this relay has never heard of) is written out as the very bytes that came in. Requests and
results that carry content go through the guard (`gateway.guards`) on a task of their own, so a
slow check never holds up other traffic. What `gateway.relay` does over the SDK's dispatchers for
HTTP clients and remote servers, this does for stdio without validating and re-serialising every
message: the same restart after a crash with the initialize replayed, the same per-request
timeout with a cancellation sent downstream, the same bounded lines and skipped garbage.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR, REQUEST_TIMEOUT

from .errors import (
    DOWNSTREAM_UNAVAILABLE,
    MESSAGE_TOO_LARGE,
    DownstreamError,
    failure,
    log_failure,
    server_stopped,
    server_timed_out,
    too_large_text,
)
from .frames import (
    INVALID_REQUEST,
    Invalid,
    Message,
    decode,
    encode,
    error_frame,
    error_message,
    log_skipped,
    request_id_in,
    request_key,
)
from .guards import SERVER_TEXT_FIELDS, Guard
from .handshake import EarlyStart
from .relay import CHECKED_REQUESTS, NoteOrder, checked_notification, start_recheck, unchecked_request
from .specs import Limits, ServerSpec
from .stdio_server import ServerLink, StdioServer
from .subjects import rest_sides
from .transports import LineFramer, client_wire

__all__ = ["GUARDED_REQUESTS", "GUARDED_RESULTS", "StdioRelay"]

logger = logging.getLogger(__name__)

_SEE_LOG = (
    "with MCP_GATEWAY_LOG_LEVEL=DEBUG the gateway's stderr log has the details (please report it: a check should "
    "never fail this way)"
)
GUARDED_REQUESTS = CHECKED_REQUESTS  # client requests whose params are checked
_ENVELOPE = frozenset({"jsonrpc", "id", "method", "params", "result", "error"})
# results the guard reads (tool descriptions and instructions included); everything else passes as bytes
GUARDED_RESULTS = frozenset(
    {
        "initialize", "tools/list", "prompts/list", "tools/call", "tasks/result", "resources/read", "prompts/get",
        "completion/complete", "resources/list", "resources/templates/list", "tasks/get", "tasks/list", "tasks/cancel",
    }
)


@dataclass
class _Pending:
    """A client request the server has not answered yet."""

    method: str
    params: dict[str, Any] | None
    generation: int
    timeout_s: float
    timer: asyncio.TimerHandle | None = None


class StdioRelay:
    """One client on stdio, one stdio server."""

    def __init__(
        self,
        spec: ServerSpec,
        guard: Guard | None,
        *,
        limits: Limits,
    ) -> None:
        self.name = spec.name
        self.guard = guard
        self.limits = limits
        self.server = StdioServer(
            spec,
            limits=limits,
            on_line=self._from_server,
            on_oversize=self._server_oversize,
            on_gone=self._fail_owed,
            after_chunk=self._drain_client,
        )
        self.init_result: dict[str, Any] | None = None
        self._pending: dict[str | int, _Pending] = {}
        self._guarding: set[str | int] = set()  # client requests still being checked
        self._cancelled: set[str | int] = set()  # ... and cancelled by the client meanwhile
        self._client: asyncio.StreamWriter | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._checks: set[asyncio.Task[None]] = set()  # guard checks under way
        self.order = NoteOrder()  # server notifications go out in the order they came, answers after them

    # --- running ---------------------------------------------------------------------------

    async def serve(self, early: EarlyStart | None = None) -> None:
        async with client_wire() as (reader, writer), anyio.create_task_group() as tg:
            self._client, self._tg = writer, tg
            self.server.bind(tg)
            leftover = b""
            if early is not None:
                leftover = early.client_leftover
                if early.answered:
                    self.server.init_params, self.init_result = early.init_params, early.init_result
                await self.server.connect(early)
                if self.guard is not None and self.init_result is not None:
                    # The fast handshake answered initialize before the engine loaded: check and pin the
                    # instructions now (a finding is logged and audited; the tools are still screened).
                    checked = functools.partial(self.guard.initialize_result, self.name, self.init_result)
                    tg.start_soon(self.guard.in_background, "instructions", self.name, checked)
            try:
                await self._read_client(reader, leftover)
            finally:
                for task in self._checks:
                    task.cancel()
            await self.server.stop()
            tg.cancel_scope.cancel()

    def _spawn(self, check: Coroutine[Any, Any, None]) -> None:
        """Run one message's check on a task of its own. A plain asyncio task: a task group's start_soon
        costs ten times as much, on every guarded message; the checks handle their own errors."""
        task = asyncio.get_running_loop().create_task(check)
        self._checks.add(task)
        task.add_done_callback(self._check_done)

    def _check_done(self, task: asyncio.Task[None]) -> None:
        self._checks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a guard check failed unexpectedly", exc_info=task.exception())

    async def _read_client(self, reader: asyncio.StreamReader, leftover: bytes) -> None:
        lines: list[bytes] = []

        def on_oversize(head: bytes, size: int) -> None:
            limit = self.limits.max_message_bytes
            logger.error("the client sent a message over %d bytes (limit %d); dropped", size, limit)
            request_id = request_id_in(head)
            if request_id is not None:
                self._to_client(
                    error_frame(
                        request_id, MESSAGE_TOO_LARGE, too_large_text(size, self.limits.max_message_bytes, "the client")
                    )
                )

        framer = LineFramer(self.limits.max_message_bytes, lines.append, on_oversize)
        data = leftover
        while True:
            framer.feed(data)
            for line in lines:
                await self._from_client(line)
            lines.clear()
            link = self.server.link
            if link is not None and link.alive:
                with suppress(ConnectionError, OSError):  # the server is gone; its reader notices and says so
                    await link.writer.drain()
            try:
                data = await reader.read(1 << 16)
            except (ConnectionError, OSError):
                return
            if not data:
                return

    def _server_oversize(self, head: bytes, size: int) -> None:
        logger.error(
            "server %r sent a message over %d bytes (limit %d); dropped", self.name, size, self.limits.max_message_bytes
        )
        request_id = request_id_in(head)
        if request_id is not None and b'"method"' not in head[:200]:
            text = too_large_text(size, self.limits.max_message_bytes, f"server {self.name!r}")
            self._answered(
                {"jsonrpc": "2.0", "id": request_id, "error": {"code": MESSAGE_TOO_LARGE, "message": text}}, None
            )

    async def _drain_client(self) -> None:
        if self._client is not None:
            with suppress(ConnectionError, OSError):  # the client is gone; its reader ends the session
                await self._client.drain()

    def _fail_owed(self, server: ServerLink, note: str) -> None:
        """Answer the client's requests a server that stopped still owed (its own: `StdioServer`)."""
        for key, pending in list(self._pending.items()):
            if pending.generation != server.generation:
                continue
            del self._pending[key]
            if pending.timer is not None:
                pending.timer.cancel()
            self._to_client(
                error_frame(
                    key,
                    CONNECTION_CLOSED,
                    server_stopped(self.name, pending.method, note),
                )
            )

    # --- client → server -------------------------------------------------------------------

    async def _from_client(self, line: bytes) -> None:
        message = decode(line)
        if isinstance(message, Invalid):
            self._refuse_line(line, message)
            return
        method = message.get("method")
        if method is None:  # the client's answer to a server request
            if self.server.link is not None:
                self.server.link.send(line)
            return
        if "id" not in message:
            if unchecked_request(method):  # a checked request sent as a notification would pass unchecked
                return
            self._client_notification(method, message, line)
            return
        params = message.get("params")
        request_id = message["id"]
        key = request_key(request_id)
        if key is None:
            self._to_client(
                error_frame(None, INVALID_REQUEST, f"mcp-gateway: the request id {request_id!r} is not a string or an "
                            "integer; the request was not sent on")
            )
            return
        if key in self._pending or key in self._guarding:
            # two answers could not be told apart: the second request would take the first one's answer
            self._to_client(
                error_frame(request_id, INVALID_REQUEST, f"mcp-gateway: the request id {request_id!r} is already in "
                            "use by a request still unanswered; the request was not sent on")
            )
            return
        if method == "initialize":
            self.server.init_params = dict(params) if isinstance(params, dict) else {}
            await self._forward(request_id, method, params, line, timeout_s=self.limits.init_timeout_s, replay=False)
        elif self.guard is not None and method in GUARDED_REQUESTS:
            self._guarding.add(key)  # taken now: the next line may reuse the id before the check starts
            self._spawn(self._guarded_request(self.guard, message, line))
        else:
            await self._forward(request_id, method, params, line)

    def _refuse_line(self, line: bytes, invalid: Invalid) -> None:
        """A line from the client that is no JSON-RPC message: logged and, unless it was an answer, answered
        with an error (a client waiting on a request it malformed learns why instead of waiting)."""
        log_skipped(line, "the client", invalid.problem, "not sent on")
        if invalid.request_id is not None and b'"method"' not in line[:4096]:
            return  # a malformed answer to one of the server's requests: there is no one to tell
        self._to_client(error_frame(invalid.request_id, invalid.code, f"mcp-gateway: {invalid.problem}"))

    def _client_notification(self, method: str, message: Message, line: bytes) -> None:
        if method == "notifications/cancelled":
            params = message.get("params")
            key = request_key(params.get("requestId")) if isinstance(params, dict) else None
            if key is not None:
                if key in self._guarding:
                    self._cancelled.add(key)
                pending = self._pending.pop(key, None)  # the client will ignore a late answer; so do we
                if pending is not None and pending.timer is not None:
                    pending.timer.cancel()
        link = self.server.link
        if link is not None and link.alive:
            link.send(line)
        elif method != "notifications/initialized":
            logger.debug("dropped %s for server %r: not running", method, self.name)

    async def _guarded_request(self, guard: Guard, message: Message, line: bytes) -> None:
        request_id, method, params = message["id"], message["method"], message.get("params")
        key = request_key(request_id)
        refusal: bytes | None = None
        try:
            forwarded, answer = await guard.client_request(
                self.name, method, params if isinstance(params, dict) else None
            )
        except MCPError as exc:
            refusal = error_frame(request_id, exc.error.code, exc.error.message)
        except Exception as exc:  # a broken check must not let the request through unchecked
            log_failure(logger, exc, "checking %s for server %r failed; the request was refused", method, self.name)
            refusal = error_frame(
                request_id,
                INTERNAL_ERROR,
                f"mcp-gateway: checking this {method} failed ({failure(exc)}), so it was refused; {_SEE_LOG}",
            )
        finally:
            if key is not None:
                self._guarding.discard(key)
        if key is not None and key in self._cancelled:
            self._cancelled.discard(key)
            return  # cancelled while it was being checked: the client expects no answer, the server never sees it
        if refusal is not None:
            self._to_client(refusal)
            return
        if answer is not None:
            self._to_client(encode({"jsonrpc": "2.0", "id": request_id, "result": answer}))
            return
        unchanged = forwarded == params or (not forwarded and not params)
        await self._forward(
            request_id, method, forwarded, line if unchanged else encode({**message, "params": forwarded})
        )

    async def _forward(
        self,
        request_id: Any,
        method: str,
        params: Any,
        frame: bytes,
        *,
        timeout_s: float | None = None,
        replay: bool = True,
    ) -> None:
        try:
            server = await self.server.ensure(replay=replay)
        except DownstreamError as exc:
            self._to_client(error_frame(request_id, DOWNSTREAM_UNAVAILABLE, exc.told()))
            return
        except MCPError as exc:
            self._to_client(error_frame(request_id, exc.error.code, exc.error.message))
            return
        key = request_key(request_id)
        if key is not None:
            pending = _Pending(
                method,
                params if isinstance(params, dict) else None,
                server.generation,
                timeout_s or self.limits.request_timeout_s,
            )
            pending.timer = asyncio.get_running_loop().call_later(pending.timeout_s, self._timed_out, key, pending)
            self._pending[key] = pending
        server.send(frame)

    def _timed_out(self, key: str | int, pending: _Pending) -> None:
        if self._pending.get(key) is not pending:
            return
        del self._pending[key]
        self._to_client(
            error_frame(
                key,
                REQUEST_TIMEOUT,
                server_timed_out(self.name, pending.method, pending.timeout_s),
            )
        )
        server = self.server.link
        if server is not None and pending.method != "initialize":
            reason = f"mcp-gateway: no answer within {pending.timeout_s:g} s"
            server.send(
                encode(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/cancelled",
                        "params": {"requestId": key, "reason": reason},
                    }
                )
            )

    # --- server → client -------------------------------------------------------------------

    def _from_server(self, line: bytes) -> None:
        message = decode(line)
        if isinstance(message, Invalid):
            log_skipped(line, f"server {self.name!r}", message.problem)
            if message.request_id is not None and b'"method"' not in line[:4096]:
                # an answer no strict client would read as the gateway checked it: the request gets an error
                text = f"mcp-gateway: server {self.name!r} sent a malformed answer ({message.problem}); dropped"
                self._answered(error_message(message.request_id, INTERNAL_ERROR, text), None)
            return
        if message.keys() - _ENVELOPE:  # members JSON-RPC does not have: not passed on, read by no check
            message = {key: value for key, value in message.items() if key in _ENVELOPE}
            line = encode(message)
        method = message.get("method")
        if method is None:
            self._answered(message, line)
            return
        if "id" in message:
            if self.guard is not None and method in ("sampling/createMessage", "elicitation/create"):
                self._spawn(self._guarded_server_request(self.guard, message, line))
                return
        elif self.guard is not None and method in SERVER_TEXT_FIELDS and isinstance(message.get("params"), dict):
            self._spawn(self.order.slot(self._checked_notification(self.guard, message, line), self._write))
            return
        elif method == "notifications/tools/list_changed" and self.guard is not None:
            assert self._tg is not None
            start_recheck(self._tg, self.server, self.guard)
        if self.guard is not None and rest_sides(message.get("params")):
            # a request or notification no check reads by name: its strings are masked like a result's
            self._spawn(self.order.slot(self._masked(self.guard, message, line), self._write))
            return
        if self.order.pending() is not None:
            self._spawn(self.order.slot(_kept(line), self._write))  # behind the notifications being checked
            return
        self._to_client(line)

    async def _write(self, frame: bytes) -> None:
        self._to_client(frame)

    async def _masked(self, guard: Guard, message: Message, line: bytes) -> tuple[bool, bytes]:
        params = message.get("params")
        try:
            masked = await guard.masked_rest(self.name, str(message.get("method")), params)
        except Exception as exc:  # a broken check must not let the text through unchecked
            log_failure(
                logger, exc, "checking a %s from server %r failed; it was withheld", message.get("method"), self.name
            )
            link = self.server.link
            if "id" in message and link is not None:  # the server waits for an answer: it gets one
                link.send(error_frame(message["id"], INTERNAL_ERROR, "mcp-gateway: the request could not be checked"))
            return False, b""
        return True, (line if masked is params else encode({**message, "params": masked}))

    async def _masked_answer(self, guard: Guard, pending: _Pending, message: Message, line: bytes | None,
                             notes: anyio.Event | None) -> None:
        result = message["result"]
        try:
            masked = await guard.masked_rest(self.name, pending.method, result)
            frame = line if masked is result and line is not None else encode({**message, "result": masked})
        except Exception as exc:  # a broken check must not let the text through unchecked
            log_failure(
                logger, exc, "checking the answer of server %r to %s failed; withheld", self.name, pending.method
            )
            frame = error_frame(
                message["id"],
                INTERNAL_ERROR,
                f"mcp-gateway: checking this answer failed ({failure(exc)}), so it was withheld; {_SEE_LOG}",
            )
        if notes is not None:
            await notes.wait()
        self._to_client(frame)

    async def _checked_notification(self, guard: Guard, message: Message, line: bytes) -> tuple[bool, bytes]:
        params = message.get("params")
        keep, checked = await checked_notification(guard, self.name, message["method"], params)
        return keep, (line if checked == params else encode({**message, "params": checked}))

    def _answered(self, message: Message, line: bytes | None) -> None:
        if self.server.take_answer(message):
            return
        request_id = message.get("id")
        key = request_key(request_id)
        pending = self._pending.pop(key, None) if key is not None else None
        if pending is None:
            logger.debug("server %r answered request %r, which is no longer awaited; dropped", self.name, request_id)
            return
        if pending.timer is not None:
            pending.timer.cancel()
        notes = self.order.pending()
        if "result" in message and (
            pending.method == "initialize" or (self.guard is not None and pending.method in GUARDED_RESULTS)
        ):
            self._spawn(self._guarded_result(pending, message, line, notes))
            return
        if self.guard is not None and isinstance(message.get("error"), dict):
            self._spawn(self._guarded_error(self.guard, pending, message, line, notes))
            return
        if self.guard is not None and rest_sides(message.get("result")):  # the answer to ping, subscribe, ...
            self._spawn(self._masked_answer(self.guard, pending, message, line, notes))
            return
        if notes is not None:
            self._spawn(self._write_after(notes, line if line is not None else encode(message)))
            return
        self._to_client(line if line is not None else encode(message))

    async def _write_after(self, notes: anyio.Event, frame: bytes) -> None:
        await notes.wait()
        self._to_client(frame)

    async def _guarded_error(
        self, guard: Guard, pending: _Pending, message: Message, line: bytes | None, notes: anyio.Event | None
    ) -> None:
        error = message["error"]
        try:
            checked = await guard.server_error(self.name, pending.method, error)
        except Exception as exc:  # a broken check must not let the text through unchecked
            log_failure(
                logger, exc, "checking the error server %r answered %s with failed", self.name, pending.method
            )
            checked = {
                "code": error.get("code", INTERNAL_ERROR),
                "message": f"mcp-gateway: checking the error server {self.name!r} answered {pending.method} with "
                f"failed ({failure(exc)}), so its text was withheld; {_SEE_LOG}",
            }
        if notes is not None:
            await notes.wait()
        if checked == error:  # unchanged: the bytes that came in
            self._to_client(line if line is not None else encode(message))
        else:
            self._to_client(encode({**message, "error": checked}))

    async def _guarded_result(
        self, pending: _Pending, message: Message, line: bytes | None, notes: anyio.Event | None = None
    ) -> None:
        result = message["result"]
        request_id = message["id"]
        checked = result
        if isinstance(result, dict):
            try:
                if pending.method == "initialize":
                    self.init_result = result
                    if self.guard is not None:
                        checked = await self.guard.initialize_result(self.name, result, later=self._tg)
                elif self.guard is not None:
                    checked = await self.guard.server_result(self.name, pending.method, pending.params, result)
            except MCPError as exc:
                if notes is not None:
                    await notes.wait()  # a refusal, too, comes after what the server sent before it
                self._to_client(error_frame(request_id, exc.error.code, exc.error.message))
                return
            except Exception as exc:  # a broken check must not let the answer through unchecked
                log_failure(
                    logger, exc, "checking the answer to %s from server %r failed; it was withheld", pending.method,
                    self.name,
                )
                if notes is not None:
                    await notes.wait()
                self._to_client(
                    error_frame(
                        request_id,
                        INTERNAL_ERROR,
                        f"mcp-gateway: checking the answer to {pending.method} failed ({failure(exc)}), so it was "
                        f"withheld; {_SEE_LOG}",
                    )
                )
                return
        if notes is not None:
            await notes.wait()
        if checked is result and line is not None:
            self._to_client(line)
        else:
            self._to_client(encode({**message, "result": checked}))
        if self.guard is not None:
            self.guard.flush_audit()

    async def _guarded_server_request(self, guard: Guard, message: Message, line: bytes) -> None:
        params = message.get("params")
        try:
            forwarded = await guard.server_request(
                self.name, message["method"], params if isinstance(params, dict) else None
            )
        except MCPError as exc:
            if self.server.link is not None:
                self.server.link.send(error_frame(message["id"], exc.error.code, exc.error.message))
            return
        except Exception as exc:  # refuse rather than pass it unchecked
            log_failure(
                logger, exc, "checking a %s from server %r failed; it was refused", message["method"], self.name
            )
            if self.server.link is not None:
                self.server.link.send(
                    error_frame(
                        message["id"],
                        INTERNAL_ERROR,
                        f"mcp-gateway: checking this request failed ({failure(exc)}), so it was refused; {_SEE_LOG}",
                    )
                )
            return
        unchanged = forwarded == params or (not forwarded and not params)
        self._to_client(line if unchanged else encode({**message, "params": forwarded}))

    def _to_client(self, frame: bytes) -> None:
        if self._client is not None and not self._client.is_closing():
            self._client.write(frame + b"\n")


async def _kept(frame: bytes) -> tuple[bool, bytes]:
    return True, frame
