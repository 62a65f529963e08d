"""``mcp-gateway scan``: start each configured server, read its catalogue, report findings. Nothing is proxied.

Each server is started directly with the real MCP client and a timeout. Its tools, prompts and
instructions go through the engine (tool poisoning, hidden content, secrets in descriptions) and
the catalogue checks (look-alike names, sensitive references, instructions to the model,
cross-server shadowing and name collisions), and are compared with their pins.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from policy.engine import Engine
from policy.subject import Subject, SubjectKind

from .catalogue import Finding, explain_change, item_findings, shadowing_findings
from .guards import describe_tool
from .pins import PinStore, canonical_definition, definition_digest
from .specs import ServerSpec

__all__ = ["ServerReport", "scan_servers"]


@dataclass
class ServerReport:
    name: str
    status: str = "ok"
    error: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    instructions: str | None = None
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "tools": len(self.tools),
            "prompts": len(self.prompts),
            "findings": [finding.as_dict() for finding in self.findings],
        }
        if self.error:
            out["error"] = self.error
        return out


async def _catalogue(spec: ServerSpec, timeout: float) -> ServerReport:
    report = ServerReport(spec.name)
    try:
        with anyio.fail_after(timeout):
            async with _connect(spec) as (read, write), ClientSession(read, write) as session:
                init = await session.initialize()
                report.instructions = init.instructions
                cursor = None
                while True:
                    page = await session.list_tools(
                        params=types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    )
                    report.tools += [
                        tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in page.tools
                    ]
                    cursor = page.next_cursor
                    if not cursor:
                        break
                if init.capabilities.prompts is not None:
                    prompts = await session.list_prompts()
                    report.prompts = [
                        p.model_dump(mode="json", by_alias=True, exclude_none=True) for p in prompts.prompts
                    ]
    except TimeoutError:
        report.status, report.error = "error", f"did not answer within {timeout:g} s"
    except Exception as exc:  # one broken server must not stop the scan of the others
        report.status, report.error = "error", f"{type(exc).__name__}: {exc}"
    return report


def _connect(spec: ServerSpec) -> Any:
    if spec.stdio is not None:
        params = StdioServerParameters(
            command=spec.stdio.command,
            args=list(spec.stdio.args),
            env={**os.environ, **dict(spec.stdio.env)},
            cwd=spec.stdio.cwd,
        )
        return stdio_client(params, errlog=open(os.devnull, "w"))
    import httpx2

    if spec.transport == "sse":
        from mcp.client.sse import sse_client

        return sse_client(str(spec.url), headers=dict(spec.headers) or None)
    from contextlib import asynccontextmanager

    from mcp.client.streamable_http import streamable_http_client

    @asynccontextmanager
    async def http() -> Any:
        async with (
            httpx2.AsyncClient(headers=dict(spec.headers)) as client,
            streamable_http_client(str(spec.url), http_client=client) as streams,
        ):
            yield streams[0], streams[1]

    return http()


def _engine_findings(engine: Engine, server: str, label: str, text: str) -> list[Finding]:
    subject = Subject(kind=SubjectKind.TOOL_DESCRIPTION, server=server, tool=label, method="scan", text=text)
    findings = []
    for verdict in engine.check(subject):
        if verdict.violated:
            severity = "critical" if verdict.policy == "tool-poisoning" else "high"
            detail = (
                verdict.reason
                if verdict.tier.value != "detector"
                else (f"{verdict.reason} at " + ", ".join(f"{s.start}-{s.end}" for s in verdict.evidence[:3]))
            )
            findings.append(Finding(server, label, verdict.policy, severity, detail[:400]))  # type: ignore[arg-type]
    return findings


async def scan_servers(
    specs: Sequence[ServerSpec],
    engine: Engine,
    *,
    timeout: float = 30.0,
    pins: PinStore | None = None,
    concurrency: int = 4,
) -> list[ServerReport]:
    reports: dict[str, ServerReport] = {}
    limiter = anyio.Semaphore(concurrency)

    async def one(spec: ServerSpec) -> None:
        async with limiter:
            reports[spec.name] = await _catalogue(spec, timeout)

    async with anyio.create_task_group() as tg:
        for spec in specs:
            tg.start_soon(one, spec)
    ordered = [reports[spec.name] for spec in specs]
    for report in ordered:
        if report.status != "ok":
            continue
        items = [("tool", t, str(t.get("name", ""))) for t in report.tools]
        items += [("prompt", p, f"prompt:{p.get('name', '')}") for p in report.prompts]
        if report.instructions:
            items.append(
                ("instructions", {"name": "(instructions)", "description": report.instructions}, "(instructions)")
            )
        for kind, item, label in items:
            text = describe_tool(item)
            if text.strip():
                report.findings += await anyio.to_thread.run_sync(_engine_findings, engine, report.name, label, text)
            report.findings += item_findings(report.name, item, label)
            if pins is not None:
                report.findings += _pin_findings(pins, report.name, kind, item, label)
    shadow = shadowing_findings({r.name: r.tools for r in ordered if r.status == "ok"})
    for finding in shadow:
        reports[finding.server].findings.append(finding)
    return ordered


def _pin_findings(pins: PinStore, server: str, kind: str, item: dict[str, Any], label: str) -> list[Finding]:
    current = canonical_definition(kind, item)
    pinned = next(
        (row for row in pins.rows(server) if row["kind"] == kind and row["name"] == current.get("name")), None
    )
    if pinned is None or pinned["digest"] == definition_digest(current):
        return []
    notes = explain_change(pinned["definition"], current)
    return [Finding(server, label, "rug-pull", "high", "changed since pinned: " + "; ".join(notes))]
