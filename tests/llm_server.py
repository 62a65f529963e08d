"""A scripted LLM server on loopback that speaks the OpenAI chat API and Ollama's chat API.

Tests drive the real litellm + instructor path against it. Replies are scripted by a substring of
the prompt; an unscripted request gets HTTP 500 with the prompt's start, so it fails loudly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]


@dataclass
class Rule:
    contains: str
    reply: Reply
    times: int | None = None
    used: int = 0


@dataclass
class ScriptedLLMServer:
    rules: list[Rule] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hang: threading.Event | None = None  # when set to an unset Event, every request waits on it
    fail_with: tuple[int, dict[str, Any]] | None = None  # (status, body) returned to every POST
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, contains: str, reply: Reply, times: int | None = None) -> ScriptedLLMServer:
        self.rules.append(Rule(contains, reply, times))
        return self

    def answer(self, path: str, body: dict[str, Any]) -> str | None:
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", [])) or str(body.get("prompt", ""))
        with self._lock:
            self.requests.append((path, body))
            for rule in self.rules:
                if rule.contains in prompt and (rule.times is None or rule.used < rule.times):
                    rule.used += 1
                    return rule.reply(body) if callable(rule.reply) else rule.reply
        return None


def _handler(server_state: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            elif self.path == "/api/tags":
                self._send(200, {"models": [{"name": "scripted:latest", "model": "scripted:latest"}]})
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if server_state.hang is not None:
                server_state.hang.wait(timeout=60)
            if server_state.fail_with is not None:
                self._send(*server_state.fail_with)
                return
            if self.path == "/api/show":
                self._send(200, {"modelfile": "", "parameters": "", "template": "", "details": {}, "model_info": {}})
                return
            content = server_state.answer(self.path, body)
            if content is None:
                prompt = json.dumps(body.get("messages", body.get("prompt", "")))[:400]
                self._send(500, {"error": f"unscripted request to {self.path}: {prompt}"})
                return
            model = body.get("model", "scripted")
            if self.path.endswith("/chat/completions"):
                self._send(
                    200,
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    },
                )
            elif self.path == "/api/chat":
                self._send(
                    200,
                    {
                        "model": model,
                        "created_at": "2026-01-01T00:00:00Z",
                        "message": {"role": "assistant", "content": content},
                        "done": True,
                        "done_reason": "stop",
                        "prompt_eval_count": 10,
                        "eval_count": 5,
                    },
                )
            elif self.path == "/api/generate":
                self._send(
                    200,
                    {
                        "model": model,
                        "created_at": "2026-01-01T00:00:00Z",
                        "response": content,
                        "done": True,
                        "prompt_eval_count": 10,
                        "eval_count": 5,
                    },
                )
            else:
                self._send(404, {"error": f"no route {self.path}"})

    return Handler


@contextmanager
def scripted_llm_server() -> Iterator[ScriptedLLMServer]:
    state = ScriptedLLMServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.hang is not None:
            state.hang.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
