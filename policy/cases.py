"""Labelled test cases: a subject and the expected decision.

Two file forms, validated on load:

* YAML (hand-written, e.g. ``policies/<id>.cases.yaml``): ``{cases: [case, ...]}`` or a list;
* JSONL (bulk, e.g. built from public datasets): one case per line.

A case is at least ``{"id", "kind", "expect"}`` plus the subject fields its kind needs
(``text``, ``tool``, ``arguments``, ``server``); ``policy`` names the policy it tests, or is
left out to mean "any policy".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr, ValidationError

from .errors import PolicySourceError
from .subject import Subject, SubjectKind

__all__ = ["Case", "load_cases", "split_of", "write_jsonl"]

Split = Literal["train", "dev", "test"]


class Case(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    policy: str | None = None
    kind: SubjectKind
    expect: Literal["violation", "allow"]
    text: str = ""
    server: str = ""
    tool: str = ""
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    structured: JsonValue = None
    source: str = ""
    split: Split | None = None
    tags: list[str] = Field(default_factory=list)
    hand_written: bool = False
    _where: str = PrivateAttr(default="")  # "file:line" it was read from, for errors about it

    @property
    def where(self) -> str:
        return self._where or f"case {self.id!r}"

    def subject(self) -> Subject:
        return Subject(
            kind=self.kind,
            server=self.server,
            tool=self.tool,
            arguments=self.arguments,
            text=self.text,
            structured=self.structured,
        )


def split_of(key: str, *, dev: float = 0.2, test: float = 0.2, salt: str = "mcp-gateway-v1") -> Split:
    """A stable split from a key (e.g. the text): the same row always lands in the same split."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    if bucket < test:
        return "test"
    if bucket < test + dev:
        return "dev"
    return "train"


def load_cases(path: Path, *, hand_written: bool | None = None) -> list[Case]:
    """Cases from a YAML or JSONL file; errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicySourceError(path, None, f"cannot read the case file ({exc.strerror})", "Check the path.") from exc
    if path.suffix in (".jsonl", ".ndjson"):
        cases = _jsonl(text, path)
        default_hand = False
    elif path.suffix in (".yaml", ".yml"):
        cases = _yaml(text, path)
        default_hand = True
    else:
        raise PolicySourceError(path, None, "unknown case file type", "Use .yaml/.yml or .jsonl.")
    mark = default_hand if hand_written is None else hand_written
    return [case.model_copy(update={"hand_written": mark}) if case.hand_written != mark else case for case in cases]


def _validate(data: Any, path: Path, line: int | None) -> Case:
    try:
        case = Case.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "(case)"
        raise PolicySourceError(
            path,
            line,
            f"invalid case: {field}: {error['msg']}",
            'A case needs id, kind and expect, e.g. {"id": "c1", "kind": "tool_result", "text": "...", '
            '"expect": "violation"}.',
        ) from exc
    case._where = f"{path}:{line}" if line is not None else str(path)
    return case


def _jsonl(text: str, path: Path) -> list[Case]:
    cases: list[Case] = []
    # Lines end at "\n" only: str.splitlines() would also cut at U+2028 and friends inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PolicySourceError(
                path, number, f"not valid JSON ({exc.msg})", "Write one JSON object per line."
            ) from exc
        cases.append(_validate(data, path, number))
    return _unique(cases, path)


def _yaml(text: str, path: Path) -> list[Case]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicySourceError(
            path, mark.line + 1 if mark else None, "not valid YAML", "Fix the YAML syntax."
        ) from exc
    items = data.get("cases") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise PolicySourceError(
            path,
            1,
            "expected a list of cases (or a mapping with 'cases:')",
            "Write 'cases:' followed by '- id: ...' items.",
        )
    lines = _item_lines(text)
    return _unique([_validate(item, path, lines[i] if i < len(lines) else None) for i, item in enumerate(items)], path)


def _item_lines(text: str) -> list[int]:
    indent: int | None = None
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith("- "):
            level = len(line) - len(stripped)
            if indent is None:
                indent = level
            if level == indent:
                lines.append(number)
    return lines


def _unique(cases: list[Case], path: Path) -> list[Case]:
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise PolicySourceError(path, None, f"case id {case.id!r} appears twice", "Give every case its own id.")
        seen.add(case.id)
    return cases


def write_jsonl(cases: Iterable[Case], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(case.model_dump_json(exclude_defaults=True) + "\n")
            count += 1
    return count
