"""An Ollama-protocol front for an OpenAI-compatible server (llama.cpp), on loopback, stdlib only.

No Ollama server binary can be installed offline here, so the ``ollama_chat/...`` path of the judge
is exercised through this front: ``/api/chat`` (with ``format`` as a JSON schema or ``"json"``),
``/api/tags``, ``/api/show`` and ``/api/version``, translated to ``/v1/chat/completions``.

    python3 evals/local-llm/ollama_front.py --port 18081 --upstream http://127.0.0.1:18080/v1
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def make_handler(upstream: str) -> type[BaseHTTPRequestHandler]:
    def call(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(upstream + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def models(self) -> list[str]:
            return [str(m["id"]) for m in call("/models").get("data", [])]

        def do_GET(self) -> None:
            if self.path == "/api/tags":
                names = [f"{name}:latest" for name in self.models()]
                self.reply(200, {"models": [{"name": n, "model": n, "size": 0, "details": {}} for n in names]})
            elif self.path == "/api/version":
                self.reply(200, {"version": "0.0.0-front"})
            else:
                self.reply(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path == "/api/show":
                self.reply(200, {"modelfile": "", "parameters": "", "template": "", "details": {}, "model_info": {}})
                return
            if self.path != "/api/chat":
                self.reply(404, {"error": f"no route {self.path}"})
                return
            options = body.get("options") or {}
            request: dict[str, Any] = {
                "model": str(body.get("model", "")).split(":")[0],
                "messages": body.get("messages", []),
                "temperature": options.get("temperature", 0),
                "max_tokens": options.get("num_predict", 512),
            }
            fmt = body.get("format")
            if isinstance(fmt, dict):
                request["response_format"] = {"type": "json_object", "schema": fmt}
            elif fmt == "json":
                request["response_format"] = {"type": "json_object"}
            started = time.time()
            try:
                answer = call("/chat/completions", request)
            except Exception as exc:  # report upstream failures in Ollama's error shape
                self.reply(502, {"error": f"upstream failed: {exc}"})
                return
            usage = answer.get("usage") or {}
            self.reply(
                200,
                {
                    "model": body.get("model"),
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                    "message": {"role": "assistant", "content": answer["choices"][0]["message"]["content"]},
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": usage.get("prompt_tokens", 0),
                    "eval_count": usage.get("completion_tokens", 0),
                },
            )

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--upstream", default="http://127.0.0.1:18080/v1")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream.rstrip("/")))
    server.serve_forever()


if __name__ == "__main__":
    main()
