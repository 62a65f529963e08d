"""``mcp-gateway install`` and ``mcp-gateway uninstall``: put every server of an MCP client behind the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..clients import ClientName, ConfigLocation, Environment, all_locations, spec_for_file
from ..errors import ClientConfigError
from ..installer import Action, FileResult, find_gateway, run
from ..installstate import state_path
from ._app import app
from ._common import EXIT_FINDINGS, cli_errors, emit_json, fail, say

ClientOpt = Annotated[
    list[ClientName] | None,
    typer.Option("--client", "-c", help="Client whose config files to edit; repeatable.", case_sensitive=False),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every client listed under --client.")]
ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--config",
        help="Edit this file instead of the clients' usual ones; repeatable. Its format is --client's, "
        "else guessed (.toml: Codex; JSON: mcpServers, servers or mcp.servers).",
    ),
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option("--project", help="Project folder for project-level configs (default: the current folder)."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print a unified diff of each change; write nothing.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")]


@app.command()
def install(
    *,
    client: ClientOpt = None,
    all_clients: AllOpt = False,
    config: ConfigOpt = None,
    project: ProjectOpt = None,
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="Path of the mcp-gateway executable (default: the one running).")
    ] = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Put every server of a client behind the gateway: each becomes 'mcp-gateway wrap --name NAME -- ...'.

    Keeps env and every other key; leaves wrapped entries alone; writes atomically, after a backup.

    Undo with 'mcp-gateway uninstall'.
    """
    env = Environment.from_os(project)
    locations = _locations(env, client, all_clients, config)
    with cli_errors():
        executable = find_gateway(gateway)
        results = run(
            Action.INSTALL, locations, state_file=state_path(env.state_dir), gateway=executable, dry_run=dry_run
        )
    _report(Action.INSTALL, locations, results, dry_run=dry_run, as_json=as_json)


@app.command()
def uninstall(
    *,
    client: ClientOpt = None,
    all_clients: AllOpt = False,
    config: ConfigOpt = None,
    project: ProjectOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Give back every server the gateway wraps, exactly as it was before 'install'.

    Hand edits to a wrapped entry are kept; an entry that no longer runs 'wrap' is left alone and reported.
    """
    env = Environment.from_os(project)
    locations = _locations(env, client, all_clients, config)
    with cli_errors():
        results = run(Action.UNINSTALL, locations, state_file=state_path(env.state_dir), dry_run=dry_run)
    _report(Action.UNINSTALL, locations, results, dry_run=dry_run, as_json=as_json)


def _locations(
    env: Environment, clients: list[ClientName] | None, all_clients: bool, files: list[Path] | None
) -> list[ConfigLocation]:
    clients = clients or []
    if files:
        if all_clients or len(clients) > 1:
            fail("--config takes at most one --client (the file's format) and no --all")
        missing = [path for path in files if not path.is_file()]
        if missing:
            what = "is a directory; pass the config file inside it" if missing[0].is_dir() else "no such file"
            with cli_errors():
                raise ClientConfigError(f"{missing[0]}: {what}")
        return [spec_for_file(path, clients[0] if clients else None) for path in files]
    if all_clients:
        return all_locations(env)
    if clients:
        return all_locations(env, tuple(clients))
    found = sorted({loc.client.name for loc in all_locations(env) if loc.path.is_file()})
    hint = f" Config files found for: {', '.join(found)}." if found else " No client config files were found."
    fail(f"say which clients: --client NAME (repeatable) or --all.{hint}")


def _report(
    action: Action, locations: list[ConfigLocation], results: list[FileResult], *, dry_run: bool, as_json: bool
) -> None:
    findings = 0
    for result in results:
        plan = result.plan
        say(f"{plan.location.label}: {plan.location.path}")
        if not plan.entries:
            say("  no servers")
        for entry in plan.entries:
            detail = f": {entry.reason}" if entry.reason else ""
            say(f"  {entry.status.value:<22} {entry.where}{detail}")
            for warning in entry.warnings:
                say(f"  {'warning':<22} {entry.where}: {warning}")
            findings += entry.is_finding + len(entry.warnings)
        if dry_run and plan.changed:
            say(plan.diff().rstrip("\n"))
        if result.backup is not None:
            say(f"  backup: {result.backup}")
    changed = [r for r in results if r.plan.changed]
    if not results:
        say(f"No config files found; looked for: {', '.join(str(loc.path) for loc in locations)}")
    elif dry_run:
        say(f"Dry run: {len(changed)} file(s) would change; nothing was written.")
    elif changed:
        say(f"{action.value}: {len(changed)} file(s) changed. Restart the clients to apply.")
    else:
        say(f"{action.value}: nothing to change.")
    if findings:
        say(f"{findings} finding(s): see 'skipped', 'left-wrapped' and 'warning' lines above.")
    if as_json:
        emit_json(
            {
                "action": action.value,
                "dry_run": dry_run,
                "findings": findings,
                "files": [_file_json(result) for result in results],
            }
        )
    if findings:
        raise typer.Exit(EXIT_FINDINGS)


def _file_json(result: FileResult) -> dict[str, object]:
    plan = result.plan
    return {
        "client": plan.location.client.name,
        "scope": plan.location.scope.value,
        "path": str(plan.location.path),
        "changed": plan.changed,
        "backup": str(result.backup) if result.backup else None,
        "diff": plan.diff() if plan.changed else "",
        "entries": [
            {
                "table": list(entry.table),
                "name": entry.name,
                "status": entry.status.value,
                "reason": entry.reason,
                "warnings": list(entry.warnings),
            }
            for entry in plan.entries
        ],
    }
