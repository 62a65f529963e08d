"""The HTTP clients for remote servers: bodies and event-stream lines bounded after decompression, against a
real HTTP server on loopback that sends what a careless or hostile server might."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx2
import pytest

from gateway.remote import bounded_client

LIMIT = 100_000
BOMB = b'{"x": "' + b"a" * 5_000_000 + b'"}'  # 5 MB that gzip packs into a few KB
SEEN: list[dict[str, str]] = []  # the request line and headers each request arrived with


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        SEEN.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        route = self.path.rsplit("/", 1)[-1]
        body, headers = b"", {"Content-Type": "application/json"}
        if route == "small":
            body = b'{"ok": true}'
        elif route == "large":
            body = b'{"x": "' + b"a" * (LIMIT + 10) + b'"}'
        elif route == "gzip-small":
            body, headers["Content-Encoding"] = gzip.compress(b'{"ok": "zipped"}'), "gzip"
        elif route == "gzip-bomb":
            body, headers["Content-Encoding"] = gzip.compress(BOMB), "gzip"
        elif route == "raw-deflate":
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body, headers["Content-Encoding"] = packer.compress(b'{"ok": "raw"}') + packer.flush(), "deflate"
        elif route == "brotli":
            body, headers["Content-Encoding"] = b"\x0b\x02\x80not-really", "br"
        elif route == "cr-lines":  # many short lines, ended by CR alone: far over LIMIT in all, no line near it
            body, headers["Content-Type"] = b"data: 12345\r" * 20_000, "Text/Event-Stream"
        elif route == "long-line":
            body, headers["Content-Type"] = b"data: " + b"b" * (LIMIT + 10) + b"\n\n", "text/event-stream"
        self.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, *, sse_lines: bool = False) -> bytes | str:
    """The body as the SDK reads it, or the error reading it gave."""

    async def read() -> bytes | str:
        async with bounded_client(LIMIT, sse_lines=sse_lines, timeout=30) as http:
            try:
                return (await http.get(url)).content
            except httpx2.StreamError as exc:
                return f"refused: {exc}"

    return anyio.run(read)


def test_a_body_under_the_limit_is_read_whole_and_one_over_it_is_refused(base: str) -> None:
    assert fetch(f"{base}/small") == b'{"ok": true}'
    refused = fetch(f"{base}/large")
    assert isinstance(refused, str) and "over the max_message_bytes limit (100,000 bytes)" in refused


def test_compression_is_asked_away_and_decoded_here_within_the_bound(base: str) -> None:
    SEEN.clear()
    assert fetch(f"{base}/gzip-small") == b'{"ok": "zipped"}'
    assert fetch(f"{base}/raw-deflate") == b'{"ok": "raw"}'
    assert SEEN[0]["accept-encoding"] == "identity"
    bomb = fetch(f"{base}/gzip-bomb")  # a few KB on the wire, 5 MB unpacked: stopped at the bound
    assert isinstance(bomb, str) and "max_message_bytes" in bomb
    brotli = fetch(f"{base}/brotli")
    assert isinstance(brotli, str) and "'br'" in brotli


def test_event_stream_lines_are_bounded_one_by_one_whatever_ends_them(base: str) -> None:
    many = fetch(f"{base}/cr-lines", sse_lines=True)
    assert isinstance(many, bytes) and len(many) == 12 * 20_000  # 240 KB in all, each line 11 bytes
    long = fetch(f"{base}/long-line", sse_lines=True)
    assert isinstance(long, str) and "an event-stream line" in long
    # without per-line bounds (the Streamable HTTP client bounds events itself) a stream is left alone
    assert isinstance(fetch(f"{base}/long-line"), bytes)


def test_proxies_from_the_environment_still_apply(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", base)  # the test server stands in for the proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    SEEN.clear()
    assert fetch("http://remote-mcp.invalid/small") == b'{"ok": true}'
    assert SEEN[0]["path"] == "http://remote-mcp.invalid/small"  # asked of the proxy, by absolute URL
