"""``mcp-gateway doctor``: is everything in place, and if not, what to do about it.

Checks, each with a fix when it fails: the gateway command IDE configs point at; every configured
server (wrapped or not, command found, starts and answers ``initialize`` through the gateway within
a timeout); the policies (sources parse, locks fresh); and the judge (reachable, model present,
answers two canary questions correctly and in time).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from .clientscan import ClientServer
from .settings import Settings

__all__ = ["Check", "check_judge", "check_policies", "check_servers"]

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    area: str
    subject: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "area": self.area,
            "subject": self.subject,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
        }


def _gateway_argv(server: ClientServer, gateway: str) -> list[str] | None:
    """How the IDE starts this server, or how it would through the gateway if it is not wrapped yet."""
    entry = server.entry
    if server.wrapped:
        return [str(entry["command"]), *map(str, entry.get("args") or [])]
    spec = server.spec
    if spec is None:
        return None
    if spec.stdio is not None:
        return [gateway, "wrap", "--name", server.name, "--", spec.stdio.command, *spec.stdio.args]
    argv = [gateway, "wrap", "--name", server.name, "--url", str(spec.url), "--remote-transport", spec.transport]
    for key, value in spec.headers:
        argv += ["--header", f"{key}: {value}"]
    return argv


async def _start(argv: list[str], env: dict[str, str], cwd: str | None, timeout: float) -> tuple[float, int]:
    started = time.perf_counter()
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd)
    with anyio.fail_after(timeout), open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            elapsed = time.perf_counter() - started
            tools = await session.list_tools()
    return elapsed, len(tools.tools)


def check_servers(servers: Sequence[ClientServer], gateway: str, *, timeout: float, start: bool) -> list[Check]:
    checks: list[Check] = []
    for server in servers:
        label = f"{server.name} ({server.location.label}, {server.location.path})"
        if server.spec is None:
            checks.append(
                Check(
                    "server",
                    label,
                    "fail",
                    server.problem or "not understood",
                    "fix the entry: it needs 'command' (and 'args') or 'url'",
                )
            )
            continue
        if not server.wrapped:
            checks.append(
                Check(
                    "server",
                    label,
                    "warn",
                    "not behind the gateway",
                    f"run 'mcp-gateway install --client {server.location.client.name}'",
                )
            )
        else:
            command = str(server.entry.get("command"))
            if not (os.path.isabs(command) and os.access(command, os.X_OK)):
                checks.append(
                    Check(
                        "server",
                        label,
                        "fail",
                        f"gateway command {command!r} is not an absolute, "
                        "executable path (GUI apps start with a minimal PATH)",
                        "run 'mcp-gateway uninstall' then 'mcp-gateway install' again",
                    )
                )
        spec = server.spec
        env = {**os.environ, **dict(spec.stdio.env if spec.stdio else ())}
        if spec.stdio is not None and not (
            os.path.exists(spec.stdio.command) or shutil.which(spec.stdio.command, path=env.get("PATH"))
        ):
            checks.append(
                Check(
                    "server",
                    label,
                    "fail",
                    f"command {spec.stdio.command!r} is not found",
                    "install it, or put its absolute path in the config",
                )
            )
            continue
        if not start:
            continue
        argv = _gateway_argv(server, gateway)
        assert argv is not None
        try:
            elapsed, tools = anyio.run(_start, argv, env, spec.stdio.cwd if spec.stdio else None, timeout)
        except TimeoutError:
            checks.append(
                Check(
                    "server",
                    label,
                    "fail",
                    f"did not answer initialize and tools/list within {timeout:g} s through the gateway",
                    "start it by hand to see its errors",
                )
            )
        except Exception as exc:  # every failure to start is reported, never raised
            checks.append(
                Check(
                    "server",
                    label,
                    "fail",
                    f"failed through the gateway: {type(exc).__name__}: {exc}"[:300],
                    "run the command by hand; check 'mcp-gateway logs'",
                )
            )
        else:
            checks.append(
                Check(
                    "server", label, "ok", f"initialize in {elapsed:.2f} s through the gateway; {tools} tool(s) listed"
                )
            )
    return checks


def check_policies(settings: Settings) -> list[Check]:
    from policy.errors import PolicyError
    from policy.loader import discover_sources
    from policy.lockfile import LockStatus, lock_status
    from policy.source import load_source

    from .runtime import policy_paths

    checks: list[Check] = []
    try:
        paths = discover_sources(policy_paths(settings))
    except PolicyError as exc:
        return [Check("policies", "paths", "fail", str(exc), "fix 'policies' in your settings")]
    for path in paths:
        try:
            status = lock_status(load_source(path))
        except PolicyError as exc:
            checks.append(Check("policies", str(path), "fail", str(exc), "fix the policy file"))
            continue
        if status is LockStatus.FRESH:
            checks.append(Check("policies", path.name, "ok", "compiled and up to date"))
        else:
            checks.append(
                Check(
                    "policies",
                    path.name,
                    "warn",
                    f"lock file is {status.value}: enforced from an offline compile",
                    f"run 'mcp-gateway policy compile {path}'",
                )
            )
    return checks


def check_judge(settings: Settings) -> list[Check]:
    from policy.judge import canary_check

    from .runtime import build_judge

    judge_settings = settings.judge
    if not judge_settings.model:
        return [
            Check(
                "judge",
                "(none)",
                "warn",
                "no judge model configured: unsure cases are decided by the classifier thresholds",
                "set --judge-model or MCP_GATEWAY_JUDGE__MODEL (e.g. "
                "ollama_chat/qwen2.5:1.5b with MCP_GATEWAY_JUDGE__API_BASE)",
            )
        ]
    model, base = judge_settings.model, judge_settings.api_base
    checks = [_model_present(model, base, judge_settings.timeout_s)]
    if checks[0].status == "fail":
        return checks
    judge = build_judge(settings)
    assert judge is not None
    for index, result in enumerate(canary_check(judge), start=1):
        status: Status = "ok" if result.ok and result.latency_ms <= judge_settings.timeout_s * 1000 else "fail"
        fix = (
            ""
            if status == "ok"
            else (
                "use a larger judge model, or keep the judge out of blocking decisions"
                if "WRONG" in result.detail
                else "check the server and model name"
            )
        )
        checks.append(
            Check("judge", f"{model} canary {index}", status, f"{result.detail} ({result.latency_ms:.0f} ms)", fix)
        )
    return checks


def _model_present(model: str, base: str | None, timeout: float) -> Check:
    provider, _, name = model.partition("/")
    if not base or provider not in ("ollama", "ollama_chat", "openai", "hosted_vllm", "lm_studio"):
        return Check("judge", model, "ok", "hosted model: presence is checked by the canary questions")
    import httpx

    url = base.rstrip("/") + ("/api/tags" if provider.startswith("ollama") else "/models")
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        data: Any = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Check(
            "judge",
            model,
            "fail",
            f"{url} is not reachable ({type(exc).__name__}: {exc})"[:300],
            "start the model server (e.g. 'ollama serve' or llama-cpp-python) or fix the api base",
        )
    if provider.startswith("ollama"):
        names = {str(m.get("name", "")) for m in data.get("models", []) if isinstance(m, dict)}
        present = name in names or f"{name}:latest" in names
        fix = f"run 'ollama pull {name}'"
    else:
        names = {str(m.get("id", "")) for m in data.get("data", []) if isinstance(m, dict)}
        present = name in names or not names
        fix = f"serve the model under the name {name!r}"
    if not present:
        return Check(
            "judge",
            model,
            "fail",
            f"model {name!r} is not served at {base} (has: {', '.join(sorted(names)) or 'none'})",
            fix,
        )
    return Check("judge", model, "ok", f"reachable at {base}, model present")


def gateway_path() -> str:
    script = Path(sys.executable).parent / "mcp-gateway"
    return str(script) if script.exists() else (shutil.which("mcp-gateway") or "mcp-gateway")
