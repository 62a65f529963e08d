"""Run mode: one gateway in front of every server of an mcp.json.

Names are always prefixed, so they never change when servers come and go: tool ``read`` of server
``fs`` is ``fs__read``, prompt ``p`` is ``fs__p``, resource ``file:///x`` is ``fs+file:///x``
(also inside results, e.g. resource links). Requests are routed by that prefix; notifications
and the server's own requests to the client are routed back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import anyio.abc
from mcp.shared.dispatcher import DispatchContext
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from mcp_types import METHOD_NOT_FOUND

from .downstream import Downstream
from .errors import DOWNSTREAM_UNAVAILABLE, DownstreamError
from .guards import Guard
from .mcpjson import server_prefix
from .relay import (
    DISPATCHER_OWNED,
    PROGRESS,
    NoteOrder,
    ProgressRoutes,
    checked_notification,
    guarded_call,
    start_recheck,
    unchecked_request,
)
from .run_start import GATEWAY_VERSION, RunStart, late_note, merged_initialize

__all__ = ["SEP", "RouterRelay", "prefix_name"]

logger = logging.getLogger(__name__)

SEP = "__"
UNKNOWN_TARGET = -32602
RETRY_AFTER_S = 30.0  # a server that failed to start is tried again (in the background) after this long
_LIST_KEYS = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}


def prefix_name(server: str, name: str) -> str:
    return f"{server_prefix(server)}{SEP}{name}"


class RouterRelay:
    def __init__(
        self,
        downstreams: list[Downstream],
        guard: Guard | None,
        *,
        version: str = GATEWAY_VERSION,
        client_request_timeout_s: float = 600.0,
        start_grace_s: float = 10.0,
    ) -> None:
        self.by_prefix: dict[str, Downstream] = {}
        for downstream in downstreams:
            prefix = server_prefix(downstream.name)
            other = self.by_prefix.get(prefix)
            if other is not None:
                raise DownstreamError(
                    f"the servers {other.name!r} and {downstream.name!r} in the mcp.json both become the prefix "
                    f"{prefix!r} (names keep letters, digits, '_', '.' and '-'); rename one of them"
                )
            self.by_prefix[prefix] = downstream
        self.guard = guard
        self.version = version
        self.client_request_timeout_s = client_request_timeout_s
        self.start_grace_s = start_grace_s
        self._up: JSONRPCDispatcher[TransportContext] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self.unavailable: dict[str, str] = {}
        self._failed_at: dict[str, float] = {}  # when each unavailable server last failed to start
        self._starting: set[str] = set()  # servers whose first start is still under way, or being retried
        self._client_initialized = False
        self._init_params: dict[str, Any] = {}  # the client's initialize, to start a server again with
        self.orders = {prefix: NoteOrder() for prefix in self.by_prefix}
        # one per server: a server can report progress only on its own requests
        self.progress = {prefix: ProgressRoutes() for prefix in self.by_prefix}

    async def serve(self, read: Any, write: Any, answered: RunStart | None = None) -> None:
        """Relay one client session; `answered`, the fast start that already answered its initialize."""
        up: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
            read, write, inline_methods=frozenset({"initialize"})
        )
        self._up = up
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for prefix, downstream in self.by_prefix.items():
                downstream.bind(tg, self._server_request_for(prefix), self._server_notify_for(prefix))
            if answered is not None:
                await self._adopt(answered)
            await up.run(self._client_request, self._client_notify)
            for downstream in self.by_prefix.values():
                await downstream.close(for_good=True)
            tg.cancel_scope.cancel()

    # --- routing helpers -------------------------------------------------------------------

    def _split(self, value: str, sep: str) -> tuple[Downstream, str]:
        # the longest server prefix that fits: a server may itself be called "pager__work"
        heads = [prefix for prefix in self.by_prefix if value.startswith(prefix + sep)]
        head = max(heads, key=len) if heads else ""
        rest = value[len(head) + len(sep) :]
        downstream = self.by_prefix.get(head) if heads else None
        if downstream is None:
            known = ", ".join(sorted(self.by_prefix))
            raise MCPError(
                code=UNKNOWN_TARGET,
                message=(
                    f"mcp-gateway: {value!r} does not name a server; names look like '<server>{sep}<name>' "
                    f"with server one of: {known}"
                ),
            )
        return downstream, rest

    def _available(self) -> list[tuple[str, Downstream]]:
        return [(p, d) for p, d in self.by_prefix.items() if p not in self.unavailable]

    def _retry_due(self) -> None:
        """Try again, in the background, the servers that failed to start over RETRY_AFTER_S ago: one that
        answers is listed from then on (and the client told); the list asked for now does not wait."""
        if self._tg is None:
            return
        now = anyio.current_time()
        for prefix in list(self.unavailable):
            if prefix not in self._starting and now - self._failed_at.get(prefix, now) >= RETRY_AFTER_S:
                self._starting.add(prefix)
                self._tg.start_soon(self._retry, prefix)

    async def _retry(self, prefix: str) -> None:
        downstream = self.by_prefix[prefix]
        try:
            await downstream.close()  # what is left of the failed start (a connection that never initialized)
            result = await downstream.initialize(self._init_params)
            if self.guard is not None:
                await self.guard.initialize_result(downstream.name, result)
            if self._client_initialized:
                await downstream.notify("notifications/initialized", None)
        except (MCPError, DownstreamError) as exc:
            message = exc.error.message if isinstance(exc, MCPError) else str(exc)
            # said once per reason: a server that stays down is tried again on every listing after RETRY_AFTER_S
            level = logging.DEBUG if self.unavailable.get(prefix) == message else logging.WARNING
            logger.log(level, "server %r still did not start (tried again in %g s at the earliest): %s",
                       downstream.name, RETRY_AFTER_S, message)
            self._failed(prefix, message)
        else:
            self._started(prefix)
        finally:
            self._starting.discard(prefix)

    def _started(self, prefix: str) -> None:
        """A server that had failed to start answered after all: it is listed again, and the client told."""
        if self.unavailable.pop(prefix, None) is None:
            return
        self._failed_at.pop(prefix, None)
        logger.info("server %r is available again", self.by_prefix[prefix].name)
        if self._up is not None and self._tg is not None:
            for kind in ("tools", "prompts", "resources"):
                self._tg.start_soon(self._up.notify, f"notifications/{kind}/list_changed", None)

    def _failed(self, prefix: str, message: str) -> None:
        self.unavailable[prefix] = message
        self._failed_at[prefix] = anyio.current_time()

    # --- client → servers ------------------------------------------------------------------

    async def _client_request(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        try:
            if method == "initialize":
                return await self._initialize(params)
            if method == "ping":
                return {}
            if method in _LIST_KEYS:
                return await self._list(method)
            if method == "logging/setLevel":
                return await self._set_level(params)
            if method == "tasks/list":
                return await self._task_list()
            downstream, routed, rename = self._route(method, params)
            prefix = server_prefix(downstream.name)
            if prefix in self.unavailable and prefix in self._starting:
                # still starting: said at once; a request must not reach a server before its initialize does
                raise MCPError(
                    code=DOWNSTREAM_UNAVAILABLE,
                    message=f"mcp-gateway: server {downstream.name!r} is still starting "
                    f"({self.unavailable[prefix]}); try again once it is listed",
                )
            # the guard sees the server's own task ids, as in its tasks/* requests
            order = self.orders[prefix]
            started = functools.partial(self._started, prefix)
            progress = self.progress[prefix]
            result = await guarded_call(self.guard, downstream, order, progress, dctx, method, routed, started)
            if method.startswith("tasks/") or isinstance(result.get("task"), dict):
                result = _prefixed_task_ids(result, prefix)
            return _rewrite_uris(result, rename) if rename else result
        except DownstreamError as exc:
            raise MCPError(code=DOWNSTREAM_UNAVAILABLE, message=exc.told()) from exc

    def _route(self, method: str, params: Mapping[str, Any] | None) -> tuple[Downstream, dict[str, Any], str]:
        params = dict(params or {})
        if method in ("tools/call", "prompts/get"):
            downstream, name = self._split(str(params.get("name", "")), SEP)
            return downstream, {**params, "name": name}, server_prefix(downstream.name)
        if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
            downstream, uri = self._split(str(params.get("uri", "")), "+")
            return downstream, {**params, "uri": uri}, server_prefix(downstream.name)
        if method in ("tasks/get", "tasks/result", "tasks/cancel"):
            # task ids are namespaced like tool names (<server>__<id>): no server can answer for another's task
            downstream, task_id = self._split(str(params.get("taskId", "")), SEP)
            return downstream, {**params, "taskId": task_id}, server_prefix(downstream.name)
        if method == "completion/complete":
            ref = dict(params.get("ref") or {})
            if ref.get("type") == "ref/prompt":
                downstream, name = self._split(str(ref.get("name", "")), SEP)
                ref["name"] = name
            else:
                downstream, uri = self._split(str(ref.get("uri", "")), "+")
                ref["uri"] = uri
            return downstream, {**params, "ref": ref}, ""
        available = self._available()
        if len(available) == 1:
            return available[0][1], params, server_prefix(available[0][1].name)
        raise MCPError(
            code=METHOD_NOT_FOUND,
            message=(f"mcp-gateway run mode cannot tell which server should answer {method!r}; use wrap mode for it"),
        )

    async def _initialize(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Start every server; answer once all have answered, or `start_grace_s` after the first did. A server
        still starting then joins later: it is listed once it answers, and the client is told (list_changed)."""
        assert self._tg is not None
        self._init_params = dict(params or {})
        results: dict[str, dict[str, Any]] = {}
        finished: set[str] = set()
        some = anyio.Event()  # a server answered, or every one is done
        every = anyio.Event()

        async def start(prefix: str, downstream: Downstream) -> None:
            self._starting.add(prefix)
            try:
                result = await downstream.initialize(params)
                if self.guard is not None:
                    result = await self.guard.initialize_result(downstream.name, result, later=self._tg)
                results[prefix] = result
                if answered.is_set():  # a late server: listed from now on
                    if self._client_initialized:  # the client's came while it was starting
                        await downstream.notify("notifications/initialized", None)
                    self._started(prefix)
            except (MCPError, DownstreamError) as exc:
                message = exc.error.message if isinstance(exc, MCPError) else str(exc)
                self._failed(prefix, message)
                logger.error("server %r did not start: %s", downstream.name, message)
            finally:
                self._starting.discard(prefix)
                finished.add(prefix)
                if prefix in results or len(finished) == len(self.by_prefix):
                    some.set()
                if len(finished) == len(self.by_prefix):
                    every.set()

        answered = anyio.Event()
        for prefix, downstream in self.by_prefix.items():
            self._tg.start_soon(start, prefix, downstream)
        await some.wait()
        with anyio.move_on_after(self.start_grace_s):
            await every.wait()
        answered.set()
        late = [prefix for prefix in self.by_prefix if prefix not in finished]
        for prefix in late:
            self._failed(prefix, late_note(self.start_grace_s))
            logger.warning("server %r is still starting; the client is told when it is ready", prefix)
        # in the config's order, not the order they answered in: the same answer every time
        unavailable = {p: self.unavailable[p] for p in self.by_prefix if p in self.unavailable}
        if not results:
            raise MCPError(
                code=DOWNSTREAM_UNAVAILABLE,
                message="mcp-gateway: no server started: " + "; ".join(f"{p}: {m}" for p, m in unavailable.items()),
            )
        answered_by = {p: results[p] for p in self.by_prefix if p in results}
        # the late servers' lists will change under the client: it is told it may be told so
        return merged_initialize(params or {}, answered_by, unavailable, late=bool(late), version=self.version)

    async def _adopt(self, run: RunStart) -> None:
        """Take over a session whose initialize `run`'s fast start answered (`gateway.run_start`): each server
        that answered is connected, and its instructions checked once the engine is ready; one that failed is
        stopped, and tried again later; one still starting joins when it answers, and the client is told."""
        assert self._tg is not None and run.init_params is not None
        self._init_params = dict(run.init_params)
        failures = run.failures()
        for prefix, downstream in self.by_prefix.items():
            name = downstream.name
            if name in run.late:
                self._failed(prefix, late_note(self.start_grace_s))
                self._starting.add(prefix)
                self._tg.start_soon(self._retry, prefix)
            elif name in failures:  # the answer said so already; its process is stopped off the session's path
                self._failed(prefix, failures[name])
                logger.error("server %r did not start: %s", name, failures[name])
                self._tg.start_soon(downstream.drop_started)
            else:
                try:
                    result = await downstream.initialize(self._init_params)
                except (MCPError, DownstreamError) as exc:
                    self._failed(prefix, exc.error.message if isinstance(exc, MCPError) else str(exc))
                    continue
                if self.guard is not None:
                    checked = functools.partial(self.guard.initialize_result, name, result)
                    self._tg.start_soon(self.guard.in_background, "instructions", name, checked)

    async def _list(self, method: str) -> dict[str, Any]:
        key = _LIST_KEYS[method]
        merged: list[Any] = []
        self._retry_due()
        for prefix, downstream in self._available():
            try:
                items = await self._all_pages(downstream, method, key)
            except (MCPError, DownstreamError) as exc:
                logger.warning("server %r: %s failed: %s", downstream.name, method, exc)
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                renamed = dict(item)
                if "name" in renamed and key in ("tools", "prompts"):
                    renamed["name"] = prefix_name(downstream.name, str(renamed["name"]))
                    if self._split(renamed["name"], SEP)[0] is not downstream:
                        # "pager" + "work__echo" reads as server "pager__work"'s "echo": it could not be called
                        logger.warning(
                            "server %r: %s %r is hidden: its name reads as another server's (rename a server)",
                            downstream.name, key[:-1], item["name"],
                        )
                        continue
                for uri_key in ("uri", "uriTemplate"):
                    if isinstance(renamed.get(uri_key), str):
                        renamed[uri_key] = f"{prefix}+{renamed[uri_key]}"
                merged.append(renamed)
        return {key: merged}

    async def _task_list(self) -> dict[str, Any]:
        """Every server's tasks in one list, their ids namespaced."""
        tasks: list[Any] = []
        for prefix, downstream in self._available():
            try:
                async for page in self._pages(downstream, "tasks/list"):
                    tasks.extend(_prefixed_task_ids(page, prefix).get("tasks") or [])
            except (MCPError, DownstreamError):
                pass  # a server without tasks (or whose list a policy refused): the pages read before stand
        return {"tasks": tasks}

    async def _set_level(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every server that logs gets the level; one that cannot does not keep it from the others."""
        failures: list[str] = []
        available = self._available()
        for _, downstream in available:
            try:
                await downstream.request("logging/setLevel", params)
            except (MCPError, DownstreamError) as exc:
                failures.append(f"{downstream.name}: {exc.error.message if isinstance(exc, MCPError) else exc}")
        if available and len(failures) == len(available):
            text = "mcp-gateway: no server took the log level: " + "; ".join(failures)
            raise MCPError(code=METHOD_NOT_FOUND, message=text)
        if failures:
            logger.info("logging/setLevel not taken by: %s", "; ".join(failures))
        return {}

    async def _all_pages(self, downstream: Downstream, method: str, key: str) -> list[Any]:
        return [item async for page in self._pages(downstream, method) for item in page.get(key) or []]

    async def _pages(self, downstream: Downstream, method: str) -> AsyncIterator[dict[str, Any]]:
        """Each page of a server's list, as the guard passes it (tool and prompt definitions screened;
        secrets in resource lists and task status lines masked)."""
        cursor: str | None = None
        for _ in range(100):  # a server that pages forever must not hang the list
            result = await downstream.request(method, {"cursor": cursor} if cursor else None)
            if self.guard is not None:
                result = await self.guard.server_result(downstream.name, method, None, result)
            yield result
            cursor = result.get("nextCursor")
            if not cursor:
                break

    async def _client_notify(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> None:
        if method in DISPATCHER_OWNED or unchecked_request(method):
            return
        if method == "notifications/initialized":
            self._client_initialized = True
        for _, downstream in self._available():
            await downstream.notify(method, params)

    # --- servers → client ------------------------------------------------------------------

    def _server_request_for(self, prefix: str) -> Any:
        async def on_request(
            dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
        ) -> dict[str, Any]:
            assert self._up is not None
            forwarded: Mapping[str, Any] | None = params
            if self.guard is not None:
                forwarded = await self.guard.server_request(self.by_prefix[prefix].name, method, params)
            return await self._up.send_raw_request(method, forwarded, {"timeout": self.client_request_timeout_s})

        return on_request

    def _server_notify_for(self, prefix: str) -> Any:
        async def on_notify(
            dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
        ) -> None:
            if method == PROGRESS:
                name = self.by_prefix[prefix].name
                await self.progress[prefix].deliver(self.guard, name, self.orders[prefix], params)
                return
            if method in DISPATCHER_OWNED or self._up is None:
                return
            if method == "notifications/tools/list_changed" and self.guard is not None and self._tg is not None:
                start_recheck(self._tg, self.by_prefix[prefix], self.guard)
            up = self._up

            async def checked() -> tuple[bool, Mapping[str, Any] | None]:
                # the guard sees the server's own task id (it knows the task's tool by it); the client the prefixed one
                keep, checked = await checked_notification(self.guard, self.by_prefix[prefix].name, method, params)
                uri = checked.get("uri") if keep and checked and method == "notifications/resources/updated" else None
                if checked and isinstance(uri, str):
                    checked = {**checked, "uri": f"{prefix}+{uri}"}
                if checked and method == "notifications/tasks/status":
                    checked = _prefixed_task_ids(dict(checked), prefix)
                return keep, checked

            await self.orders[prefix].slot(checked(), lambda kept: up.notify(method, kept))

        return on_notify


def _prefixed_task_ids(value: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`value` with every task id in it (its own, its `task`'s, its `tasks`') as `<prefix>__<id>`."""
    out = dict(value)
    if isinstance(out.get("taskId"), str):
        out["taskId"] = f"{prefix}{SEP}{out['taskId']}"
    if isinstance(out.get("task"), dict):
        out["task"] = _prefixed_task_ids(out["task"], prefix)
    if isinstance(out.get("tasks"), list):
        out["tasks"] = [_prefixed_task_ids(t, prefix) if isinstance(t, dict) else t for t in out["tasks"]]
    return out


def _rewrite_uris(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Prefix resource URIs inside a result (resource links, embedded resources), so the client can read them."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            if value.get("type") in ("resource_link",) and isinstance(value.get("uri"), str):
                out["uri"] = f"{prefix}+{value['uri']}"
            if isinstance(value.get("resource"), dict) and isinstance(value["resource"].get("uri"), str):
                out["resource"] = {**out["resource"], "uri": f"{prefix}+{value['resource']['uri']}"}
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    if "content" not in result and "contents" not in result:
        return result
    rewritten = dict(result)
    if "content" in result:
        rewritten["content"] = walk(result["content"])
    if "contents" in result:
        rewritten["contents"] = [
            {**c, "uri": f"{prefix}+{c['uri']}"} if isinstance(c, dict) and isinstance(c.get("uri"), str) else c
            for c in result["contents"]
        ]
    return rewritten
