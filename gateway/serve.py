"""Running a gateway: engine host, audit log, guard and relay, on stdio or Streamable HTTP."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from .audit import AuditLog
from .downstream import Downstream
from .enginehost import EngineHost
from .errors import ConfigError
from .guards import Guard
from .handshake import EarlyStart
from .pins import PinStore
from .relay import WrapRelay
from .remote_start import RemoteStart
from .run_start import RunStart
from .runtime import build_runtime
from .settings import Settings
from .specs import Limits, ServerSpec
from .stdio_relay import StdioRelay
from .transports import stdio_upstream

__all__ = ["GatewayParts", "make_downstream", "make_parts", "serve_run_stdio", "serve_wrap_stdio"]

logger = logging.getLogger(__name__)


@dataclass
class GatewayParts:
    host: EngineHost
    audit: AuditLog | None
    pins: PinStore | None

    def close(self) -> None:
        self.host.stop()
        if self.audit is not None:
            self.audit.close()
        if self.pins is not None:
            self.pins.close()

    def guard(self) -> Guard:
        return Guard(self.host, self.audit, pins=self.pins)


def make_parts(settings: Settings, extra_policies: Sequence[Path] = (), *, start: bool = True) -> GatewayParts:
    host = EngineHost(
        lambda: build_runtime(settings, extra_policies=extra_policies), ready_timeout_s=settings.engine_ready_timeout_s
    )
    if start:
        host.start()
    audit = AuditLog(settings.audit_db) if settings.audit else None
    pins = PinStore(settings.pins_db) if settings.pins else None
    return GatewayParts(host, audit, pins)


def make_downstream(
    spec: ServerSpec, settings: Settings, started: EarlyStart | None = None, fast: RemoteStart | None = None
) -> Downstream:
    return Downstream(spec, limits=limits_of(settings), started=started, fast=fast)


def limits_of(settings: Settings) -> Limits:
    return Limits(
        request_timeout_s=settings.request_timeout_s,
        init_timeout_s=settings.init_timeout_s,
        max_message_bytes=settings.max_message_bytes,
        restart_backoff_s=settings.restart_backoff_s,
    )


async def serve_wrap_stdio(
    spec: ServerSpec,
    settings: Settings,
    parts: GatewayParts,
    early: EarlyStart | None = None,
    fast: RemoteStart | None = None,
) -> None:
    """Serve `wrap` on stdio; `early` is the stdio server's fast start, `fast` the remote server's."""
    # Loading the models takes both cores for seconds; it starts once the server has answered initialize
    # (over a remote server, when the guard sees that answer).
    if early is not None:
        await anyio.to_thread.run_sync(early.wait)
    if spec.stdio is not None:
        parts.host.start()
        relay = StdioRelay(spec, parts.guard(), limits=limits_of(settings))
        await relay.serve(early)
        return
    if fast is not None:
        await anyio.to_thread.run_sync(fast.wait, abandon_on_cancel=True)
    leftover = fast.client_leftover if fast is not None else b""
    async with stdio_upstream(max_message_bytes=settings.max_message_bytes, leftover=leftover) as (read, write):
        await WrapRelay(make_downstream(spec, settings, fast=fast), parts.guard()).serve(read, write, fast)


async def serve_run_stdio(
    specs: Sequence[ServerSpec],
    settings: Settings,
    parts: GatewayParts,
    started: Mapping[str, EarlyStart] | None = None,
    fast: RunStart | None = None,
) -> None:
    """Serve `run` on stdio; `started` holds server processes started ahead, by name, for the relay to take over,
    and `fast` the fast start that may have answered the client's initialize with them."""
    from .router import RouterRelay

    started = started or {}
    if fast is not None:
        await anyio.to_thread.run_sync(fast.wait, abandon_on_cancel=True)
    downstreams = [make_downstream(spec, settings, started.get(spec.name)) for spec in specs]
    relay = RouterRelay(downstreams, parts.guard(), start_grace_s=settings.start_grace_s)
    leftover = fast.client_leftover if fast is not None else b""
    async with stdio_upstream(max_message_bytes=settings.max_message_bytes, leftover=leftover) as (read, write):
        await relay.serve(read, write, fast if fast is not None and fast.answered else None)


def stdio_is_pipes() -> bool:
    """Whether stdin and stdout are pipes or sockets (as an MCP client starts the gateway); False for a
    terminal, which works without uvloop (uvloop aborts the process on one). Anything else (a regular
    file, /dev/null) cannot be read as a stream: refused, with what to do instead."""
    pipes = True
    for fd, name in ((0, "stdin"), (1, "stdout")):
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            continue
        if os.isatty(fd):
            pipes = False
            continue
        what = "a regular file" if stat.S_ISREG(mode) else "not a pipe, socket or terminal"
        raise ConfigError(
            f"{name} is {what}; mcp-gateway speaks MCP over stdin/stdout pipes: let an MCP client start it, "
            "pipe into it (cat requests.jsonl | mcp-gateway ...), or use --transport http"
        )
    return pipes


def run(coro_fn: object, *args: object, use_uvloop: bool = True) -> None:
    # uvloop, where installed, takes a good part of the event loop's own cost off every relayed message.
    try:
        import uvloop  # noqa: F401

        options = {"use_uvloop": use_uvloop}
    except ImportError:
        options = {}
    anyio.run(coro_fn, *args, backend="asyncio", backend_options=options)  # type: ignore[arg-type]
