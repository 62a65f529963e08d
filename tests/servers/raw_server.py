"""A raw JSON-RPC stdio MCP server for fault tests: it can crash, hang, spew garbage, send huge
results, ask the client for sampling, report progress and change its tool list.

Every message it receives is appended (one JSON line) to $RAW_SERVER_LOG, so tests can check
what actually reached the server.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from typing import Any

LOG = os.environ.get("RAW_SERVER_LOG")
OUT = sys.stdout.buffer
LOCK = threading.Lock()
pending: dict[Any, threading.Event] = {}
answers: dict[Any, Any] = {}

TOOLS = [
    {"name": name, "description": f"{name} tool", "inputSchema": {"type": "object"}}
    for name in (
        "echo", "crash", "hang", "garbage", "huge", "slow", "sample", "progress", "changed", "leak", "args", "chatter",
        "fail", "elicit", "sides", "complain", "order", "crossed", "tasky", "verbatim",
    )
] + [
    {
        "name": "card",  # a typed result: the client validates structuredContent against outputSchema
        "description": "card tool",
        "inputSchema": {"type": "object"},
        "outputSchema": {
            "type": "object",
            "properties": {"holder": {"type": "string"}, "card_number": {"type": "integer"}},
            "required": ["holder", "card_number"],
        },
    },
    {
        "name": "typed_token",  # a result whose schema a masked token cannot fit
        "description": "typed token tool",
        "inputSchema": {"type": "object"},
        "outputSchema": {
            "type": "object",
            "properties": {"token": {"type": "string", "pattern": "^ghp_[A-Za-z0-9]{36}$"}},
            "required": ["token"],
        },
    },
]


TASKS: dict[str, str] = {}  # task id -> what it will answer


def _task(task_id: str) -> dict[str, Any]:
    note = os.environ.get("RAW_SERVER_TASK_NOTE", "done")
    return {"taskId": task_id, "status": "completed", "statusMessage": f"finished: {note}",
            "createdAt": "2026-01-01T00:00:00Z", "lastUpdatedAt": "2026-01-01T00:00:00Z", "ttl": 60000}


def send(message: dict[str, Any]) -> None:
    with LOCK:
        OUT.write(json.dumps(message).encode() + b"\n")
        OUT.flush()


def text_result(request_id: Any, text: str, **extra: Any) -> None:
    send({"jsonrpc": "2.0", "id": request_id, "result": {"content": [{"type": "text", "text": text}], **extra}})


def call_tool(request_id: Any, params: dict[str, Any]) -> None:
    name = params.get("name")
    args = params.get("arguments") or {}
    if name == "echo":
        text_result(request_id, str(args.get("text", "")))
    elif name == "crash":
        sys.stderr.write("raw-server: fatal: simulated crash in tool 'crash'\n")
        sys.stderr.flush()
        os._exit(3)
    elif name == "hang":
        return
    elif name == "garbage":
        with LOCK:
            OUT.write(b"this is not json {{{\n")
            OUT.flush()
        text_result(request_id, "after-garbage")
    elif name == "huge":
        text_result(request_id, "x" * int(args.get("bytes", 1000)))
    elif name == "slow":
        time.sleep(float(args.get("seconds", 1)))
        text_result(request_id, "slow-done")
    elif name == "progress":
        token = (params.get("_meta") or {}).get("progressToken")
        for step in range(1, 4):
            if token is not None:
                # whole numbers, and on the last step a _meta and a field of the server's own: all pass as sent
                note: dict[str, Any] = {"progressToken": token, "progress": step, "total": 3}
                if step == 3:
                    note.update({"_meta": {"trace": "t-3"}, "phase": "done"})
                send({"jsonrpc": "2.0", "method": "notifications/progress", "params": note})
        text_result(request_id, "progress-done")
    elif name == "chatter":  # says `text` in a log message and a progress message, then answers "chatted"
        said = str(args.get("text", ""))
        send({"jsonrpc": "2.0", "method": "notifications/message",
              "params": {"level": "info", "logger": "raw", "data": {"note": f"using {said}"}}})
        token = (params.get("_meta") or {}).get("progressToken")
        if token is not None:
            send({"jsonrpc": "2.0", "method": "notifications/progress",
                  "params": {"progressToken": token, "progress": 1, "total": 1, "message": f"sent with {said}",
                             "detail": {"note": f"using {said}"}}})
        text_result(request_id, "chatted")
    elif name == "fail":  # answers with a JSON-RPC error that repeats `text`
        said = str(args.get("text", ""))
        send({"jsonrpc": "2.0", "id": request_id,
              "error": {"code": -32000, "message": f"could not connect with {said}", "data": {"tried": said}}})
    elif name == "elicit":  # asks the user to confirm `text`, answers with what the client said
        ask_id = f"srv-{request_id}"
        event = threading.Event()
        pending[ask_id] = event
        send({"jsonrpc": "2.0", "id": ask_id, "method": "elicitation/create",
              "params": {"message": f"Confirm {args.get('text', '')}?",
                         "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}})
        event.wait(30)
        text_result(request_id, "elicited: " + json.dumps(answers.pop(ask_id, {}), sort_keys=True))
    elif name == "sides":  # puts `text` in _meta, a resource link and a text blob; a binary blob beside them
        said = str(args.get("text", ""))
        encoded = base64.b64encode(f"TOKEN={said}\n".encode()).decode()
        send({"jsonrpc": "2.0", "id": request_id, "result": {
            "content": [
                {"type": "text", "text": "see the links", "_meta": {"debug": said}},
                {"type": "resource_link", "name": "cfg", "uri": f"https://u:{said}@example.com/x",
                 "description": f"made with {said}"},
                {"type": "resource", "resource": {"uri": "mem://env", "mimeType": "text/plain", "blob": encoded}},
                {"type": "image", "data": base64.b64encode(bytes(range(256))).decode(), "mimeType": "image/png"},
            ],
            "_meta": {"auth": f"Bearer {said}"},
        }})
    elif name == "order":  # log and progress messages, long (checked on a thread) and short by turns, then the answer
        token = (params.get("_meta") or {}).get("progressToken")
        for step in range(6):
            said = f"step {step} " + ("x" * 700 if step % 2 == 0 else "")
            send({"jsonrpc": "2.0", "method": "notifications/message",
                  "params": {"level": "info", "logger": "raw", "data": said}})
            if token is not None:
                send({"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": token, "progress": step + 1, "total": 6, "message": said}})
        text_result(request_id, "ordered")
    elif name == "tasky" and isinstance(params.get("task"), dict):  # run as a task: answered by tasks/result
        task_id = f"{os.environ.get('RAW_SERVER_NAME', 'raw')}-task-{request_id}"
        TASKS[task_id] = str(args.get("text", ""))
        send({"jsonrpc": "2.0", "id": request_id, "result": {"task": _task(task_id)}})
        send({"jsonrpc": "2.0", "method": "notifications/tasks/status", "params": _task(task_id)})
    elif name == "crossed":  # `text` as a password in structuredContent, and unnamed in _meta and a link
        said = str(args.get("text", ""))
        send({"jsonrpc": "2.0", "id": request_id, "result": {
            "content": [
                {"type": "text", "text": "login stored"},
                {"type": "resource_link", "name": "vault", "uri": "mem://vault", "description": f"holds {said}"},
            ],
            "structuredContent": {"user": "svc", "password": said},
            "_meta": {"note": f"stored {said}"},
        }})
    elif name == "complain":  # writes `text` to stderr, then answers
        sys.stderr.write(f"raw-server: connecting with {args.get('text', '')}\n")
        sys.stderr.flush()
        text_result(request_id, "complained")
    elif name == "typed_token":
        token = {"token": str(args.get("text", ""))}
        text_result(request_id, json.dumps(token), structuredContent=token)
    elif name == "card":
        card = {"holder": "team account", "card_number": 4111111111111111}
        text_result(request_id, json.dumps(card), structuredContent=card)
    elif name == "changed":
        TOOLS.append({"name": f"extra{len(TOOLS)}", "inputSchema": {"type": "object"}})
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        text_result(request_id, "changed")
    elif name == "verbatim":  # each of `frames` as a line, as written ({id} is the call's id): malformed on purpose
        frames = args.get("frames", [])
        if "file" in args:  # or the lines of a file: what the call's arguments must not carry (they are checked)
            with open(args["file"], encoding="utf-8") as lines:
                frames = lines.read().splitlines()
        with LOCK:
            for frame in frames:
                OUT.write(str(frame).replace("{id}", json.dumps(request_id)).encode() + b"\n")
            OUT.flush()
    elif name == "leak":
        text = str(args["reverse"])[::-1] if "reverse" in args else str(args.get("text", ""))
        text_result(request_id, text, structuredContent={"value": text})
    elif name == "args":
        text_result(request_id, json.dumps(args, sort_keys=True))
    elif name == "sample":
        ask_id = f"srv-{request_id}"
        event = threading.Event()
        pending[ask_id] = event
        send(
            {
                "jsonrpc": "2.0",
                "id": ask_id,
                "method": "sampling/createMessage",
                "params": {
                    "messages": [{"role": "user", "content": {"type": "text", "text": str(args.get("text", "hi"))}}],
                    "maxTokens": 20,
                },
            }
        )
        event.wait(30)
        reply = answers.pop(ask_id, {})
        text_result(request_id, "sampled: " + json.dumps(reply, sort_keys=True))
    else:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": f"no tool {name}"}})


def handle(message: dict[str, Any]) -> None:
    method = message.get("method")
    request_id = message.get("id")
    if method is None:
        if request_id in pending:
            answers[request_id] = message.get("result", message.get("error"))
            pending.pop(request_id).set()
        return
    if method == "initialize":
        send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "result": {
                    "protocolVersion": message["params"].get("protocolVersion", "2025-06-18"),
                    "capabilities": {"tools": {"listChanged": True}},
                    "serverInfo": {"name": "raw-server", "version": "1.0", "x-unknown-field": {"kept": True}},
                    "instructions": os.environ.get("RAW_SERVER_INSTRUCTIONS", "fault injection server"),
                },
            }
        )
    elif method == "tools/list":
        time.sleep(float(os.environ.get("RAW_SERVER_LIST_DELAY_S", "0")))
        tools = TOOLS
        if os.environ.get("RAW_SERVER_TOOLS"):
            with open(os.environ["RAW_SERVER_TOOLS"], encoding="utf-8") as spec:
                tools = json.load(spec)
        send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}})
    elif method == "tools/call":
        threading.Thread(target=call_tool, args=(request_id, message.get("params") or {}), daemon=True).start()
    elif method in ("tasks/get", "tasks/result"):
        task_id = str((message.get("params") or {}).get("taskId", ""))
        if task_id not in TASKS:
            send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": f"no task {task_id}"}})
        elif method == "tasks/get":
            send({"jsonrpc": "2.0", "id": request_id, "result": _task(task_id)})
        else:
            text_result(request_id, f"task said {TASKS[task_id]}")
    elif method == "tasks/list":
        send({"jsonrpc": "2.0", "id": request_id, "result": {"tasks": [_task(t) for t in TASKS]}})
    elif method == "resources/list":
        said = os.environ.get("RAW_SERVER_RESOURCE_SECRET", "nothing")
        send({"jsonrpc": "2.0", "id": request_id, "result": {"resources": [
            {"uri": f"postgres://orders:{said}@db.internal/orders", "name": "orders db",
             "description": f"password {said}"},
            {"uri": "mem://plain", "name": "plain"},
        ]}})
    elif method == "completion/complete":
        said = str(((message.get("params") or {}).get("argument") or {}).get("value", ""))
        send({"jsonrpc": "2.0", "id": request_id, "result": {"completion": {"values": [said, "plain"]}}})
    elif method == "ping" or (method == "logging/setLevel" and os.environ.get("RAW_SERVER_LOGGING")):
        send({"jsonrpc": "2.0", "id": request_id, "result": {}})
    elif request_id is not None:
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "Method not found"}})


def main() -> None:
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if not line:
            continue
        message = json.loads(line)
        if LOG:
            with open(LOG, "a", encoding="utf-8") as log_file:
                log_file.write(json.dumps(message) + "\n")
        handle_thread = threading.Thread(target=handle, args=(message,), daemon=True)
        handle_thread.start()
        handle_thread.join(0.05)


if __name__ == "__main__":
    main()
