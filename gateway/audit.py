"""The audit log: one SQLite row per policy decision, with its trace and a masked excerpt.

The database runs in WAL mode so that `mcp-gateway logs --follow` can read while gateways
write. Rows are built once the message has gone out, then written by a background thread in
batches, off the message path. Schema changes are append-only migrations. Raw secrets never
reach the log: excerpts are masked with every span any policy found, then scanned again by the
secrets detector.
"""

from __future__ import annotations

import asyncio
import json
import logging
import operator
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AuditError, ConfigError

__all__ = ["AuditLog", "AuditQuery", "AuditRow", "RowBuilder", "open_reader"]

logger = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        session TEXT NOT NULL,
        server TEXT NOT NULL,
        method TEXT NOT NULL,
        tool TEXT NOT NULL,
        kind TEXT NOT NULL,
        policy TEXT NOT NULL,
        outcome TEXT NOT NULL,
        action TEXT NOT NULL,
        applied TEXT NOT NULL,
        tier TEXT NOT NULL,
        score REAL,
        reason TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        cache_hit INTEGER NOT NULL,
        judge_model TEXT,
        evidence TEXT NOT NULL,
        excerpt TEXT NOT NULL,
        trace TEXT NOT NULL
    );
    CREATE INDEX decisions_ts ON decisions (ts);
    CREATE INDEX decisions_policy ON decisions (policy, ts);
    CREATE INDEX decisions_server ON decisions (server, ts);
    """,
)


@dataclass(slots=True)
class AuditRow:
    ts: float
    session: str
    server: str
    method: str
    tool: str
    kind: str
    policy: str
    outcome: str
    action: str
    applied: str
    tier: str
    score: float | None
    reason: str
    latency_ms: float
    cache_hit: bool
    judge_model: str | None
    evidence: str  # JSON list of {field, start, end, label}: positions only, never the matched text
    excerpt: str
    trace: str
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELDS}
        data["evidence"] = json.loads(self.evidence)
        data["trace"] = json.loads(self.trace)
        return data


_FIELDS = list(AuditRow.__dataclass_fields__)
_COLUMNS = [name for name in _FIELDS if name != "id"]
_VALUES = operator.attrgetter(*_COLUMNS)  # a row's column values in insert order, in one C call


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


def migrate(connection: sqlite3.Connection) -> None:
    connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied REAL)")
    done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
    for version, script in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        with connection:
            connection.executescript(script)
            connection.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))


RowBuilder = Callable[[], Sequence[AuditRow]]
FLUSH_DELAY_S = 0.005
WRITE_INTERVAL_S = 0.05
_MAX_BATCH = 500  # rows per transaction


class AuditLog:
    """Appends decision rows from any thread; a writer thread commits them in batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._connection = _connect(path)
            migrate(self._connection)
        except (sqlite3.Error, OSError) as exc:  # OSError: its folder cannot be made (a file in the path)
            raise AuditError(
                f"{path}: cannot open the audit log ({exc}); check the path and its permissions, "
                "or set audit_db / MCP_GATEWAY_AUDIT_DB"
            ) from exc
        self._queue: queue.Queue[list[AuditRow] | None] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._write_loop, name="mcp-gateway-audit", daemon=True)
        self._thread.start()
        self.dropped = 0
        self._pending: list[RowBuilder] = []
        self._flush_handle: asyncio.TimerHandle | None = None

    def record(self, rows: Sequence[AuditRow]) -> None:
        if not rows:
            return
        try:
            self._queue.put_nowait(list(rows))
        except queue.Full:
            self.dropped += len(rows)
            if self.dropped == len(rows):
                logger.error("audit log queue is full; decisions are being dropped from the log")

    def record_later(self, build: RowBuilder) -> None:
        """Build and queue rows once the message in hand has gone out.

        On an event loop the builders run together at most `FLUSH_DELAY_S` later, after the
        relay has written its answer, so masking excerpts and serialising traces never delay a
        message. Without a running loop they run at once."""
        self._pending.append(build)
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_pending()
            return
        self._flush_handle = loop.call_later(FLUSH_DELAY_S, self.flush_pending)

    def flush_pending(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, []
        rows: list[AuditRow] = []
        for build in pending:
            try:
                rows.extend(build())
            except Exception:  # one bad row must not lose the others
                logger.exception("could not build an audit row; the decision is missing from the log")
        self.record(rows)

    def close(self, timeout: float = 5.0) -> None:
        self.flush_pending()
        self._queue.put(None)
        self._thread.join(timeout)
        self._connection.close()

    def _write_loop(self) -> None:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        sql = f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
        stop = False
        while not stop:
            rows = self._queue.get()
            batch: list[AuditRow] = []
            if rows is None:
                stop = True
            else:
                batch.extend(rows)
            while len(batch) < _MAX_BATCH:
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is None:
                    stop = True
                    break
                batch.extend(extra)
            if not batch:
                continue
            try:
                with self._connection:
                    self._connection.executemany(sql, map(_VALUES, batch))
            except sqlite3.Error as exc:
                logger.error("audit log write failed (%s); %d decision(s) not recorded", exc, len(batch))
            if not stop and len(batch) < _MAX_BATCH:
                # let rows gather: one transaction per WRITE_INTERVAL_S rather than one per message
                # keeps this thread (and its hold on the interpreter) off the relay's hot path; a full
                # batch means rows are waiting, so the next one is written at once
                time.sleep(WRITE_INTERVAL_S)


@dataclass(frozen=True)
class AuditQuery:
    policy: str | None = None
    action: str | None = None
    server: str | None = None
    outcome: str | None = None
    since: float | None = None
    until: float | None = None
    after_id: int = 0
    limit: int = 100


def open_reader(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise ConfigError(
            f"{path}: no audit log yet; it is created when the gateway first relays a message (or pass --db PATH)"
        )
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        connection.execute("PRAGMA busy_timeout=10000")
    except sqlite3.Error as exc:
        raise AuditError(f"{path}: cannot open the audit log ({exc})") from exc
    try:
        # reading the schema reads the file's header: a damaged file fails here, by name
        connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise AuditError(
            f"{path}: the database cannot be read ({exc}); it is no intact audit log. Move it aside (a new one is "
            "created when the gateway next relays a message) or pass --db PATH"
        ) from exc
    return connection


def query(connection: sqlite3.Connection, q: AuditQuery, *, newest_first: bool = True) -> Iterator[AuditRow]:
    clauses = ["id > ?"]
    args: list[Any] = [q.after_id]
    for column, value in (("policy", q.policy), ("server", q.server), ("outcome", q.outcome)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if q.action is not None:
        clauses.append("applied = ?")
        args.append(q.action)
    if q.since is not None:
        clauses.append("ts >= ?")
        args.append(q.since)
    if q.until is not None:
        clauses.append("ts <= ?")
        args.append(q.until)
    order = "DESC" if newest_first else "ASC"
    sql = (
        f"SELECT id, {', '.join(_COLUMNS)} FROM decisions WHERE {' AND '.join(clauses)} "  # noqa: S608
        f"ORDER BY id {order} LIMIT ?"
    )
    try:
        cursor = connection.execute(sql, (*args, q.limit))
    except sqlite3.OperationalError as exc:
        raise AuditError(f"cannot read the audit log: {exc}") from exc
    for record in cursor:
        values = dict(zip(["id", *_COLUMNS], record, strict=True))
        values["cache_hit"] = bool(values["cache_hit"])
        yield AuditRow(**values)
