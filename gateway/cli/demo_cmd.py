"""``mcp-gateway demo``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer

from ..demo import CALLS, DemoReport, run_demo
from ._app import app
from ._common import emit_json, say, setup_logging


def _show(result: dict[str, Any], width: int = 100) -> str:
    if "error" in result:
        return f"      ERROR: {result['error']}"
    lines = []
    flag = " (isError)" if result.get("is_error") else ""
    text = str(result.get("text", "")).strip() or "(no text)"
    for line in text.splitlines()[:9]:
        lines.extend(textwrap.wrap(line, width) or [""])
    meta = (result.get("meta") or {}).get("mcp-gateway")
    note = f"\n      [gateway: {meta}]" if meta else ""
    return "\n".join(f"      {line}" for line in lines[:12]) + flag + note


def _render(report: DemoReport) -> None:
    say("\n=== What the agent reads ===")
    for call, direct, guarded in zip(CALLS, report.direct, report.gateway, strict=True):
        say(f"\n▶ {call.tool}({', '.join(f'{k}=…' for k in call.arguments)}) — {call.story}")
        say("   without the gateway:")
        say(_show(direct))
        say("   through mcp-gateway:")
        say(_show(guarded))
    say("\n=== Decisions (every policy verdict, from the audit log) ===")
    shown = 0
    for row in report.decisions:
        if row["outcome"] != "violation":
            continue
        shown += 1
        say(
            f"\n• {row['tool'] or row['method']} [{row['kind']}] → {row['applied'].upper()} by policy "
            f"'{row['policy']}' (tier {row['tier']}, {row['latency_ms']:.1f} ms)"
        )
        say(f"    reason: {row['reason'][:200]}")
        for step in row["trace"]:
            score = f" score={step['score']:.3f}" if step.get("score") is not None else ""
            say(
                f"    trace: {step['tier']:<10} {step['result']:<9}{score} {step['latency_ms']:.2f} ms  "
                f"{step['detail'][:90]}"
            )
        if row["excerpt"]:
            say(f"    audit excerpt (masked): {row['excerpt'][:160]!r}")
    allowed = sum(1 for row in report.decisions if row["outcome"] != "violation")
    say(f"\n{shown} violation(s) and {allowed} allow verdict(s) recorded in the audit log.")
    say(f"The server itself received this email body: {report.server_saw!r}")
    say(
        f"(direct run {report.seconds['direct']:.1f} s, gateway run {report.seconds['gateway']:.1f} s "
        "including model loading)"
    )


@app.command()
def demo(
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where to keep the demo's audit log and logs.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The full report as JSON on stdout.")] = False,
) -> None:
    """Run the gateway in front of the bundled demo server and show what it changes."""
    setup_logging()
    report = run_demo(workdir, progress=say)
    if as_json:
        emit_json(
            {
                "direct": report.direct,
                "gateway": report.gateway,
                "decisions": report.decisions,
                "seconds": report.seconds,
            }
        )
    _render(report)
