"""``mcp-gateway doctor``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._common import EXIT_FINDINGS, ConfigOption, cli_errors, emit_json, fail, say, settings_from

_MARK = {"ok": "✓", "warn": "!", "fail": "✗"}


@app.command()
def doctor(
    client: Annotated[list[str] | None, typer.Option("--client", "-c", help="Only these clients; repeatable.")] = None,
    project: Annotated[Path | None, typer.Option("--project", help="Project folder for project configs.")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds a server gets to answer through the gateway.")
    ] = 60.0,
    no_start: Annotated[bool, typer.Option("--no-start", help="Do not start servers; only check the configs.")] = False,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="Check this judge model.")] = None,
    judge_api_base: Annotated[str | None, typer.Option("--judge-api-base", help="Its API base URL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    config: Path | None = ConfigOption,
) -> None:
    """Check configured servers (wrapped? command found? answers initialize through the gateway?), the
    policies, and the judge (reachable, model present, canary answers right and in time)."""
    from ..clients import ClientName
    from ..clientscan import configured_servers
    from ..doctor import check_judge, check_policies, check_servers, gateway_path

    settings = settings_from(config, judge={"model": judge_model, "api_base": judge_api_base})
    try:
        names = tuple(ClientName(c) for c in client) if client else tuple(ClientName)
    except ValueError:
        fail(f"unknown client in {client}; use {', '.join(c.value for c in ClientName)}")
    with cli_errors():
        servers = configured_servers(names, project)
        checks = check_servers(servers, gateway_path(), timeout=timeout, start=not no_start)
        checks += check_policies(settings)
        checks += check_judge(settings)
    if not servers:
        say("no configured MCP servers found in the clients' config files")
    area = ""
    for check in checks:
        if check.area != area:
            area = check.area
            say(f"\n{area}:")
        say(f"  {_MARK[check.status]} {check.subject}: {check.detail}")
        if check.fix:
            say(f"      → {check.fix}")
    if as_json:
        emit_json({"checks": [check.as_dict() for check in checks]})
    failed = sum(check.status == "fail" for check in checks)
    say(f"\n{failed} problem(s), {sum(c.status == 'warn' for c in checks)} warning(s)")
    if failed:
        raise typer.Exit(EXIT_FINDINGS)
