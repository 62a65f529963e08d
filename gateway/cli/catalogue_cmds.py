"""``mcp-gateway scan`` and ``mcp-gateway pins list|diff|approve|reset``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import anyio
import typer

from ..catalogue import explain_change
from ..mcpjson import load_servers
from ..pins import PinStore
from ..runtime import build_runtime
from ..specs import ServerSpec
from ._app import app
from ._common import EXIT_FINDINGS, ConfigOption, cli_errors, emit_json, fail, say, settings_from

pins_app = typer.Typer(help="Pinned tool definitions: list, diff, approve or reset them.", no_args_is_help=True)
app.add_typer(pins_app, name="pins")

_SEVERITY = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def _specs_for(config_path: Path | None, client: str | None) -> list[ServerSpec]:
    if config_path is not None:
        return load_servers(config_path.expanduser())
    if client is not None:
        from ..clientscan import client_server_specs

        return client_server_specs(client)
    if Path(".mcp.json").exists():
        return load_servers(Path(".mcp.json"))
    fail("say what to scan: --config PATH (an mcp.json) or --client NAME")


@app.command()
def scan(
    config_path: Annotated[Path | None, typer.Option("--config", help="A client config or mcp.json to scan.")] = None,
    client: Annotated[str | None, typer.Option("--client", help="Scan a client's configured servers.")] = None,
    output_format: Annotated[Literal["text", "json"], typer.Option("--format", help="text or json (stdout).")] = "text",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds each server gets to start and list.")] = 30.0,
    min_severity: Annotated[str, typer.Option("--min-severity", help="Report findings at or above this.")] = "medium",
    use_pins: Annotated[bool, typer.Option("--pins/--no-pins", help="Compare with pinned definitions.")] = True,
    config: Path | None = ConfigOption,
) -> None:
    """Start each configured server, list its catalogue and report poisoned, hidden, shadowing or changed
    definitions, without proxying anything. Exit 1 on findings (CI-friendly)."""
    if min_severity not in _SEVERITY:
        fail(f"--min-severity must be one of {', '.join(_SEVERITY)}")
    settings = settings_from(config)
    with cli_errors():
        specs = _specs_for(config_path, client)
        runtime = build_runtime(settings, with_judge=bool(settings.judge.model))
        runtime.engine.policies = [p for p in runtime.engine.policies if "tool_description" in p.scope.kinds]
        pins = PinStore(settings.pins_db) if use_pins and settings.pins_db.exists() else None
    say(f"scanning {len(specs)} server(s) …")
    reports = anyio.run(lambda: _run_scan(specs, runtime.engine, timeout, pins))
    floor = _SEVERITY[min_severity]
    total = 0
    for report in reports:
        report.findings = [f for f in report.findings if _SEVERITY[f.severity] >= floor]
        total += len(report.findings)
    if output_format == "json":
        emit_json({"servers": [report.as_dict() for report in reports], "findings": total})
    for report in reports:
        if report.status != "ok":
            say(f"✗ {report.name}: could not scan: {report.error}")
            continue
        mark = "✓" if not report.findings else "!"
        say(
            f"{mark} {report.name}: {len(report.tools)} tool(s), {len(report.prompts)} prompt(s), "
            f"{len(report.findings)} finding(s)"
        )
        for finding in report.findings:
            say(f"    [{finding.severity}] {finding.tool}: {finding.policy}: {finding.evidence[:220]}")
    errors = sum(report.status != "ok" for report in reports)
    say(f"{total} finding(s) in {len(reports)} server(s)" + (f"; {errors} could not be scanned" if errors else ""))
    if total or errors:
        raise typer.Exit(EXIT_FINDINGS)


async def _run_scan(specs: list[ServerSpec], engine: object, timeout: float, pins: PinStore | None) -> list:  # type: ignore[type-arg]
    from ..scan import scan_servers

    return await scan_servers(specs, engine, timeout=timeout, pins=pins)  # type: ignore[arg-type]


def _store(config: Path | None) -> PinStore:
    settings = settings_from(config)
    with cli_errors():
        return PinStore(settings.pins_db)


@pins_app.command("list")
def pins_list(
    server: Annotated[str | None, typer.Option("--server", help="Only this server.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    config: Path | None = ConfigOption,
) -> None:
    """Every pinned definition, and which ones changed and wait for approval."""
    rows = _store(config).rows(server)
    if as_json:
        emit_json([{k: v for k, v in row.items()} for row in rows])
    if not rows:
        say("no pins yet: they are taken the first time the gateway relays a server's tool list")
    for row in rows:
        when = datetime.fromtimestamp(row["pinned_at"]).strftime("%Y-%m-%d %H:%M")
        state = "CHANGED, quarantined" if row["pending_digest"] else "pinned"
        say(f"{row['server']:<20} {row['kind']:<12} {row['name']:<32} {state:<22} since {when}")


@pins_app.command("diff")
def pins_diff(
    server: Annotated[str | None, typer.Argument(help="Server name (default: all).")] = None,
    name: Annotated[str | None, typer.Argument(help="Tool or prompt name.")] = None,
    config: Path | None = ConfigOption,
) -> None:
    """What changed in each quarantined definition, in plain words."""
    changed = [
        row
        for row in _store(config).rows(server)
        if row["pending_definition"] is not None and (name is None or row["name"] == name)
    ]
    if not changed:
        say("no pending changes")
        return
    for row in changed:
        say(f"{row['server']} {row['kind']} {row['name']}:")
        for note in explain_change(row["definition"], row["pending_definition"]):
            say(f"    - {note}")
    raise typer.Exit(EXIT_FINDINGS)


@pins_app.command("approve")
def pins_approve(
    server: Annotated[str, typer.Argument(help="Server name.")],
    name: Annotated[str | None, typer.Argument(help="Tool or prompt name (default: every pending change).")] = None,
    config: Path | None = ConfigOption,
) -> None:
    """Accept a quarantined change: the new definition becomes the pin."""
    count = _store(config).approve(server, name)
    if not count:
        fail(f"nothing pending for {server}" + (f" {name}" if name else "") + "; see 'mcp-gateway pins list'")
    say(f"approved {count} change(s); the next tool list shows them again")


@pins_app.command("reset")
def pins_reset(
    server: Annotated[str | None, typer.Argument(help="Server name (default: all servers).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    config: Path | None = ConfigOption,
) -> None:
    """Forget pins; the next tool list is pinned afresh."""
    if not yes and not typer.confirm(f"forget the pins of {server or 'every server'}?", err=True):
        raise typer.Exit(1)
    count = _store(config).reset(server)
    say(f"removed {count} pin(s)")
