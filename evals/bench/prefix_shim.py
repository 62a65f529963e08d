"""Lets a client written for one server drive `mcp-gateway run` with that server as its only one.

Run mode names everything `<server>__name` and `<server>+uri`; a harness that expects the server's
own names (such as ``../shared/bench/fidelity/features.py``) cannot call it as it is. This stdio shim
sits between the two: it adds the prefix to tool and prompt names, resource URIs and completion
references going in, and strips it from lists, results and resource notifications coming out.
Everything else passes as it came.

    python -m evals.bench.prefix_shim SERVER -- mcp-gateway run --mcp-json-path ONE_SERVER.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any


class Shim:
    def __init__(self, server: str) -> None:
        self.name_prefix, self.uri_prefix = f"{server}__", f"{server}+"
        self.methods: dict[Any, str] = {}  # request id -> method, to know what an answer answers

    def inbound(self, message: dict[str, Any]) -> dict[str, Any]:
        method, params = message.get("method"), message.get("params")
        if "id" in message and isinstance(method, str):
            self.methods[message["id"]] = method
        if not isinstance(params, dict):
            return message
        if method in ("tools/call", "prompts/get") and isinstance(params.get("name"), str):
            params["name"] = self.name_prefix + params["name"]
        elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe") and "uri" in params:
            params["uri"] = self.uri_prefix + str(params["uri"])
        elif method == "completion/complete" and isinstance(params.get("ref"), dict):
            ref = params["ref"]
            key, prefix = ("name", self.name_prefix) if ref.get("type") == "ref/prompt" else ("uri", self.uri_prefix)
            if isinstance(ref.get(key), str):
                ref[key] = prefix + ref[key]
        return message

    def outbound(self, message: dict[str, Any]) -> dict[str, Any]:
        if "method" in message:
            if message["method"] == "notifications/resources/updated":
                message["params"] = self._uris(message.get("params"))
            return message
        answered = self.methods.pop(message.get("id"), None)
        result = message.get("result")
        if isinstance(result, dict):
            if answered in ("tools/list", "prompts/list"):
                for item in [*result.get("tools", []), *result.get("prompts", [])]:
                    if isinstance(item, dict) and str(item.get("name", "")).startswith(self.name_prefix):
                        item["name"] = item["name"][len(self.name_prefix) :]
            message["result"] = self._uris(result)
        return message

    def _uris(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._uris(item) for item in value]
        if not isinstance(value, dict):
            return value
        out = {key: self._uris(item) for key, item in value.items()}
        for key in ("uri", "uriTemplate"):
            if isinstance(out.get(key), str) and out[key].startswith(self.uri_prefix):
                out[key] = out[key][len(self.uri_prefix) :]
        return out


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 1:
        print(__doc__, file=sys.stderr)
        return 2
    shim = Shim(argv[0])
    gateway = subprocess.Popen(argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert gateway.stdin is not None and gateway.stdout is not None
    downstream, upstream = gateway.stdin, gateway.stdout

    def pump_out() -> None:
        for line in upstream:
            sys.stdout.write(json.dumps(shim.outbound(json.loads(line))) + "\n")
            sys.stdout.flush()

    threading.Thread(target=pump_out, daemon=True).start()
    for line in sys.stdin:
        downstream.write((json.dumps(shim.inbound(json.loads(line))) + "\n").encode())
        downstream.flush()
    downstream.close()
    return gateway.wait(30)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
