"""The judge's verdict cache: the one module that owns diskcache.

Keys are hashes of everything that can change an answer (see `judge_cache_key`), never of the
input alone: a new model, a recompiled policy or a new prompt must not reuse an old verdict.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Protocol

from .subject import canonical_json

__all__ = ["DiskVerdictCache", "MemoryVerdictCache", "VerdictCache", "judge_cache_key"]


class VerdictCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...


def judge_cache_key(
    *,
    model: str,
    policy_digest: str,
    prompt_version: int,
    schema_version: int,
    subject: str,
    content: str,
) -> str:
    material = {
        "model": model,
        "policy": policy_digest,
        "prompt_version": prompt_version,
        "schema_version": schema_version,
        "subject": hashlib.sha256(subject.encode()).hexdigest(),
        "content": hashlib.sha256(content.encode()).hexdigest(),
    }
    return "judge:" + hashlib.sha256(canonical_json(material).encode()).hexdigest()


class MemoryVerdictCache:
    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._data.get(key)
            return dict(value) if value is not None else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._data[key] = dict(value)

    def __len__(self) -> int:
        return len(self._data)


class DiskVerdictCache:
    """A persistent cache shared by every gateway process on the machine."""

    def __init__(self, directory: Path, size_limit_bytes: int = 256 * 1024 * 1024) -> None:
        import diskcache

        directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(directory), size_limit=size_limit_bytes)

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._cache.get(key)
        if not isinstance(raw, str):
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        # Stored as JSON text, which diskcache keeps as-is: nothing in the cache is ever unpickled.
        self._cache.set(key, canonical_json(value))

    def close(self) -> None:
        self._cache.close()
