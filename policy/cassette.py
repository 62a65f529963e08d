"""Judge cassettes: recorded judge verdicts, so judge-backed suites replay deterministically offline.

A cassette is a JSONL file of ``{"key": <judge cache key>, "model": <judge model>, "verdict": {...}}``.
In record mode the real judge answers and every new answer is appended; in replay mode answers come
only from the cassette, and a question it does not hold is counted as a miss (the harness then fails
loudly, instead of a missing recording silently becoming the policy's on_error decision). The key
includes the judge model, so a replay asks as the model that was recorded (`models`).
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
    def __init__(self, path: Path, mode: Literal["record", "replay"], model: str | None = None) -> None:
        self.path = path
        self.mode = mode
        self.model = model  # written with each recorded answer
        self.models: set[str] = set()  # the judge models the answers on file were recorded with
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if path.exists():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicySourceError(path, None, f"cannot read the cassette ({exc})", "Check the path.") from exc
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise PolicySourceError(
                        path, number, "not a cassette record (not JSON)", "Re-record the cassette with --record."
                    ) from exc
                problem = _record_problem(record)
                if problem:
                    raise PolicySourceError(
                        path, number, f"not a cassette record: {problem}", "Re-record the cassette with --record."
                    )
                self._data[record["key"]] = dict(record["verdict"])
                if isinstance(record.get("model"), str):
                    self.models.add(record["model"])
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
            record: dict[str, Any] = {"key": key, "verdict": value}
            if self.model:
                record["model"] = self.model
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")

    def __len__(self) -> int:
        return len(self._data)


def _record_problem(record: Any) -> str:
    """Why `record` is not a recorded judge answer the judge can read back, or "" if it is one."""
    if not isinstance(record, dict):
        return "expected a JSON object"
    if not isinstance(record.get("key"), str):
        return "'key' must be a string"
    verdict = record.get("verdict")
    if not isinstance(verdict, dict):
        return "'verdict' must be an object"
    if not isinstance(verdict.get("violates"), bool):
        return "'verdict.violates' must be true or false"
    if not isinstance(verdict.get("rationale"), str):
        return "'verdict.rationale' must be a string"
    confidence = verdict.get("confidence", 0.0)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.0 <= confidence <= 1.0:
        return "'verdict.confidence' must be a number from 0 to 1"
    if "model" in record and not isinstance(record["model"], str):
        return "'model' must be a string"
    return ""


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
