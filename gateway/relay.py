"""The relay: a JSON-RPC-level proxy between one client and one server, guarding both directions.

Two SDK `JSONRPCDispatcher`s, one per leg, pass raw dicts: nothing is re-declared or
re-serialised through typed models, so every method, notification and unknown field survives.
Ids, progress tokens and cancellations are per leg and mapped by the dispatchers. Guards act
only on the messages that carry content (see `gateway.guards`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

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
    "DISPATCHER_OWNED", "ToolSource", "WrapRelay", "checked_error", "checked_notification", "checked_progress",
    "recheck_tools", "start_recheck",
]

logger = logging.getLogger(__name__)

# Ids differ per leg, so these are translated by the dispatchers, never forwarded raw.
DISPATCHER_OWNED = frozenset({"notifications/cancelled", "notifications/progress"})


class WrapRelay:
    """One client, one server."""

    def __init__(self, downstream: Downstream, guard: Guard | None, *, client_request_timeout_s: float = 600.0) -> None:
        self.downstream = downstream
        self.guard = guard
        self.client_request_timeout_s = client_request_timeout_s
        self._up: JSONRPCDispatcher[TransportContext] | None = None
        self._tg: anyio.abc.TaskGroup | None = None

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
                options["on_progress"] = checked_progress(self.guard, self.downstream.name, dctx.progress)
            forwarded: Mapping[str, Any] | None = params
            if self.guard is not None:
                forwarded, answer = await self.guard.client_request(self.downstream.name, method, params)
                if answer is not None:
                    return answer
            try:
                result = await self.downstream.request(method, forwarded, options)
            except MCPError as exc:
                raise await checked_error(self.guard, self.downstream.name, method, exc) from None
            if self.guard is not None:
                result = await self.guard.server_result(self.downstream.name, method, forwarded, result)
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
        checked = await checked_notification(self.guard, self.downstream.name, method, params)
        if checked is not None:
            await self._up.notify(method, checked)


def checked_progress(guard: Guard | None, server: str, report: ProgressFnT) -> ProgressFnT:
    """`report`, with each message checked like a server notification first (and left out if blocked)."""
    if guard is None:
        return report

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message:
            checked = await checked_notification(guard, server, "notifications/progress", {"message": message})
            message = None if checked is None else checked.get("message")
        await report(progress, total, message)

    return on_progress


async def checked_notification(
    guard: Guard | None, server: str, method: str, params: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The params to pass a server notification on with, or None to withhold it."""
    if guard is None or method not in SERVER_TEXT_FIELDS or not isinstance(params, Mapping):
        return params if params is not None else {}
    try:
        checked = await guard.server_text(server, method, params)
    except Exception:  # a broken check must not let the text through unchecked
        logger.exception("checking a %s from server %r failed; it was withheld", method, server)
        return None
    if checked is None:
        logger.info("withheld a %s from server %r: a policy blocked its text", method, server)
    return checked


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
