"""``mcp-gateway logs``: read the audit log."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ..audit import AuditQuery, AuditRow, open_reader, query
from ._app import app
from ._common import EXIT_USAGE, ConfigOption, cli_errors, fail, say, settings_from

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, now: float) -> float | None:
    """'15m', '2h', '7d' ago, or an ISO date/time."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        fail(f"cannot read the time {value!r}: use 15m, 2h, 7d or an ISO date like 2026-11-23T10:00", EXIT_USAGE)


def _line(row: AuditRow) -> str:
    stamp = datetime.fromtimestamp(row.ts).strftime("%Y-%m-%d %H:%M:%S")
    target = f"{row.server}/{row.tool or row.method}"
    score = f" {row.score:.2f}" if row.score is not None else ""
    excerpt = row.excerpt.replace("\n", " ")[:80]
    return (
        f"{stamp} {row.applied:<5} {row.policy:<18} {target:<28} {row.kind:<16} {row.tier:<10}{score} "
        f"{row.latency_ms:6.1f}ms{' cached' if row.cache_hit else ''}  {row.reason[:90]}"
        + (f"  | {excerpt}" if excerpt else "")
    )


@app.command()
def logs(
    policy: Annotated[str | None, typer.Option("--policy", help="Only this policy id.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="What the gateway did: allow, block, mask, warn, audit.")
    ] = None,
    server: Annotated[str | None, typer.Option("--server", help="Only this server.")] = None,
    violations: Annotated[
        bool, typer.Option("--violations", help="Only decisions where a policy was violated.")
    ] = False,
    since: Annotated[str | None, typer.Option("--since", help="15m, 2h, 7d, or an ISO time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="15m, 2h, 7d, or an ISO time.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000_000, help="How many rows (newest).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines on stdout, one decision per line.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new decisions as they happen.")] = False,
    db: Annotated[Path | None, typer.Option("--db", help="Audit log file (default: the configured audit_db).")] = None,
    config: Path | None = ConfigOption,
) -> None:
    """Show the gateway's decisions, newest last."""
    settings = settings_from(config)
    if follow and until is not None:
        fail("--follow prints decisions as they happen, and --until would end that at once: drop one of them")
    if action is not None and action not in ("allow", "block", "mask", "warn", "audit"):
        fail(f"--action {action!r}: use allow, block, mask, warn or audit")
    now = time.time()
    base = AuditQuery(
        policy=policy,
        action=action,
        server=server,
        outcome="violation" if violations else None,
        since=parse_time(since, now),
        until=parse_time(until, now),
        limit=limit,
    )
    with cli_errors():
        connection = open_reader(db or settings.audit_db)
        rows = list(reversed(list(query(connection, base))))

    def show(items: list[AuditRow]) -> None:
        for row in items:
            if as_json:
                sys.stdout.write(json.dumps(row.as_dict(), ensure_ascii=False) + "\n")
            else:
                say(_line(row))
        sys.stdout.flush()

    if not rows and not follow and not as_json:
        say("no decisions match")
    show(rows)
    if not follow:
        return
    last = rows[-1].id if rows else max((r.id or 0 for r in query(connection, AuditQuery(limit=1))), default=0)
    try:
        while True:
            with cli_errors():
                fresh = list(
                    query(
                        connection,
                        AuditQuery(
                            policy=policy,
                            action=action,
                            server=server,
                            outcome=base.outcome,
                            after_id=last or 0,
                            limit=1000,
                        ),
                        newest_first=False,
                    )
                )
            if fresh:
                show(fresh)
                last = fresh[-1].id
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
