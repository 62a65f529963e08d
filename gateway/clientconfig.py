"""Reading and writing MCP clients' config files: files we do not own.

A config file is read into a `ConfigDocument` (JSON with comments, or TOML) that lists its server
entries and edits them in place, key by key, so that everything else in the file keeps its bytes:
other keys, comments, indentation, the order of entries. Writes are atomic, keep the file's
permissions, and leave a timestamped backup beside the file first.

A file we cannot parse is never written: `ClientConfigError` names the file, the line and column,
and the problem. Every rendered file is parsed again and compared with what was intended before
it is written, so an editing bug cannot reach a user's config.
"""

from __future__ import annotations

import contextlib
import copy
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import JsonValue

from .clients import ConfigFormat, ConfigLocation
from .configdoc import ConfigDocument, EntrySource, EntryValue, ServerEntry, TablePath, same_json
from .errors import ClientConfigError
from .jsondoc import JsonDocument
from .tomldoc import TomlDocument

__all__ = [
    "ConfigDocument",
    "EntrySource",
    "EntryValue",
    "ServerEntry",
    "TablePath",
    "backup_path",
    "list_entries",
    "parse_config",
    "read_config",
    "read_text",
    "render_checked",
    "same_json",
    "write_config",
]


def parse_config(location: ConfigLocation, text: str) -> ConfigDocument:
    if location.format is ConfigFormat.TOML:
        return TomlDocument(location, text)
    return JsonDocument(location, text)


def read_config(location: ConfigLocation) -> ConfigDocument | None:
    """Parse the file at `location`; None when it does not exist."""
    text = read_text(location)
    return None if text is None else parse_config(location, text)


def read_text(location: ConfigLocation) -> str | None:
    """The text of the file at `location`; None when it does not exist."""
    path = location.path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise ClientConfigError(f"{path}: is a directory, expected the {location.label} config file") from exc
    except OSError as exc:
        raise ClientConfigError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientConfigError(
            f"{path}: is not UTF-8 text (byte {exc.start}); the file was not changed. Save it as UTF-8 and run again"
        ) from exc
    return text


def list_entries(document: ConfigDocument) -> Iterator[ServerEntry]:
    """Every server entry in every server table of the document: what a ``doctor`` lists."""
    for table in document.tables():
        for name, value in document.entries(table).items():
            yield ServerEntry(table, name, value)


def _expected_data(before: Mapping[str, JsonValue], changes: Mapping[tuple[TablePath, str], JsonValue]) -> JsonValue:
    data = copy.deepcopy(dict(before))
    for (table, name), value in changes.items():
        node: JsonValue = data
        for key in table:
            assert isinstance(node, dict)
            node = node[key]
        assert isinstance(node, dict)
        node[name] = value
    return data


def render_checked(
    document: ConfigDocument,
    before: Mapping[str, JsonValue],
    changes: Mapping[tuple[TablePath, str], JsonValue],
) -> str:
    """Render the edited document, refusing to return text that does not parse to exactly the intended data.

    `before` is the document's data before the edits; `changes` the new value of every edited entry.
    """
    text = document.render()
    want = _expected_data(before, changes)
    got = parse_config(document.location, text).data()
    if not same_json(got, want):
        # fail closed: a rewrite that changed anything besides the intended entries must not be written
        raise ClientConfigError(
            f"{document.location.path}: internal error: the edited file would not parse to the intended "
            "configuration, so it was not written. Please report this with the file (secrets removed)"
        )
    return text


def backup_path(path: Path, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.mcp-gateway-{stamp}.bak")
    counter = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.mcp-gateway-{stamp}-{counter}.bak")
        counter += 1
    return candidate


def write_config(path: Path, text: str, expected: str) -> Path:
    """Atomically replace the file at `path` with `text`, after a backup. Returns the backup's path.

    `expected` is the text the caller parsed: if the file changed since (the client saved it
    meanwhile), nothing is written.
    """
    # a symlinked config (dotfile managers) is edited where it points, so the link survives
    target = path.resolve()
    try:
        current = target.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientConfigError(f"{path}: cannot be read again before writing ({exc}); nothing was written") from exc
    if current != expected:
        raise ClientConfigError(
            f"{path}: changed while mcp-gateway was editing it (was the client saving it?); "
            "nothing was written. Run the command again"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise ClientConfigError(
            f"{path}: an entry holds {bad}, a lone surrogate that cannot be written as UTF-8; fix that value in "
            "the file and run again; nothing was written"
        ) from exc
    if not target.stat().st_mode & stat.S_IWUSR:
        raise ClientConfigError(
            f"{path}: is read-only; nothing was written. Make it writable (chmod u+w) to let mcp-gateway edit it, "
            "or leave it out (--config / -c)"
        )
    backup: Path | None = None
    try:
        mode = target.stat().st_mode & 0o7777
        backup = _write_new(backup_path(target), current, mode)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.chmod(tmp, mode)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        if backup is not None:  # a copy of a file left as it was is of no use
            with contextlib.suppress(OSError):
                backup.unlink(missing_ok=True)
        raise ClientConfigError(
            f"{path}: cannot be written ({exc.strerror or exc}); the file was not changed. Check its permissions"
        ) from exc
    return backup


def _write_new(path: Path, text: str, mode: int) -> Path:
    """Create `path` (never overwrite) with `mode` from the first byte on.

    A config holding tokens is often 0600: its backup must not be readable by others even for a moment.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o777)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except BaseException:  # a disk that fills up leaves no half backup behind
        path.unlink(missing_ok=True)
        raise
    return path
