"""Pins: what each server's catalogue looked like when first seen, to catch rug pulls.

On first sight every tool (name, title, description, input and output schema, annotations), every
prompt and the server's instructions are pinned. Later, a definition that differs from its pin is
quarantined — hidden from lists and refused when called — until the user approves the change
(``mcp-gateway pins approve``). The store is SQLite (WAL), shared by every gateway on the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import AuditError

__all__ = ["PinCheck", "PinStatus", "PinStore", "canonical_definition", "definition_digest", "pinned_differs"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    server TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    definition TEXT NOT NULL,
    pinned_at REAL NOT NULL,
    pending_digest TEXT,
    pending_definition TEXT,
    pending_since REAL,
    PRIMARY KEY (server, kind, name)
);
"""

_TOOL_KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
_PROMPT_KEYS = ("name", "title", "description", "arguments")


class PinStatus(StrEnum):
    NEW = "new"  # first sight: pinned now
    SAME = "same"
    CHANGED = "changed"  # differs from its pin: quarantined until approved


@dataclass(frozen=True)
class PinCheck:
    status: PinStatus
    pinned: dict[str, Any] | None
    current: dict[str, Any]


def canonical_definition(kind: str, item: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "tool":
        keys: tuple[str, ...] = _TOOL_KEYS
    elif kind == "prompt":
        keys = _PROMPT_KEYS
    else:
        keys = tuple(item)
    return {key: item[key] for key in keys if key in item and item[key] is not None}


def definition_digest(definition: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def pinned_differs(path: Path, server: str, kind: str, item: Mapping[str, Any]) -> bool:
    """Whether `item` differs from its pin in the store at `path`, read without writing anything (nothing pinned
    yet: False). A store that exists but cannot be read counts as differing: what it would say is unknown."""
    if not path.exists():
        return False
    digest = definition_digest(canonical_definition(kind, item))
    name = str(item.get("name", kind))
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)) as db:
            row = db.execute(
                "SELECT digest FROM pins WHERE server=? AND kind=? AND name=?", (server, kind, name)
            ).fetchone()
    except sqlite3.OperationalError as exc:
        return not str(exc).startswith("no such table")  # a store made but never written to
    except sqlite3.Error:
        return True
    return row is not None and row[0] != digest


class PinStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:  # OSError: its folder cannot be made (a file in the path)
            raise AuditError(
                f"{path}: cannot open the pin store ({exc}); check the path and its permissions, "
                "or set pins_db / MCP_GATEWAY_PINS_DB"
            ) from exc
        self._lock = threading.Lock()

    def check(self, server: str, kind: str, item: Mapping[str, Any]) -> PinCheck:
        """Compare a definition with its pin; pin it on first sight; record a pending change otherwise."""
        current = canonical_definition(kind, item)
        digest = definition_digest(current)
        name = str(current.get("name", kind))
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT digest, definition FROM pins WHERE server=? AND kind=? AND name=?", (server, kind, name)
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO pins (server, kind, name, digest, definition, pinned_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (server, kind, name, digest, json.dumps(current, sort_keys=True), time.time()),
                )
                return PinCheck(PinStatus.NEW, None, current)
            if row[0] == digest:
                self._db.execute(
                    "UPDATE pins SET pending_digest=NULL, pending_definition=NULL, pending_since=NULL "
                    "WHERE server=? AND kind=? AND name=? AND pending_digest IS NOT NULL",
                    (server, kind, name),
                )
                return PinCheck(PinStatus.SAME, json.loads(row[1]), current)
            self._db.execute(
                "UPDATE pins SET pending_digest=?, pending_definition=?, "
                "pending_since=COALESCE(CASE WHEN pending_digest=? THEN pending_since END, ?) "
                "WHERE server=? AND kind=? AND name=?",
                (digest, json.dumps(current, sort_keys=True), digest, time.time(), server, kind, name),
            )
            return PinCheck(PinStatus.CHANGED, json.loads(row[1]), current)

    def rows(self, server: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT server, kind, name, digest, definition, pinned_at, pending_digest, pending_definition, "
            "pending_since FROM pins"
        )
        args: tuple[Any, ...] = ()
        if server is not None:
            sql += " WHERE server=?"
            args = (server,)
        with self._lock:
            cursor = self._db.execute(sql + " ORDER BY server, kind, name", args)
            names = [column[0] for column in cursor.description]
            out = []
            for record in cursor.fetchall():
                row = dict(zip(names, record, strict=True))
                row["definition"] = json.loads(row["definition"])
                row["pending_definition"] = json.loads(row["pending_definition"]) if row["pending_definition"] else None
                out.append(row)
            return out

    def approve(self, server: str, name: str | None = None) -> int:
        """Accept pending changes (one item, or all of a server's); returns how many."""
        with self._lock, self._db:
            sql = (
                "UPDATE pins SET digest=pending_digest, definition=pending_definition, pinned_at=?, "
                "pending_digest=NULL, pending_definition=NULL, pending_since=NULL "
                "WHERE server=? AND pending_digest IS NOT NULL"
            )
            args: tuple[Any, ...] = (time.time(), server)
            if name is not None:
                sql += " AND name=?"
                args = (*args, name)
            return self._db.execute(sql, args).rowcount

    def reset(self, server: str | None = None) -> int:
        with self._lock, self._db:
            if server is None:
                return self._db.execute("DELETE FROM pins").rowcount
            return self._db.execute("DELETE FROM pins WHERE server=?", (server,)).rowcount

    def close(self) -> None:
        self._db.close()
