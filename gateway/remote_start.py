"""A fast start for ``wrap --url``: the client's ``initialize`` sent to the remote server, and its answer
relayed, while the gateway loads.

The gateway's relay speaks Streamable HTTP through the MCP SDK, whose import alone takes about a
second. Here a thread reads the client's first message and, if it is ``initialize``, POSTs it to the
server with the standard library (the request id swapped, as in ``gateway.handshake``), reads the
answer (a JSON body or an event stream), and relays a result to the client, the server's
instructions left out if they hide text or changed since they were pinned (``shown_before_load``).
When the relay has loaded, its SDK client sends the same initialize, and the gateway's HTTP layer
answers it with the recorded result and session id instead of the server
(``gateway.remote.ReplayedInitialize``): one session, initialized once, that the SDK carries on.

A status other than 200 (a 401 for missing credentials, a 404 for a wrong URL) is answered here, with
the status and what to do; a server that does not answer within ``init_timeout_s`` is said so, as the
relay would. Anything else out of the ordinary (an error answer, a connection that fails) leaves the
initialize to the relay, which sends it as always and reports what went wrong. There is no fast start
where a proxy would carry the requests or the URL carries credentials: the relay's HTTP client does
both its own way.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import logging
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DOWNSTREAM_UNAVAILABLE, REQUEST_TIMEOUT, server_timed_out
from .frames import error_frame
from .handshake import INIT_ID, ClientHello, shown_before_load

__all__ = ["RemoteStart", "start_remote"]

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"


@dataclass(kw_only=True)
class RemoteStart(ClientHello):
    """The fast start of `wrap --url` (Streamable HTTP): once `answered`, the result the client was given and
    the server's session id, for the relay's HTTP layer to give its SDK client."""

    name: str
    url: str
    headers: dict[str, str]
    max_bytes: int
    timeout_s: float
    pins_db: Path | None = None  # where the pins are (None: pins are off)
    init_params: dict[str, Any] | None = None
    init_result: dict[str, Any] | None = None
    session_id: str | None = None
    _consumed: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """End the session the server opened for an initialize the gateway answered and cannot serve."""
        if self.answered:
            _end_session(self)

    def take(self) -> tuple[dict[str, Any], str | None] | None:
        """The recorded result and session id, once: for the relay's first initialize only."""
        if not self.answered or self._consumed or self.init_result is None:
            return None
        self._consumed = True
        return self.init_result, self.session_id


def start_remote(
    name: str, url: str, headers: dict[str, str], *, max_bytes: int, timeout_s: float, pins_db: Path | None
) -> RemoteStart | None:
    """Begin the fast start on a thread of its own; None where it does not apply: a proxy would carry the
    requests (the relay's HTTP client honours proxies, and both must reach the server the same way), or the
    URL carries credentials (the relay's client sends them as Basic auth)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    proxies = urllib.request.getproxies()
    if (parts.scheme in proxies or "all" in proxies) and not urllib.request.proxy_bypass(parts.hostname):
        return None
    fast = RemoteStart(
        name=name, url=url, headers=dict(headers), max_bytes=max_bytes, timeout_s=timeout_s, pins_db=pins_db
    )
    fast.begin(functools.partial(_exchange, fast), max_bytes)
    return fast


def _request(fast: RemoteStart, method: str, body: bytes | None, timeout_s: float) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(fast.url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        import httpx2  # for the certificates the relay's HTTP client trusts (SSL_CERT_FILE, the system's)

        context = httpx2.create_ssl_context()
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout_s, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    headers = {
        **fast.headers,
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
    }
    if method != "POST" and fast.session_id:
        headers[SESSION_HEADER] = fast.session_id
    connection.request(method, path, body=body, headers=headers)
    return connection.getresponse()


def _read_answer(response: http.client.HTTPResponse, limit: int, deadline: float) -> dict[str, Any] | None:
    """The answer with id INIT_ID in a JSON body or an event stream; None when there is none (or too much)."""
    kind = (response.getheader("content-type") or "").split(";")[0].strip().lower()
    if kind == "application/json":
        body = response.read(limit + 1)
        if len(body) > limit:
            return None
        try:
            answer = json.loads(body)
        except RecursionError:
            return None
        return answer if isinstance(answer, dict) and answer.get("id") == INIT_ID else None
    if kind != "text/event-stream":
        return None
    data: list[bytes] = []
    read = 0
    while time.monotonic() < deadline:
        line = response.readline(limit + 1)
        read += len(line)
        if not line or read > limit:
            return None
        line = line.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif not line and data:  # an event ends
            try:
                answer = json.loads(b"\n".join(data))
            except (ValueError, RecursionError):
                answer = None
            data = []
            if isinstance(answer, dict) and answer.get("id") == INIT_ID:
                return answer
    raise TimeoutError


def _exchange(fast: RemoteStart, message: dict[str, Any]) -> bool:
    """POST the client's initialize and answer with the server's result (or with why there is none); an error
    answer, or one the gateway cannot read, is left to the relay, which sends it again and relays that."""
    try:
        return _answered(fast, message)
    finally:
        if fast.init_result is None:
            _end_session(fast)  # a session the server opened that nothing will use: the relay opens its own


def _answered(fast: RemoteStart, message: dict[str, Any]) -> bool:
    body = json.dumps({**message, "id": INIT_ID}).encode()
    deadline = time.monotonic() + fast.timeout_s
    try:
        response = _request(fast, "POST", body, fast.timeout_s)
        if response.status != 200:  # said here, where the status is known (the SDK's error does not name it)
            text = _refused_text(fast, response)
            fast._answer(error_frame(message["id"], DOWNSTREAM_UNAVAILABLE, text), initialized=False)
            return True
        fast.session_id = response.getheader(SESSION_HEADER)
        with contextlib.closing(response):
            answer = _read_answer(response, fast.max_bytes, deadline)
    except TimeoutError:  # said as the relay would; the session has not initialized, and the relay serves on
        text = server_timed_out(fast.name, "initialize", fast.timeout_s)
        logger.warning("%s", text.removeprefix("mcp-gateway: "))
        fast._answer(error_frame(message["id"], REQUEST_TIMEOUT, text), initialized=False)
        return True
    if answer is None or not isinstance(answer.get("result"), dict):
        return False
    result: dict[str, Any] = answer["result"]
    shown = shown_before_load(fast.name, result, fast.pins_db)
    frame = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": shown}, ensure_ascii=False).encode()
    if fast._answer(frame):
        fast.init_params = message["params"] if isinstance(message.get("params"), dict) else {}
        fast.init_result = result
        logger.info("initialize answered by server %r while the gateway loads", fast.name)
    return True


def _refused_text(fast: RemoteStart, response: http.client.HTTPResponse) -> str:
    said = f"mcp-gateway: server {fast.name!r} at {fast.url} answered initialize with HTTP {response.status}"
    said += f" {response.reason}" if response.reason else ""
    if response.status in (401, 403):
        return said + "; it asks for credentials: give them with --header (e.g. 'Authorization: Bearer <token>')"
    if response.status in (404, 405):
        return said + "; check the URL (use --remote-transport sse for a server on the older HTTP+SSE transport)"
    if 300 <= response.status < 400 and response.getheader("location"):
        return said + f"; it redirects to {response.getheader('location')}: give that URL to --url"
    return said


def _end_session(fast: RemoteStart) -> None:
    if fast.session_id:
        with contextlib.suppress(OSError, http.client.HTTPException):
            _request(fast, "DELETE", None, 2.0).close()
