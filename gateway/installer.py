"""``install`` and ``uninstall``: plans over config text (pure), then a thin layer that reads and writes files.

Restore design
--------------
``install`` records, for every entry it wraps, the original value, the wrapped value it wrote, and the
original source text (`gateway.installstate`). ``uninstall`` then decides per entry:

- the entry is exactly what install wrote: the original comes back, as the same text;
- the user edited the wrapped entry but it is still a ``wrap`` command line: the server comes back from
  that command line (their edits to it and to other keys are kept, recorded key spellings reused);
- the entry is no longer a ``wrap`` command line: it is left as the user made it, reported, and its
  record is dropped (the timestamped backups still hold the original);
- no record (it was lost, or the file came from another machine): the server comes back from the
  wrapped command line alone.

Entries the user added or changed without the gateway are never touched, so uninstall also works
after other edits to the file. Every file is read and planned before any is written: a file we cannot
parse stops the whole command with nothing changed.
"""

from __future__ import annotations

import contextlib
import difflib
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import JsonValue

from .clientconfig import TablePath, parse_config, read_text, render_checked, write_config
from .clients import ConfigLocation
from .errors import ClientConfigError
from .installstate import InstallRecord, InstallState, load_state, save_state
from .wrapping import Status, is_gateway_command, parse_invocation, unwrap_entry, wrap_entry

__all__ = [
    "Action",
    "EntryReport",
    "FilePlan",
    "FileResult",
    "find_gateway",
    "plan_install",
    "plan_uninstall",
    "record_file_key",
    "run",
]


class Action(StrEnum):
    INSTALL = "install"
    UNINSTALL = "uninstall"


@dataclass(frozen=True)
class EntryReport:
    table: TablePath
    name: str
    status: Status
    reason: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return ".".join((*self.table, self.name))

    @property
    def is_finding(self) -> bool:
        """The server is not where the user asked it to be (not behind the gateway, or still behind it)."""
        return self.status in (Status.SKIPPED, Status.LEFT)


@dataclass(frozen=True)
class FilePlan:
    location: ConfigLocation
    before: str
    after: str
    entries: tuple[EntryReport, ...]
    added: tuple[InstallRecord, ...] = ()
    removed: tuple[InstallRecord, ...] = ()

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        path = str(self.location.path)
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=f"{path} (now)",
            tofile=f"{path} (after)",
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass(frozen=True)
class FileResult:
    plan: FilePlan
    backup: Path | None = None


def record_file_key(location: ConfigLocation) -> str:
    return str(location.path.resolve())


def plan_install(location: ConfigLocation, text: str, *, gateway: str, now: datetime | None = None) -> FilePlan:
    """Wrap every server in the file that is not wrapped yet. Pure except for resolving the path's symlinks."""
    document = parse_config(location, text)
    before = document.data()
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    changes: dict[tuple[TablePath, str], JsonValue] = {}
    reports: list[EntryReport] = []
    added: list[InstallRecord] = []
    for table in document.tables():
        for name, value in document.entries(table).items():
            outcome = wrap_entry(location.client, name, value, gateway)
            reports.append(EntryReport(table, name, outcome.status, outcome.reason, outcome.warnings))
            if outcome.value is None:
                continue
            source = document.source(table, name)
            document.set_entry(table, name, outcome.value)
            changes[(table, name)] = outcome.value
            added.append(
                InstallRecord(
                    file=record_file_key(location),
                    table=table,
                    name=name,
                    original=value,
                    wrapped=outcome.value,
                    entry_text=source.entry_text,
                    key_texts=dict(source.key_texts),
                    installed_at=stamp,
                )
            )
    after = render_checked(document, before, changes) if changes else text
    return FilePlan(location, text, after, tuple(reports), added=tuple(added))


def plan_uninstall(location: ConfigLocation, text: str, *, state: InstallState) -> FilePlan:
    """Give back every server the gateway wraps in the file; see the module's docstring for how."""
    document = parse_config(location, text)
    before = document.data()
    file_key = record_file_key(location)
    changes: dict[tuple[TablePath, str], JsonValue] = {}
    reports: list[EntryReport] = []
    removed: list[InstallRecord] = []
    seen: set[tuple[TablePath, str]] = set()
    for table in document.tables():
        entries = document.entries(table)
        for name, value in entries.items():
            record = state.find(file_key, table, name) or _renamed_record(state, file_key, table, value, entries)
            outcome = unwrap_entry(
                location.client,
                value,
                original=record.original if record else None,
                wrapped=record.wrapped if record else None,
            )
            if outcome.status is not Status.NOT_WRAPPED:
                reports.append(EntryReport(table, name, outcome.status, outcome.reason))
            if record is not None:
                seen.add((record.table, record.name))
                removed.append(record)
            if outcome.value is not None:
                document.set_entry(table, name, outcome.value, record.source if record else None)
                changes[(table, name)] = outcome.value
    # records of entries the user has since deleted are of no further use; records of tables this client's
    # layout does not read (the same file read as another client's) stay
    scanned = set(document.tables())
    removed += [r for r in state.records if r.file == file_key and r.table in scanned and (r.table, r.name) not in seen]
    after = render_checked(document, before, changes) if changes else text
    write = state.file_write(file_key)
    original = write.original(text) if write is not None else None
    if original is not None:
        # the file is exactly as install left it: the text it had before, byte for byte (layout, comments and
        # line endings of every format included), and every record of the file is done with
        after = original
        removed = [r for r in state.records if r.file == file_key]
    return FilePlan(location, text, after, tuple(reports), removed=tuple(removed))


def _renamed_record(
    state: InstallState, file_key: str, table: TablePath, value: JsonValue, entries: dict[str, JsonValue]
) -> InstallRecord | None:
    """The record of an entry the user renamed after install, found by the ``--name`` it still carries."""
    if not isinstance(value, dict) or not is_gateway_command(value.get("command")):
        return None
    invocation = parse_invocation(value.get("args"))
    if invocation is None or invocation.name is None or invocation.name in entries:
        return None
    return state.find(file_key, table, invocation.name)


def find_gateway(explicit: str | None = None) -> str:
    """The absolute path of the ``mcp-gateway`` executable: GUI clients start servers with a minimal PATH."""
    if explicit is not None:
        path = Path(explicit).expanduser().absolute()
        if not path.is_file():
            raise ClientConfigError(f"--gateway {explicit}: no such file; give the path of the mcp-gateway executable")
        if not is_gateway_command(str(path)):
            # wrapped entries are recognised by the gateway's file name: under another name a second install
            # would wrap them again, and uninstall could not tell them from the user's own
            raise ClientConfigError(
                f"--gateway {explicit}: give the mcp-gateway executable itself (a file named mcp-gateway), "
                f"not {path.name!r}; for a link, give the path it points to ({path.resolve()})"
            )
        return str(path)
    name = "mcp-gateway.exe" if sys.platform.startswith("win") else "mcp-gateway"
    beside_python = Path(sys.executable).parent / name  # the script of this very installation
    if beside_python.is_file():
        return str(beside_python.absolute())
    on_path = shutil.which("mcp-gateway")
    if on_path:
        return str(Path(on_path).absolute())
    raise ClientConfigError("cannot find the mcp-gateway executable; pass its path with --gateway PATH")


def run(
    action: Action,
    locations: Sequence[ConfigLocation],
    *,
    state_file: Path,
    gateway: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[FileResult]:
    """Plan every existing file, then (unless `dry_run`) write the record and the changed files. One run at a
    time: a second install or uninstall waits for the first, so that neither loses the other's records."""
    with contextlib.nullcontext() if dry_run else _one_at_a_time(state_file):
        return _run(action, locations, state_file=state_file, gateway=gateway, dry_run=dry_run, now=now)


@contextlib.contextmanager
def _one_at_a_time(state_file: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; runs are not expected to overlap there either
        yield
        return
    lock = state_file.with_name(state_file.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = lock.open("a")
    except OSError as exc:
        raise ClientConfigError(
            f"{lock}: cannot be opened ({exc.strerror or exc}); check the folder's permissions"
        ) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(
    action: Action,
    locations: Sequence[ConfigLocation],
    *,
    state_file: Path,
    gateway: str | None,
    dry_run: bool,
    now: datetime | None,
) -> list[FileResult]:
    state = load_state(state_file)
    plans: list[FilePlan] = []
    seen: set[str] = set()
    for location in locations:
        key = record_file_key(location)
        if key in seen:
            continue
        seen.add(key)
        text = read_text(location)
        if text is None:
            continue
        if action is Action.INSTALL:
            assert gateway is not None
            plans.append(plan_install(location, text, gateway=gateway, now=now))
        else:
            plans.append(plan_uninstall(location, text, state=state))
    if dry_run:
        return [FileResult(plan) for plan in plans]
    if action is Action.INSTALL:
        # the record goes first: a crash before a config is written leaves a harmless extra record,
        # never a wrapped entry without its original
        added = tuple(record for plan in plans if plan.changed for record in plan.added)
        if added:
            state = state.updated(added, ())
            save_state(state_file, state)
    results: list[FileResult] = []
    for plan in plans:
        try:
            backup = write_config(plan.location.path, plan.after, plan.before) if plan.changed else None
        except ClientConfigError as exc:
            done = [str(r.plan.location.path) for r in results if r.backup is not None]
            if action is Action.UNINSTALL:
                _forget(state_file, state, results)
            else:  # the files not written keep their entries as they were: their records go
                unwritten = tuple(r for p in plans[len(results) :] if p.changed for r in p.added)
                save_state(state_file, state.updated((), unwritten))
            note = f" Already changed: {', '.join(done)}." if done else ""
            raise ClientConfigError(f"{exc}{note}") from exc
        results.append(FileResult(plan, backup))
        if action is Action.INSTALL and plan.changed:
            state = state.wrote(record_file_key(plan.location), plan.before, plan.after, backup)
    if action is Action.UNINSTALL:
        _forget(state_file, state, results)
    elif any(plan.changed for plan in plans):
        save_state(state_file, state)
    return results


def _forget(state_file: Path, state: InstallState, results: list[FileResult]) -> None:
    removed = tuple(record for result in results for record in result.plan.removed)
    files = {record_file_key(result.plan.location) for result in results}
    if removed or any(state.file_write(file) is not None for file in files):
        save_state(state_file, state.updated((), removed).forgot(files))
