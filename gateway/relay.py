"""The relay: a JSON-RPC-level proxy between one client and one server, guarding both directions.

Two SDK `JSONRPCDispatcher`s, one per leg, pass raw dicts: nothing is re-declared or
re-serialised through typed models, so every method, notification and unknown field survives.
Ids and cancellations are per leg and mapped by the dispatchers. A progress token is sent on as one
of the gateway's own (`ProgressRoutes`), so the server's progress notifications go back as it wrote
them with only the token changed. Guards act only on the messages that carry content (see
`gateway.guards`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import anyio
import anyio.abc
from mcp.shared.dispatcher import CallOptions, DispatchContext
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher, progress_token_from_params
from mcp.shared.transport_context import TransportContext

from .downstream import Downstream
from .errors import DOWNSTREAM_UNAVAILABLE, DownstreamError, failure, log_failure
from .guards import SERVER_TEXT_FIELDS, Guard
from .remote_start import RemoteStart

__all__ = [
    "CHECKED_REQUESTS", "DISPATCHER_OWNED", "NoteOrder", "ProgressRoutes", "ToolSource", "WrapRelay", "checked_error",
    "checked_notification", "guarded_call", "recheck_tools", "start_recheck", "unchecked_request",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Ids differ per leg: cancellations are translated by the dispatchers, progress by `ProgressRoutes`.
DISPATCHER_OWNED = frozenset({"notifications/cancelled", "notifications/progress"})
# requests whose params the guard checks: sent without an id (as a notification), they would pass unchecked
CHECKED_REQUESTS = frozenset({"tools/call", "prompts/get"})


def unchecked_request(method: str) -> bool:
    """Whether a client notification is really a checked request sent without an id: dropped, and said so."""
    if method not in CHECKED_REQUESTS:
        return False
    logger.warning("the client sent %s without an id (as a notification); dropped unchecked", method)
    return True
PROGRESS = "notifications/progress"


class ProgressRoutes:
    """The progress tokens of the client's requests in flight to one server, each sent on as a token of the
    gateway's own (the client's need not be unique across the clients and servers one gateway serves).
    What the server reports under one goes back to the request's client as the server wrote it, whole
    numbers, `_meta` and fields of its own included, with only the token the client's again; the SDK's
    progress callback would hand on floats and drop the rest. Reports after the answer, or under a token
    no request to this server holds, go nowhere. The tokens cannot be guessed, so no other party can
    report progress on a request."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[DispatchContext[TransportContext], str | int]] = {}
        self._numbers = itertools.count(1)
        self._prefix = f"mcp-gateway-{secrets.token_hex(8)}-"

    @contextmanager
    def route(
        self, dctx: DispatchContext[TransportContext], params: Mapping[str, Any] | None
    ) -> Iterator[Mapping[str, Any] | None]:
        """`params` to send on (under a token of the gateway's if they carry the client's), for as long as
        the request is in flight."""
        token = progress_token_from_params(params)
        if token is None or params is None:
            yield params
            return
        own = f"{self._prefix}{next(self._numbers)}"
        self._routes[own] = (dctx, token)
        try:
            yield {**params, "_meta": {**params["_meta"], "progressToken": own}}
        finally:
            del self._routes[own]

    def reported(
        self, params: Mapping[str, Any] | None
    ) -> tuple[DispatchContext[TransportContext], dict[str, Any]] | None:
        """The client's context and the report under the client's token; None if no request holds the token."""
        token = params.get("progressToken") if isinstance(params, Mapping) else None
        route = self._routes.get(token) if isinstance(token, str) else None
        if route is None or params is None:
            return None
        dctx, client_token = route
        return dctx, {**params, "progressToken": client_token}

    async def deliver(
        self, guard: Guard | None, server: str, order: NoteOrder, params: Mapping[str, Any] | None
    ) -> None:
        """The server's progress report, checked like its other notifications and passed on in their order
        (its place taken at once); dropped if no request of the client's waits for it."""
        reported = self.reported(params)
        if reported is None:
            logger.debug("dropped a progress report from server %r that no request in flight holds", server)
            return
        dctx, note = reported
        await order.slot(checked_notification(guard, server, PROGRESS, note), lambda kept: dctx.notify(PROGRESS, kept))


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
        self.progress = ProgressRoutes()

    async def serve(self, read: Any, write: Any, answered: RemoteStart | None = None) -> None:
        """Relay one client session; `answered`, the fast start that already answered its initialize."""
        # initialize runs inline: the client's notifications/initialized must not overtake it downstream.
        up: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
            read, write, inline_methods=frozenset({"initialize"})
        )
        self._up = up
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self.downstream.bind(tg, self._server_request, self._server_notify)
            if answered is not None and answered.init_params is not None:
                await self._take_over(answered.init_params)
            await up.run(self._client_request, self._client_notify)
            await self.downstream.close(for_good=True)
            tg.cancel_scope.cancel()

    async def _take_over(self, params: dict[str, Any]) -> None:
        """Connect to the session the fast start initialized (its HTTP layer replays the answer); the
        instructions are checked once the engine is ready. A failure is logged: the next request starts the
        connection again, with an initialize of its own."""
        assert self._tg is not None
        name = self.downstream.name
        try:
            result = await self.downstream.initialize(params)
        except (MCPError, DownstreamError) as exc:
            message = exc.error.message if isinstance(exc, MCPError) else str(exc)
            logger.error("server %r: the session its fast start opened could not be taken over: %s", name, message)
            return
        if self.guard is not None:
            checked = functools.partial(self.guard.initialize_result, name, result)
            self._tg.start_soon(self.guard.in_background, "instructions", name, checked)

    async def _client_request(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        try:
            if method == "initialize":
                result = await self.downstream.initialize(params)
                if self.guard is not None:
                    result = await self.guard.initialize_result(self.downstream.name, result, later=self._tg)
                return result
            return await guarded_call(self.guard, self.downstream, self.order, self.progress, dctx, method, params)
        except DownstreamError as exc:
            raise MCPError(code=DOWNSTREAM_UNAVAILABLE, message=exc.told()) from exc

    async def _client_notify(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> None:
        if method in DISPATCHER_OWNED or unchecked_request(method):
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
        if method == PROGRESS:
            await self.progress.deliver(self.guard, self.downstream.name, self.order, params)
            return
        if method in DISPATCHER_OWNED or self._up is None:
            return
        if method == "notifications/tools/list_changed" and self.guard is not None and self._tg is not None:
            start_recheck(self._tg, self.downstream, self.guard)
        up = self._up
        await self.order.slot(
            checked_notification(self.guard, self.downstream.name, method, params),
            lambda checked: up.notify(method, checked),
        )


async def guarded_call(
    guard: Guard | None,
    server: Downstream,
    order: NoteOrder,
    progress: ProgressRoutes,
    dctx: DispatchContext[TransportContext],
    method: str,
    params: Mapping[str, Any] | None,
    answered: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The client's request sent to `server` through the guard both ways: the guard's own answer if it
    refuses the request, else the server's answer (or error) as checked, once everything the server sent
    before it has gone out. `answered` is called as soon as the server has answered."""
    forwarded: Mapping[str, Any] | None = params
    if guard is not None:
        forwarded, answer = await guard.client_request(server.name, method, params)
        if answer is not None:
            return answer
    try:
        with progress.route(dctx, forwarded) as sent:
            result = await server.request(method, sent)
    except MCPError as exc:
        before = order.pending()
        error = await checked_error(guard, server.name, method, exc)
        if before is not None:
            await before.wait()
        raise error from None
    before = order.pending()  # what the server sent before this answer goes out first
    if answered is not None:
        answered()
    if guard is not None:
        return await after(before, guard.server_result(server.name, method, forwarded, result))
    if before is not None:
        await before.wait()
    return result


async def after(before: anyio.Event | None, check: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The checked answer, once what the server sent before it has gone out (a refusal waits too)."""
    try:
        return await check
    finally:
        if before is not None:
            await before.wait()


async def checked_notification(
    guard: Guard | None, server: str, method: str, params: Mapping[str, Any] | None
) -> tuple[bool, Mapping[str, Any] | None]:
    """(whether to pass a server notification on, and with which params)."""
    if guard is None:
        return True, params
    try:
        if method not in SERVER_TEXT_FIELDS or not isinstance(params, Mapping):
            # one no check reads by name (a server's own, a list_changed's _meta): its strings are masked
            return True, await guard.masked_rest(server, method, params)
        checked = await guard.server_text(server, method, params)
    except Exception as exc:  # a broken check must not let the text through unchecked
        log_failure(logger, exc, "checking a %s from server %r failed; it was withheld", method, server)
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
    except Exception as broken:  # a broken check must not let the text through unchecked
        log_failure(logger, broken, "checking the error server %r answered %s with failed", server, method)
        return MCPError(code=exc.code, message=f"mcp-gateway: checking the error server {server!r} answered {method} "
                        f"with failed ({failure(broken)}), so its text was withheld; see 'mcp-gateway logs'")
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
