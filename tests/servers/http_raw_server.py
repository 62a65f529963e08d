"""A small Streamable HTTP MCP server on loopback, written on the standard library, that logs every request
it receives (method, session header, JSON-RPC method) so tests can see what reached it.

usage: http_raw_server.py PORT LOG, with the environment:
  RAW_HTTP_INSTRUCTIONS  the instructions of its initialize result
  RAW_HTTP_INIT          "ok" (default), "error" (a JSON-RPC error), "401" (HTTP 401), "hang" (never answers)
  RAW_HTTP_SSE           "1": answers requests as event streams instead of JSON bodies
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOG = sys.argv[2]
SESSION = "session-7f3a"
_lock = threading.Lock()


def _log(entry: dict[str, Any]) -> None:
    with _lock, open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, message: dict[str, Any] | None, *, session: bool = True) -> None:
        body = b""
        self.send_response(status)
        if session:
            self.send_header("mcp-session-id", SESSION)
        if message is not None and os.environ.get("RAW_HTTP_SSE") == "1":
            body = b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"
            self.send_header("content-type", "text/event-stream")
        elif message is not None:
            body = json.dumps(message).encode()
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        method = message.get("method")
        _log({"http": "POST", "session": self.headers.get("mcp-session-id"), "method": method, "id": message.get("id")})
        if "id" not in message:
            self._send(202, None)
            return
        if method == "initialize":
            mode = os.environ.get("RAW_HTTP_INIT", "ok")
            if mode == "hang":
                time.sleep(600)
            if mode == "401":
                self._send(401, None, session=False)
                return
            if mode == "error":
                error = {"code": -32602, "message": "unsupported protocol version"}
                self._send(200, {"jsonrpc": "2.0", "id": message["id"], "error": error}, session=False)
                return
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "http-raw", "version": "1.0"},
                "instructions": os.environ.get("RAW_HTTP_INSTRUCTIONS", "raw HTTP test server"),
            }
            self._send(200, {"jsonrpc": "2.0", "id": message["id"], "result": result})
            return
        if self.headers.get("mcp-session-id") != SESSION:
            self._send(400, {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32600, "message": "no session"}})
            return
        if method == "tools/list":
            tool = {"name": "echo", "description": "Echo the text back.", "inputSchema": {"type": "object"}}
            self._send(200, {"jsonrpc": "2.0", "id": message["id"], "result": {"tools": [tool]}})
        elif method == "tools/call":
            said = str(message["params"].get("arguments", {}).get("text", ""))
            content = [{"type": "text", "text": said}]
            self._send(200, {"jsonrpc": "2.0", "id": message["id"], "result": {"content": content}})
        else:
            self._send(200, {"jsonrpc": "2.0", "id": message["id"], "result": {}})

    def do_GET(self) -> None:
        _log({"http": "GET", "session": self.headers.get("mcp-session-id")})
        self._send(405, None)

    def do_DELETE(self) -> None:
        _log({"http": "DELETE", "session": self.headers.get("mcp-session-id")})
        self._send(200, None)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
