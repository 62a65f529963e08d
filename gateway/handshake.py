"""A fast start for ``wrap``: the server is spawned and the client's ``initialize`` relayed before
the rest of the gateway has even finished importing. (``run`` does the same for all its servers at
once with the parts shared here: see ``gateway.run_start``.)

Clients spawn the gateway for every session, so its start-up is paid again and again. Importing
the MCP SDK and the engine takes about a second; the server's own start-up often half of that.
Here both overlap: the server process starts at once, and a small thread relays the first
exchange (the client's ``initialize`` and the server's answer) byte-for-byte, with only the
request id swapped (so the id the gateway later uses never repeats the client's). The relay then
adopts the running process, the pipes and whatever else was already read.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import json
import logging
import os
import select
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .errors import DownstreamError
from .frames import encode, error_frame
from .specs import HTTP_TOKEN_ENV, StdioCommand, resolve_command

__all__ = [
    "ClientHello", "EarlyStart", "await_answer", "initialize_request", "refuse_client", "shown_before_load",
    "spawn_server", "start_early",
]

logger = logging.getLogger(__name__)

INIT_ID = "mcp-gateway-initialize"
SETUP_FAILED = -32045  # the answer to initialize when the gateway's settings or policy files do not work
SETTLE_WAIT_S = 5.0  # how long wrap's fast start waits for the settings (where the pins are) before it answers
REFUSAL_WAIT_S = 2.0  # how long a gateway that cannot start waits for the client's initialize, to answer it
REMEMBERED_LINE_CHARS = 1000  # stderr lines up to this long are remembered masked, 256 of them
# A server's stderr line is read up to this many bytes; the rest of a longer one is skipped, counted, not kept:
# a server that logs a whole file or a binary blob without a newline must not fill the gateway's memory.
STDERR_LINE_BYTES = 64 * 1024
# The end of a cut line is left out too: a secret the cut split would no longer match its pattern.
STDERR_CUT_MARGIN = 512


@dataclass(kw_only=True)
class ClientHello:
    """The client's side of a fast start: its initialize, once read and while unanswered, what it sent after it
    (for the relay), and the refusal of a gateway whose own setup failed (`refuse`)."""

    client_leftover: bytes = b""  # what the client sent after its first message, for the relay
    answered: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    _refusal: str | None = None  # why the gateway cannot serve, once its setup has failed (`refuse`)
    _owed_id: Any = None  # the id of the client's initialize, once read and while unanswered
    _refused_id: Any = field(default_factory=object)  # the id the refusal answered (none yet: no id matches)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def wait(self) -> None:
        self.done.wait()

    def stop(self) -> None:
        """Stop the server process(es) this fast start began."""
        raise NotImplementedError

    def refuse_first(self, reason: str) -> None:
        """The setup failed and `refuse` will follow: from now on a client's initialize is answered with
        `reason`, never relayed to the server (the error is about to be printed, and a client may act on it)."""
        with self._lock:
            self._refusal = reason
            if not self.answered:
                self._refuse_owed()

    def refuse(self, reason: str) -> None:
        """The gateway's own setup failed (settings, policy files) and it is about to exit: the client
        hears `reason` before the pipe closes, and the server is stopped. A client whose initialize is
        still unanswered (now, or when it comes while the process is still up) gets it as a JSON-RPC
        error; one already answered, as a log message (a client shows those), rather than a server that
        initialized and vanished. The answer itself is not held back for the setup: that would add the
        setup's imports (some 0.35 s here) to every start."""
        self.refuse_first(reason)
        with self._lock:
            if self.answered:
                params = {"level": "error", "logger": "mcp-gateway", "data": reason}
                _say(encode({"jsonrpc": "2.0", "method": "notifications/message", "params": params}))
            waiting = self._owed_id is None and not self.answered
        self.stop()
        if waiting and self._thread is not None and not os.isatty(0):
            # the client has not sent its initialize yet: it is about to, and will read the refusal (a person
            # at a terminal reads the error printed already)
            self._thread.join(REFUSAL_WAIT_S)
        with self._lock:
            self._refuse_leftover()

    def _refuse_owed(self) -> None:
        """Under `_lock`: answer the client's pending initialize with the refusal, once."""
        if self._refusal is not None and self._owed_id is not None and not self.answered:
            _say(error_frame(self._owed_id, SETUP_FAILED, self._refusal))
            self._refused_id, self._owed_id = self._owed_id, None

    def _refuse_leftover(self) -> None:
        """Under `_lock`: a first request that was no initialize (a ping), read by the fast start and left for a
        relay that will not run now, is answered with the refusal too."""
        if self._refusal is None or self.answered or not self.done.is_set() or not _client_on_pipe():
            return
        message = _request_in(self.client_leftover.partition(b"\n")[0])
        if message is not None and message["id"] != self._refused_id:
            _say(error_frame(message["id"], SETUP_FAILED, self._refusal))
            self._refused_id = message["id"]

    def begin(self, exchange: Callable[[dict[str, Any]], bool], max_bytes: int) -> None:
        """Start the fast start's thread: it reads the client's first message and, when it is an initialize
        request, has `exchange` settle it (True: answered, or refused). One it does not settle (False, or an
        error) is handed back to the relay, with whatever the client sent after it; so is a first message
        that is no initialize."""
        self._thread = threading.Thread(
            target=self._first_exchange, args=(exchange, max_bytes), name="mcp-gateway-handshake", daemon=True
        )
        self._thread.start()

    def _first_exchange(self, exchange: Callable[[dict[str, Any]], bool], max_bytes: int) -> None:
        client = bytearray()
        owed: bytes | None = None  # the client's initialize, taken but not settled
        try:
            line = _read_line(0, client, max_bytes)
            if line is None:
                return
            message = initialize_request(line)
            if message is None:
                client[:0] = line + b"\n"  # not a handshake-era start: the relay handles it as usual
                return
            if not self._owe(message["id"]):
                return
            owed = line
            if exchange(message):
                owed = None
        except Exception as exc:  # the relay takes it from here
            logger.warning("a fast start failed (%s); the relay takes over", type(exc).__name__)
        finally:
            if owed is not None:
                client[:0] = owed + b"\n"
            self.client_leftover = bytes(client)
            self.done.set()

    def _owe(self, request_id: Any) -> bool:
        """The client's initialize was read: False when the gateway has refused already (and said so)."""
        with self._lock:
            self._owed_id = request_id
            if self._refusal is not None:
                self._refuse_owed()
                return False
        return True

    def _answer(self, frame: bytes, *, initialized: bool = True) -> bool:
        """Write the answer to the client's initialize, unless the gateway has refused meanwhile (then the
        refusal is the answer); whether it was written. Not `initialized`: an error, after which the relay
        serves the session as one that has not initialized yet."""
        with self._lock:
            if self._refusal is not None:
                self._refuse_owed()
                return False
            _say(frame, quiet=False)
            self.answered = initialized
            self._owed_id = None
        return True


@dataclass
class EarlyStart(ClientHello):
    """A started stdio server process: by the fast handshake (which may have relayed its initialize), or
    again by a relay after it stopped. Its stderr is forwarded and its last lines kept. In `run`, whose fast
    start (`gateway.run_start`) initializes every server, `init_sent` says it did, and `done` that the
    exchange is over: `init_result`, or `init_error` (a JSON-RPC error object) says how it ended."""

    name: str
    process: subprocess.Popen[bytes]
    max_bytes: int
    server_leftover: bytes = b""  # what the server wrote after its answer, for the relay
    init_params: dict[str, Any] | None = None
    init_result: dict[str, Any] | None = None
    init_sent: bool = False
    init_error: dict[str, Any] | None = None
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    stderr_thread: threading.Thread | None = None
    pins_db: Path | None = None  # where the pins are, once the settings are read (`settle`)
    _settled: threading.Event = field(default_factory=threading.Event)

    def settle(self, pins_db: Path | None) -> None:
        """The settings are read: the pins are at `pins_db` (None: pins are off)."""
        self.pins_db = pins_db
        self._settled.set()

    def stop(self) -> None:
        """Stop the server as a relay does (`transports.end_server`): its stdin closed, then its process group
        ended, children it started (npx's node) included. It runs an event loop of its own: call it where none
        runs (the CLI before it serves, or a worker thread)."""
        import anyio

        from .transports import stop_popen

        self._settled.set()  # a fast start waiting for the settings has nothing to wait for any more
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        anyio.run(stop_popen, self.process)

    def exit_note(self) -> str:
        """How the process ended, with the last lines of its stderr: for error messages."""
        code = self.process.poll()
        note = f"exit code {code}" if code is not None else "its output closed"
        words = " | ".join(line for line in self.stderr_tail.copy() if line.strip())[-600:]  # a copy: it grows
        return f"{note}; its stderr ended with: {words}" if words else note


def spawn_server(name: str, spec: StdioCommand, *, max_bytes: int) -> EarlyStart:
    """Start a stdio server process, its stderr forwarded (prefixed with its name) and its last lines kept."""
    # the gateway's own secret stays with it: a server holding the HTTP front's token could open sessions of its own
    env = {**{k: v for k, v in os.environ.items() if k != HTTP_TOKEN_ENV}, **dict(spec.env)}
    executable = resolve_command(spec.command, name, env)
    try:
        process = subprocess.Popen(
            [executable, *spec.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=spec.cwd,
            start_new_session=True,
            bufsize=0,
        )
    except OSError as exc:
        raise DownstreamError(f"server {name!r}: cannot start {spec.describe()!r}: {exc.strerror or exc}") from exc
    early = EarlyStart(name, process, max_bytes)
    early.stderr_thread = threading.Thread(target=_pump_stderr, args=(early,), name="mcp-gateway-stderr", daemon=True)
    early.stderr_thread.start()
    return early


def start_early(name: str, spec: StdioCommand, *, max_bytes: int) -> EarlyStart:
    """Start the server and relay the client's initialize to it on a thread of its own."""
    early = spawn_server(name, spec, max_bytes=max_bytes)
    early.begin(functools.partial(_exchange, early), max_bytes)
    return early


@functools.cache
def _secrets_detector() -> Any:
    from policy.detectors.secrets import SecretsDetector

    return SecretsDetector()


def mask_stderr(text: str) -> str:
    """A server's stderr line with its secrets masked: it goes to the gateway's log (an IDE keeps it in a file)
    and into error messages. A line the scan fails on is withheld, not passed raw. Short lines are remembered,
    for the ones a server repeats (a Python SDK server logs "Processing request of type CallToolRequest" on
    every call)."""
    return _mask_remembered(text) if len(text) <= REMEMBERED_LINE_CHARS else _mask_line(text)


def _mask_line(text: str) -> str:
    from .masking import mask_string

    try:
        spans = _secrets_detector().scan("stderr", text)
    except Exception:
        return "[a stderr line was withheld: the secrets scan failed on it]"
    return mask_string(text, [(span.start, span.end, span.label) for span in spans]) if spans else text


_mask_remembered = functools.lru_cache(maxsize=256)(_mask_line)


def _pump_stderr(early: EarlyStart) -> None:
    stderr = early.process.stderr
    assert stderr is not None
    # closed here, at its end: nothing else reads it, and a gateway that restarts a failing server for
    # days must not keep (or leave the collector to find) one open pipe per start
    forward = True
    # buffered: the pipe is unbuffered (bufsize=0, for the handshake's stdout), and readline on it reads one
    # byte per system call, each taking the interpreter lock back from the relay (28 us of CPU per line here)
    with io.BufferedReader(cast(io.RawIOBase, stderr)) as lines:
        for raw in iter(lambda: lines.readline(STDERR_LINE_BYTES), b""):
            if raw.endswith(b"\n") or len(raw) < STDERR_LINE_BYTES:
                text = mask_stderr(raw.decode(errors="replace").rstrip("\n"))
            else:
                skipped = STDERR_CUT_MARGIN + _skip_line(lines)
                kept = raw[:-STDERR_CUT_MARGIN].decode(errors="ignore")
                text = f"{mask_stderr(kept)} [line cut: {skipped:,} more bytes not shown]"
            early.stderr_tail.append(text)
            if not forward:
                continue  # still read: a server whose stderr pipe filled up or closed would stall or die
            try:
                sys.stderr.write(f"[{early.name}] {text}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                forward = False  # the gateway's own stderr is gone


def _skip_line(lines: io.BufferedReader[io.RawIOBase]) -> int:
    """Read past the rest of an over-long line; how many bytes it had."""
    skipped = 0
    while chunk := lines.readline(STDERR_LINE_BYTES):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            return skipped - 1
    return skipped


def _read_line(fd: int, buffer: bytearray, limit: int, deadline: float | None = None) -> bytes | None:
    """The next line from `fd` (read into `buffer`, which keeps what follows it); None at the end of the stream
    or past `limit` bytes without a newline. TimeoutError past `deadline` (a time.monotonic())."""
    while b"\n" not in buffer:
        if len(buffer) > limit:
            return None
        # checked before every read: a server that keeps writing (without ever answering) is always readable
        if deadline is not None and (
            time.monotonic() >= deadline
            or not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]
        ):
            raise TimeoutError
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def initialize_request(line: bytes) -> dict[str, Any] | None:
    """The client's first line, if it is an initialize request (anything else is left to the relay)."""
    message = _request_in(line)
    return message if message is not None and message["method"] == "initialize" else None


def _request_in(line: bytes) -> dict[str, Any] | None:
    """`line` read as a JSON-RPC request (a method and an id), or None."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return None
    if isinstance(message, dict) and isinstance(message.get("method"), str) and "id" in message:
        return message
    return None


def _say(frame: bytes, *, quiet: bool = True) -> None:
    """Write one line to the client, all of it (`quiet`: a client that has gone is no error here)."""
    data = memoryview(frame + b"\n")
    try:
        while data:
            data = data[os.write(1, data) :]
    except OSError:
        if not quiet:
            raise


def await_answer(early: EarlyStart, buffer: bytearray, deadline: float | None = None) -> dict[str, Any] | None:
    """Read the server's answer to the gateway's initialize (id INIT_ID); what it says before that (a log
    message) is kept in `early.server_leftover` for the relay (up to max_bytes), and the rest of what was read
    stays in `buffer`. None when the server stopped, or said too much first; TimeoutError past `deadline`."""
    assert early.process.stdout is not None
    fd = early.process.stdout.fileno()
    while True:
        line = _read_line(fd, buffer, early.max_bytes, deadline)
        if line is None:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError  # what it keeps writing is not its answer
        try:
            answer = json.loads(line)
        except (ValueError, RecursionError):
            logger.warning("server %r wrote a line that is not JSON-RPC before initializing, skipped", early.name)
            continue
        if isinstance(answer, dict) and answer.get("id") == INIT_ID:
            return answer
        early.server_leftover += line + b"\n"  # an early notification: the relay delivers it
        if len(early.server_leftover) > early.max_bytes:
            return None  # kept for the relay, they must stay within one message's bound


def _has_instructions(result: dict[str, Any]) -> bool:
    instructions = result.get("instructions")
    return isinstance(instructions, str) and bool(instructions.strip())


def shown_before_load(
    server: str, result: dict[str, Any], pins_db: Path | None, *, known: bool = True
) -> dict[str, Any]:
    """A server's initialize result as a fast start may give it to the client before the engine is ready: its
    instructions left out when they hide text from people or changed since they were pinned (`pins_db`; None
    when pins are off), or when where the pins are is not `known` yet. Each is said again, and audited, when
    the policies check the instructions."""
    if not _has_instructions(result):
        return result
    from policy.detectors.hidden import find_hidden

    from .pins import pinned_differs

    instructions = result["instructions"]
    item = {"name": "(instructions)", "description": instructions}
    if find_hidden(instructions):
        why = "hide text from people"
    elif not known:
        why = "could not be compared with their pin in time"
    elif pins_db is not None and pinned_differs(pins_db, server, "instructions", item):
        why = "changed since they were pinned"
    else:
        return result
    logger.warning("server %r: its instructions %s; they were removed", server, why)
    return {key: value for key, value in result.items() if key != "instructions"}


def _exchange(early: EarlyStart, message: dict[str, Any]) -> bool:
    """wrap's: relay the client's initialize to the server and its answer back. A server that died or spoke
    nonsense first leaves it to the relay, which starts the server afresh and answers it."""
    server = bytearray()
    try:
        assert early.process.stdin is not None
        early.process.stdin.write(json.dumps({**message, "id": INIT_ID}).encode() + b"\n")
        early.process.stdin.flush()
        answer = await_answer(early, server)
    finally:
        early.server_leftover += bytes(server)
    if answer is None:
        return False
    answer["id"] = message["id"]
    result = answer.get("result")
    if isinstance(result, dict) and _has_instructions(result):
        # the pins are where the settings say: read once they are (in the time the server took to start)
        settled = early._settled.wait(SETTLE_WAIT_S)
        answer["result"] = shown_before_load(early.name, result, early.pins_db, known=settled)
    if early._answer(json.dumps(answer, ensure_ascii=False).encode()):
        early.init_params = message.get("params") if isinstance(message.get("params"), dict) else {}
        early.init_result = answer.get("result") if isinstance(answer.get("result"), dict) else None
    return True


def refuse_client(reason: str, max_bytes: int) -> None:
    """A gateway that cannot start (`run`, whose setup is checked before it reads its client) answers the
    client's first request, its initialize, with `reason` as a JSON-RPC error, if one comes within
    REFUSAL_WAIT_S: a client shows that, where a process that just exits reads as a crash."""
    if not _client_on_pipe():
        return
    said: list[bytes | None] = []
    reader = threading.Thread(
        target=lambda: said.append(_read_line(0, bytearray(), max_bytes)), name="mcp-gateway-refusal", daemon=True
    )
    reader.start()
    reader.join(REFUSAL_WAIT_S)
    line = said[0] if said else None
    if line is None:
        return
    try:
        message = json.loads(line)
    except ValueError:
        return
    if isinstance(message, dict) and isinstance(message.get("method"), str) and "id" in message:
        with contextlib.suppress(OSError):
            _say(error_frame(message["id"], SETUP_FAILED, reason))


def _client_on_pipe() -> bool:
    """Whether stdin is a pipe or socket: a client to answer (a terminal or a file has none)."""
    mode = os.fstat(0).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
