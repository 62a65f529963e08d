"""The relay: a JSON-RPC-level proxy between one client and one server, guarding both directions.

Two SDK `JSONRPCDispatcher`s, one per leg, pass raw dicts: nothing is re-declared or
re-serialised through typed models, so every method, notification and unknown field survives.
Ids, progress tokens and cancellations are per leg and mapped by the dispatchers. Guards act
only on the messages that carry content (see `gateway.guards`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import anyio
import anyio.abc
from mcp.shared.dispatcher import CallOptions, DispatchContext, ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher, progress_token_from_params
from mcp.shared.transport_context import TransportContext

from .downstream import DOWNSTREAM_UNAVAILABLE, Downstream
from .errors import DownstreamError
from .guards import SERVER_TEXT_FIELDS, Guard

__all__ = [
    "DISPATCHER_OWNED", "NoteOrder", "ToolSource", "WrapRelay", "checked_error", "checked_notification",
    "checked_progress", "recheck_tools", "start_recheck",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Ids differ per leg, so these are translated by the dispatchers, never forwarded raw.
DISPATCHER_OWNED = frozenset({"notifications/cancelled", "notifications/progress"})


class NoteOrder:
    """What a server sends besides its answers (log and progress messages, list changes) is checked as it
    comes, each on the SDK's task of its own, but passed on in the order it came; an answer waits for
    everything the server sent before it. (The checks run in parallel: a long one goes to a thread.)"""

    def __init__(self) -> None:
        self._tail: anyio.Event | None = None

    def pending(self) -> anyio.Event | None:
        """Set once everything taken so far has gone out (None: nothing is pending)."""
        return self._tail if self._tail is not None and not self._tail.is_set() else None

    def slot(
        self, check: Awaitable[tuple[bool, T]], send: Callable[[T], Awaitable[None]]
    ) -> Coroutine[Any, Any, None]:
        """Take the next place now; the coroutine returned runs `check` and, once everything taken before
        it has gone out, `send`s what the check kept (nothing, if it withheld it)."""
        previous, done = self.pending(), anyio.Event()
        self._tail = done
        return _deliver(previous, done, check, send)


async def _deliver(
    previous: anyio.Event | None,
    done: anyio.Event,
    check: Awaitable[tuple[bool, T]],
    send: Callable[[T], Awaitable[None]],
) -> None:
    try:
        keep, value = await check
        if previous is not None:
            await previous.wait()
        if keep:
            await send(value)
    finally:
        done.set()


class WrapRelay:
    """One client, one server."""

    def __init__(self, downstream: Downstream, guard: Guard | None, *, client_request_timeout_s: float = 600.0) -> None:
        self.downstream = downstream
        self.guard = guard
        self.client_request_timeout_s = client_request_timeout_s
        self._up: JSONRPCDispatcher[TransportContext] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self.order = NoteOrder()

    async def serve(self, read: Any, write: Any) -> None:
        # initialize runs inline: the client's notifications/initialized must not overtake it downstream.
        up: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
            read, write, inline_methods=frozenset({"initialize"})
        )
        self._up = up
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self.downstream.bind(tg, self._server_request, self._server_notify)
            await up.run(self._client_request, self._client_notify)
            await self.downstream.close()
            tg.cancel_scope.cancel()

    async def _client_request(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        try:
            if method == "initialize":
                result = await self.downstream.initialize(params)
                if self.guard is not None:
                    result = await self.guard.initialize_result(self.downstream.name, result)
                return result
            options: CallOptions = {}
            if progress_token_from_params(params) is not None:
                options["on_progress"] = checked_progress(self.guard, self.downstream.name, dctx.progress, self.order)
            forwarded: Mapping[str, Any] | None = params
            if self.guard is not None:
                forwarded, answer = await self.guard.client_request(self.downstream.name, method, params)
                if answer is not None:
                    return answer
            try:
                result = await self.downstream.request(method, forwarded, options)
            except MCPError as exc:
                before = self.order.pending()
                error = await checked_error(self.guard, self.downstream.name, method, exc)
                if before is not None:
                    await before.wait()
                raise error from None
            before = self.order.pending()  # what the server sent before this answer goes out first
            if self.guard is not None:
                result = await after(before, self.guard.server_result(self.downstream.name, method, forwarded, result))
            elif before is not None:
                await before.wait()
            return result
        except DownstreamError as exc:
            raise MCPError(code=DOWNSTREAM_UNAVAILABLE, message=f"mcp-gateway: {exc}") from exc

    async def _client_notify(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> None:
        if method in DISPATCHER_OWNED:
            return
        await self.downstream.notify(method, params)

    async def _server_request(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        assert self._up is not None
        forwarded: Mapping[str, Any] | None = params
        if self.guard is not None:
            forwarded = await self.guard.server_request(self.downstream.name, method, params)
        return await self._up.send_raw_request(method, forwarded, {"timeout": self.client_request_timeout_s})

    async def _server_notify(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> None:
        if method in DISPATCHER_OWNED or self._up is None:
            return
        if method == "notifications/tools/list_changed" and self.guard is not None and self._tg is not None:
            start_recheck(self._tg, self.downstream, self.guard)
        up = self._up
        await self.order.slot(
            checked_notification(self.guard, self.downstream.name, method, params),
            lambda checked: up.notify(method, checked),
        )


async def after(before: anyio.Event | None, check: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The checked answer, once what the server sent before it has gone out (a refusal waits too)."""
    try:
        return await check
    finally:
        if before is not None:
            await before.wait()


def checked_progress(guard: Guard | None, server: str, report: ProgressFnT, order: NoteOrder) -> ProgressFnT:
    """`report`, with each message checked like a server notification first (left out if blocked), in the
    order of everything else the server sends."""

    async def checked(message: str | None) -> tuple[bool, str | None]:
        if not message or guard is None:
            return True, message
        keep, params = await checked_notification(guard, server, "notifications/progress", {"message": message})
        return True, (params.get("message") if keep and params is not None else None)  # blocked: no message

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        await order.slot(checked(message), lambda kept: report(progress, total, kept))

    return on_progress


async def checked_notification(
    guard: Guard | None, server: str, method: str, params: Mapping[str, Any] | None
) -> tuple[bool, Mapping[str, Any] | None]:
    """(whether to pass a server notification on, and with which params)."""
    if guard is None or method not in SERVER_TEXT_FIELDS or not isinstance(params, Mapping):
        return True, params
    try:
        checked = await guard.server_text(server, method, params)
    except Exception:  # a broken check must not let the text through unchecked
        logger.exception("checking a %s from server %r failed; it was withheld", method, server)
        return False, None
    if checked is None:
        logger.info("withheld a %s from server %r: a policy blocked its text", method, server)
        return False, None
    return True, checked


async def checked_error(guard: Guard | None, server: str, method: str, exc: MCPError) -> MCPError:
    """The error to answer the client with when the server answered `method` with `exc`."""
    if guard is None:
        return exc
    error = exc.error.model_dump(exclude_none=True)
    try:
        checked = await guard.server_error(server, method, error)
    except Exception as failure:  # a broken check must not let the text through unchecked
        logger.exception("checking the error server %r answered %s with failed", server, method)
        return MCPError(code=exc.code, message=f"mcp-gateway: checking the error server {server!r} answered {method} "
                        f"with failed ({failure}), so its text was withheld; see 'mcp-gateway logs'")
    if checked == error:
        return exc
    return MCPError(code=int(checked.get("code", exc.code)), message=str(checked.get("message", "")),
                    data=checked.get("data"))


class ToolSource(Protocol):
    """A server the gateway can ask for its tools itself (a `Downstream`, or the stdio relay's `StdioServer`)."""

    @property
    def name(self) -> str: ...

    async def request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]: ...


def start_recheck(tg: anyio.abc.TaskGroup, downstream: ToolSource, guard: Guard) -> None:
    """Re-check a server's tools after list_changed, in the background.

    The notification goes on to the client at once; a client may call a changed tool without
    listing the tools again, so calls to this server wait until the re-check has settled."""
    settled = guard.catalogue_changing(downstream.name)
    tg.start_soon(_recheck_then_settle, downstream, guard, settled)


async def _recheck_then_settle(downstream: ToolSource, guard: Guard, settled: anyio.Event) -> None:
    try:
        await recheck_tools(downstream, guard)
    finally:
        settled.set()


async def recheck_tools(downstream: ToolSource, guard: Guard) -> None:
    try:
        cursor: str | None = None
        for _ in range(100):
            result = await downstream.request("tools/list", {"cursor": cursor} if cursor else None)
            await guard.server_result(downstream.name, "tools/list", None, result)
            cursor = result.get("nextCursor")
            if not cursor:
                return
    except (MCPError, DownstreamError) as exc:
        logger.warning("re-checking the tools of server %r after list_changed failed: %s", downstream.name, exc)
