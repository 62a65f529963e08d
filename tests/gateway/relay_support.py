"""Running the real gateway as a subprocess in front of a real server, driven by the real client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from gateway.enginehost import EngineHost
from gateway.runtime import Runtime
from policy.compiled import CompiledPolicy, Provenance, Scope, Verification
from policy.conditions import Predicate, Rule
from policy.engine import Engine
from policy.lockfile import lock_path, write_lock
from policy.source import load_source
from policy.subject import SubjectKind
from policy.verdict import Action

RAW_SERVER = [sys.executable, str(Path(__file__).parent.parent / "servers" / "raw_server.py")]
HELLO = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}


def ready_host(*policies: CompiledPolicy) -> EngineHost:
    """An engine host serving `policies` (no models, no judge), loaded."""
    host = EngineHost(lambda: Runtime(engine=Engine(list(policies)), loaded=(), judge=None), warm=False)
    host.start()
    assert host.wait_ready(30)
    return host


def text(result: types.CallToolResult) -> str:
    """The text blocks of a tool result, joined."""
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def raw_entry(**env: str) -> dict[str, Any]:
    """An mcp.json entry that starts the raw test server, with `env` if given."""
    entry: dict[str, Any] = {"command": RAW_SERVER[0], "args": RAW_SERVER[1:]}
    return {**entry, "env": env} if env else entry


def write_mcp_json(directory: Path, servers: Mapping[str, Mapping[str, Any]]) -> Path:
    """`directory`/mcp.json naming `servers` (Cursor's format)."""
    path = directory / "mcp.json"
    path.write_text(json.dumps({"mcpServers": dict(servers)}), encoding="utf-8")
    return path


class RawSession:
    """One raw JSON-RPC session with the gateway as a subprocess: `ask` sends a request and returns its
    answer; the notifications that came meanwhile are kept in `notes`, in order. The gateway's stderr goes
    to `stderr` if given."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str], stderr: Path | None = None, *, ping_first: bool = False
    ) -> None:
        with stderr.open("wb") if stderr else open(os.devnull, "wb") as errors:
            self.process = subprocess.Popen([sys.executable, "-m", "gateway", *argv], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=errors, env=env)
        self.next_id = 0
        self.notes: list[dict[str, Any]] = []
        self.pong = self.ask("ping", {}) if ping_first else None  # a client may ping before it initializes
        self.hello = self.ask("initialize", HELLO)

    def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        request_id, self.next_id = self.next_id, self.next_id + 1
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            assert line, f"the gateway closed its stdout before answering {method}"
            answer: dict[str, Any] = json.loads(line)
            if answer.get("id") == request_id and "method" not in answer:
                return answer
            if "id" not in answer:
                self.notes.append(answer)

    def tell(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a notification."""
        assert self.process.stdin is not None
        message = {"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})}
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(15)
        self.process.stdout.close()


def write_rule_policy(
    directory: Path,
    policy_id: str,
    body: str,
    rules: list[Rule],
    kinds: list[SubjectKind],
    action: Action = Action.BLOCK,
    tools: Sequence[str] = ("*",),
    detectors: Sequence[str] = (),
) -> Path:
    """A policy source plus a lock holding exactly these rules (as a compile would write it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{policy_id}.md"
    path.write_text(f"---\nid: {policy_id}\naction: {action.value}\njudge: never\n---\n{body}\n", encoding="utf-8")
    source = load_source(path)
    policy = CompiledPolicy(
        id=policy_id,
        title=policy_id,
        body=body,
        action=action,
        on_error="block",
        scope=Scope(kinds=kinds, tools=list(tools)),
        rules=rules,
        detectors=list(detectors),
        rules_decide=True,
        verification=Verification(status="no_examples", examples=0, correct=0),
        provenance=Provenance(source=path.name, source_sha256=source.sha256, compiler="test", prompt_version=1),
    )
    write_lock(policy, lock_path(path))
    return path


def attacker_mail_policy(
    directory: Path,
    policy_id: str = "no-attacker-mail",
    *,
    path: str = "arguments.**",
    kinds: Sequence[SubjectKind] = (SubjectKind.TOOL_CALL,),
) -> Path:
    """A rule-only block policy: nothing at `path` may mention attacker-mail.example (rule 'attacker-domain')."""
    rule = Rule(
        id="attacker-domain",
        description="mentions attacker-mail.example",
        when=Predicate(path=path, op="contains", value="attacker-mail.example"),
    )
    return write_rule_policy(directory, policy_id, "Nothing may go to attacker-mail.example.", [rule], list(kinds))


def secrets_mask_policy(directory: Path) -> Path:
    """A detector-only policy: secrets in what servers send are masked (no models to load)."""
    kinds = [SubjectKind.TOOL_RESULT, SubjectKind.RESOURCE, SubjectKind.PROMPT]
    return write_rule_policy(directory, "mask-secrets", "Mask secrets servers send.", [], kinds,
                             action=Action.MASK, detectors=["secrets"])


def gateway_env(tmp: Path, **settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MCP_GATEWAY_AUDIT_DB": str(tmp / "audit.db"),
            "MCP_GATEWAY_PINS_DB": str(tmp / "pins.db"),
            "MCP_GATEWAY_CACHE_DIR": str(tmp / "cache"),
            "MCP_GATEWAY_CONFIG": str(tmp / "no-config.toml"),
            "RAW_SERVER_LOG": str(tmp / "server.log"),
        }
    )
    (tmp / "no-config.toml").write_text("", encoding="utf-8")
    env.update({f"MCP_GATEWAY_{key.upper()}": value for key, value in settings.items()})
    return env


@asynccontextmanager
async def gateway_client(
    tmp: Path, argv: Sequence[str], *, env: dict[str, str] | None = None, **client_kwargs: Any
) -> AsyncIterator[ClientSession]:
    """The real client on a gateway process started as `mcp-gateway ARGV` (its stderr in tmp/gateway.stderr)."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "gateway", *argv], env=env or gateway_env(tmp))
    errlog = (tmp / "gateway.stderr").open("w", encoding="utf-8")
    try:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(
            read, write, **client_kwargs
        ) as session:
            yield session
    finally:
        errlog.close()


@asynccontextmanager
async def gateway_session(
    tmp: Path,
    server: Sequence[str],
    *,
    gateway_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[ClientSession]:
    """The real client on `mcp-gateway wrap` in front of `server`."""
    argv = ["wrap", "--name", "raw", *gateway_args, "--", *server]
    async with gateway_client(tmp, argv, env=env, **client_kwargs) as session:
        yield session


def server_log(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "server.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
