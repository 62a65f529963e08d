"""Judge cassettes: recorded judge verdicts, so judge-backed suites replay deterministically offline.

A cassette is a JSONL file of ``{"key": <judge cache key>, "verdict": {...}}``. In record mode the
real judge answers and every new answer is appended; in replay mode answers come only from the
cassette, and a question it does not hold is counted as a miss (the harness then fails loudly,
instead of a missing recording silently becoming the policy's on_error decision).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from .errors import LLMUnavailableError, PolicySourceError
from .llm import LLMResult

__all__ = ["CassetteCache", "ReplayOnlyLLM"]

T = TypeVar("T", bound=BaseModel)


class CassetteCache:
    def __init__(self, path: Path, mode: Literal["record", "replay"]) -> None:
        self.path = path
        self.mode = mode
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if path.exists():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    self._data[str(record["key"])] = dict(record["verdict"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise PolicySourceError(
                        path, number, "not a cassette record", "Re-record the cassette with --record."
                    ) from exc
        elif mode == "replay":
            raise PolicySourceError(
                path,
                None,
                "the cassette does not exist",
                "Record it first with 'mcp-gateway policy test --record FILE'.",
            )

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._data.get(key)
            return dict(value) if value is not None else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        if self.mode != "record":
            return
        with self._lock:
            if key in self._data:
                return
            self._data[key] = dict(value)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"key": key, "verdict": value}, sort_keys=True) + "\n")

    def __len__(self) -> int:
        return len(self._data)


class ReplayOnlyLLM:
    """The judge's LLM in replay mode: every call is a question the cassette did not hold."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.misses = 0
        self._lock = threading.Lock()

    def complete(
        self,
        messages: list[dict[str, str]],
        response_model: type[T],
        *,
        timeout: float,
        max_retries: int = 2,
        max_tokens: int | None = None,
    ) -> LLMResult[T]:
        with self._lock:
            self.misses += 1
        raise LLMUnavailableError(
            "this judge question is not in the cassette; re-record it with --record (the policy, the model or "
            "the case changed since it was recorded)"
        )
