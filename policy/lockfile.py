"""Lock files: ``policies/<name>.lock.json`` beside ``policies/<name>.md``.

Canonical JSON (fixed field order, two-space indent, a final newline, no timestamps) so that
the same compile gives the same bytes and a review diff shows only real changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError

from .compiled import SCHEMA_VERSION, CompiledPolicy
from .errors import CompiledPolicyError
from .source import PolicySource

__all__ = ["LockStatus", "atomic_write_text", "dumps", "lock_path", "lock_status", "read_lock", "write_lock"]


class LockStatus(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    MISSING = "missing"
    INVALID = "invalid"


def lock_path(source_path: Path | str) -> Path:
    path = Path(source_path)
    return path.with_name(f"{path.stem}.lock.json")


def dumps(policy: CompiledPolicy) -> str:
    return json.dumps(policy.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False) + "\n"


def write_lock(policy: CompiledPolicy, path: Path) -> None:
    atomic_write_text(path, dumps(policy))


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a lock file is an ordinary, shared file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_lock(path: Path) -> CompiledPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CompiledPolicyError(
            f"{path}: no compiled policy; run 'mcp-gateway policy compile {path.with_suffix('').with_suffix('.md')}'"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CompiledPolicyError(
            f"{path}:{exc.lineno}: the lock file is not valid JSON ({exc.msg}); "
            "recompile it with 'mcp-gateway policy compile --force'"
        ) from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise CompiledPolicyError(
            f"{path}: lock file schema version {version!r}, this engine reads {SCHEMA_VERSION}; "
            "recompile with 'mcp-gateway policy compile --force'"
        )
    try:
        return CompiledPolicy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CompiledPolicyError(
            f"{path}: the lock file does not validate at {where!r} ({first['msg']}); "
            "undo the hand edit or recompile with 'mcp-gateway policy compile --force'"
        ) from exc


def lock_status(source: PolicySource) -> LockStatus:
    path = lock_path(source.path)
    if not path.exists():
        return LockStatus.MISSING
    try:
        policy = read_lock(path)
    except CompiledPolicyError:
        return LockStatus.INVALID
    if policy.provenance.source_sha256 != source.sha256:
        return LockStatus.STALE
    return LockStatus.FRESH
