"""A fast start for ``run``: every server initialized, and the client answered, while the gateway loads.

``run`` starts its stdio servers as soon as it has read the mcp.json (``EarlyStart``). Here a thread
reads the client's ``initialize``, sends it to every server at once (each on a thread of its own, under
``init_timeout_s``), and answers the client with the merged result as the router would: once every
server has answered, or ``start_grace_s`` after the first did. The relay then takes over each process as
it is (its answer, its error, or its initialize still under way) and whatever was read past the first
messages. What needs no model is checked before the answer leaves (text hidden in a server's
instructions, instructions changed since they were pinned); the policies judge the instructions once
the engine is ready. Without one server started ahead (a remote one, a command not found) the router
initializes them all itself.

Nothing here imports the MCP SDK: that import alone takes longer than most servers need to answer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    MESSAGE_TOO_LARGE,
    REQUEST_TIMEOUT,
    server_stopped,
    server_timed_out,
    too_large_text,
)
from .handshake import INIT_ID, ClientHello, EarlyStart, await_answer, shown_before_load
from .mcpjson import server_prefix

__all__ = ["GATEWAY_VERSION", "RunStart", "late_note", "merged_initialize", "start_run"]

logger = logging.getLogger(__name__)

GATEWAY_VERSION = "0.1.0"


def late_note(grace_s: float) -> str:
    """Why a server is not listed yet when the client is answered without it."""
    return f"still starting after {grace_s:g} s; listed once it answers"


def merged_initialize(
    params: Mapping[str, Any],
    results: Mapping[str, dict[str, Any]],
    unavailable: Mapping[str, str],
    *,
    late: bool,
    version: str = GATEWAY_VERSION,
) -> dict[str, Any]:
    """The one initialize result of `run`: the servers' capabilities merged, their instructions and why the
    unavailable ones are unavailable (both by prefix, in the config's order). With `late` servers still
    starting, the lists say they may change (the client is told when they do)."""
    capabilities: dict[str, Any] = {}
    for result in results.values():
        for key, value in (result.get("capabilities") or {}).items():
            if isinstance(value, dict) and isinstance(capabilities.get(key), dict):
                merged = dict(capabilities[key])
                for flag, setting in value.items():
                    merged[flag] = merged.get(flag) or setting
                capabilities[key] = merged
            else:
                capabilities.setdefault(key, value)
    if late:
        for kind in ("tools", "prompts", "resources"):
            entry = capabilities.get(kind)
            capabilities[kind] = {**(entry if isinstance(entry, dict) else {}), "listChanged": True}
    first = next(iter(results.values()))
    notes = [f"{p}: {r['instructions']}" for p, r in results.items() if r.get("instructions")]
    notes += [f"{p}: unavailable ({m})" for p, m in unavailable.items()]
    answer: dict[str, Any] = {
        "protocolVersion": first.get("protocolVersion", params.get("protocolVersion")),
        "capabilities": capabilities,
        "serverInfo": {"name": "mcp-gateway", "version": version},
    }
    if notes:
        answer["instructions"] = "\n".join(notes)
    return answer


@dataclass(kw_only=True)
class RunStart(ClientHello):
    """The fast start of a `run` whose servers were all started ahead (by name, in the config's order)."""

    servers: dict[str, EarlyStart]
    max_bytes: int
    init_timeout_s: float
    grace_s: float
    pins_db: Path | None  # where the pins are (None: pins are off)
    unstarted: dict[str, str] = field(default_factory=dict)  # servers whose process could not start: why
    order: list[str] = field(default_factory=list)  # every server's name, in the config's order
    init_params: dict[str, Any] | None = None  # the client's initialize, once answered here
    late: list[str] = field(default_factory=list)  # servers still starting when the client was answered
    _changed: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        for early in self.servers.values():
            early.stop()

    def failures(self) -> dict[str, str]:
        """Why each server that could not start, or whose initialize failed, did not start, by name."""
        failed = {name: early.init_error for name, early in self.servers.items() if early.init_error is not None}
        return {**self.unstarted, **{name: str(error["message"]) for name, error in failed.items()}}

    def _wait_for_servers(self) -> list[str]:
        """Until every server has answered initialize, or `grace_s` after the first did: the ones still starting."""
        first_answer: float | None = None
        while True:
            self._changed.clear()
            pending = [name for name, early in self.servers.items() if not early.done.is_set()]
            if not pending:
                return []
            if first_answer is None and any(early.init_result is not None for early in self.servers.values()):
                first_answer = time.monotonic()
            timeout = None if first_answer is None else first_answer + self.grace_s - time.monotonic()
            if timeout is not None and timeout <= 0:
                return pending
            self._changed.wait(timeout)


def start_run(
    servers: dict[str, EarlyStart],
    *,
    unstarted: dict[str, str],
    order: list[str],
    max_bytes: int,
    init_timeout_s: float,
    grace_s: float,
    pins_db: Path | None,
) -> RunStart:
    """Begin the fast start of `run` on a thread of its own: it waits for the client's first message. `servers`
    are the ones started, `unstarted` the ones that could not be (and why), `order` all their names in the
    config's order."""
    run = RunStart(
        servers=servers,
        unstarted=unstarted,
        order=order,
        max_bytes=max_bytes,
        init_timeout_s=init_timeout_s,
        grace_s=grace_s,
        pins_db=pins_db,
    )
    run.begin(functools.partial(_exchange, run), max_bytes)
    return run


def _exchange(run: RunStart, message: dict[str, Any]) -> bool:
    """Send the client's initialize to every server at once and answer with the merged result; with no server
    started, leave it to the relay, which answers with every server's reason."""
    request = json.dumps({**message, "id": INIT_ID}).encode() + b"\n"
    for early in run.servers.values():
        early.init_sent = True
        threading.Thread(
            target=_initialize_server,
            args=(early, request, run.init_timeout_s, run._changed),
            name="mcp-gateway-initialize",
            daemon=True,
        ).start()
    late = run._wait_for_servers()
    results = {
        server_prefix(name): shown_before_load(name, early.init_result, run.pins_db)
        for name, early in run.servers.items()
        if name not in late and early.init_result is not None
    }
    if not results:
        return False
    failures = run.failures()
    unavailable = {
        server_prefix(name): late_note(run.grace_s) if name in late else failures[name]
        for name in run.order
        if name in late or name in failures
    }
    params: dict[str, Any] = message["params"] if isinstance(message.get("params"), dict) else {}
    answer = merged_initialize(params, results, unavailable, late=bool(late))
    frame = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": answer}, ensure_ascii=False).encode()
    if run._answer(frame):
        run.init_params, run.late = dict(params), late
        logger.info("initialize answered by %d of %d servers while the gateway loads", len(results), len(run.order))
    return True


def _initialize_server(early: EarlyStart, request: bytes, timeout_s: float, changed: threading.Event) -> None:
    """Send the client's initialize to one server and read its answer (`early.init_result` or `init_error`)."""
    buffer = bytearray()
    try:
        assert early.process.stdin is not None
        early.process.stdin.write(request)
        early.process.stdin.flush()
        answer = await_answer(early, buffer, time.monotonic() + timeout_s)
        if answer is None and len(buffer) > early.max_bytes:
            who = f"server {early.name!r}"
            early.init_error = {"code": MESSAGE_TOO_LARGE, "message": too_large_text(len(buffer), early.max_bytes, who)}
            buffer.clear()
        elif answer is None and len(early.server_leftover) > early.max_bytes:
            said = f"mcp-gateway: server {early.name!r} wrote over {early.max_bytes:,} bytes of other messages "
            early.init_error = {"code": MESSAGE_TOO_LARGE, "message": said + "before it answered initialize"}
            early.server_leftover = b""
        elif answer is None:
            early.init_error = _stopped(early)
        elif isinstance(answer.get("result"), dict):
            early.init_result = answer["result"]
        elif isinstance(answer.get("error"), dict) and isinstance(answer["error"].get("message"), str):
            error = answer["error"]
            code = error.get("code")
            early.init_error = {
                "code": code if isinstance(code, int) and not isinstance(code, bool) else INTERNAL_ERROR,
                "message": error["message"],
                **({"data": error["data"]} if "data" in error else {}),
            }
        else:
            early.init_error = {
                "code": INTERNAL_ERROR,
                "message": f"mcp-gateway: server {early.name!r} answered initialize with neither a result nor an error",
            }
    except TimeoutError:
        early.init_error = {"code": REQUEST_TIMEOUT, "message": server_timed_out(early.name, "initialize", timeout_s)}
    except (OSError, ValueError):  # its stdin closed (it exited), or its stdout was closed under the read
        early.init_error = _stopped(early)
    except Exception as exc:  # whatever it wrote, the relay must learn how this server's start ended
        said = f"mcp-gateway: the answer of server {early.name!r} to initialize could not be read"
        early.init_error = {"code": INTERNAL_ERROR, "message": f"{said} ({type(exc).__name__})"}
    finally:
        early.server_leftover += bytes(buffer)
        early.done.set()
        changed.set()


def _stopped(early: EarlyStart) -> dict[str, Any]:
    with contextlib.suppress(subprocess.TimeoutExpired):
        early.process.wait(timeout=1.0)  # for its exit code
    return {"code": CONNECTION_CLOSED, "message": server_stopped(early.name, "initialize", early.exit_note())}
