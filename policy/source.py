"""Policy source files: ``policies/<id>.md``.

    ---                       optional YAML front matter
    id: no-large-transfers
    action: block
    applies_to: [tool_call]
    tools: ["transfer*"]
    ---
    Never move more than 1,000 dollars in one transfer.     the English body (required)

    ## Violations                                            optional example lists
    - transfer {"amount": 5000, "to": "acct-9"}
    ## Allowed
    - transfer {"amount": 999}

An example is a line of text, ``tool {json arguments}`` for a tool call, or a JSON object with
subject fields (``{"kind": "tool_result", "tool": "fetch", "text": "..."}``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PolicyError, PolicySourceError
from .subject import Subject, SubjectKind
from .verdict import Action

__all__ = [
    "Example",
    "FrontMatter",
    "OnError",
    "PolicySource",
    "Quality",
    "Thresholds",
    "builtin_policy_dir",
    "discover_sources",
    "load_source",
    "parse_source",
]

OnError = Literal["block", "allow", "warn"]
_ID = r"^[a-z0-9][a-z0-9_-]*$"
_EXAMPLE_HEADINGS = {"violations": True, "violation": True, "allowed": False, "allow": False}
_TOOL_CALL_EXAMPLE = re.compile(r"^`?(?P<tool>[A-Za-z0-9_.:/-]+)`?\s*(?P<args>\{.*\})\s*$")


class Thresholds(BaseModel):
    """Classifier score bands: allow below `allow_below`, violation above `violate_above`,
    and in between ask the judge, or without one decide at `decide_at`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_below: float = Field(default=0.35, ge=0, le=1)
    violate_above: float = Field(default=0.8, ge=0, le=1)
    decide_at: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.allow_below > self.violate_above:
            raise ValueError(f"allow_below ({self.allow_below}) must not exceed violate_above ({self.violate_above})")
        return self

    @property
    def decision(self) -> float:
        return self.decide_at if self.decide_at is not None else (self.allow_below + self.violate_above) / 2


class Quality(BaseModel):
    """Minimum scores `policy test` demands of this policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_f1: float | None = Field(default=None, ge=0, le=1)
    max_fpr: float | None = Field(default=None, ge=0, le=1)
    min_recall: float | None = Field(default=None, ge=0, le=1)


class FrontMatter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(default=None, pattern=_ID)
    title: str | None = None
    action: Action = Action.BLOCK
    applies_to: list[SubjectKind] | None = None
    servers: list[str] = Field(default_factory=lambda: ["*"])
    tools: list[str] = Field(default_factory=lambda: ["*"])
    on_error: OnError | None = None
    severity: Literal["low", "medium", "high", "critical"] = "high"
    thresholds: Thresholds | None = None
    detectors: list[str] = Field(default_factory=list)
    classifier: str | None = None  # a trained head shipped beside the policy, e.g. "prompt-injection.head.json"
    rules: str | None = None  # hand-written rules beside the policy, e.g. "tool-poisoning.rules.yaml"
    judge: Literal["auto", "never"] = "auto"
    quality: Quality | None = None

    @field_validator("applies_to", "servers", "tools", "detectors", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Example(BaseModel):
    """A labelled example from the policy file itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    violation: bool
    subject: Subject
    line: int = 0
    raw: str = ""


class PolicySource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    id: str
    front: FrontMatter
    body: str
    examples: tuple[Example, ...] = ()
    sha256: str

    def companion(self, name: str) -> Path:
        """A file the policy names in its front matter (``rules:``, ``classifier:``), beside the policy."""
        return Path(self.path).parent / name

    @property
    def default_kinds(self) -> list[SubjectKind]:
        return self.front.applies_to or list(SubjectKind)

    @property
    def on_error(self) -> OnError:
        if self.front.on_error is not None:
            return self.front.on_error
        # fail closed: a policy that blocks or masks must not turn into an allow when a tier breaks
        return "block" if self.front.action in (Action.BLOCK, Action.MASK) else "allow"

    @property
    def title(self) -> str:
        if self.front.title:
            return self.front.title
        for line in self.body.splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
        return self.id


def builtin_policy_dir() -> Path:
    """The built-in policies: ``policies/`` in a source checkout, ``gateway/_builtin_policies`` in a wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "policies", here.parent / "gateway" / "_builtin_policies"):
        if candidate.is_dir() and any(candidate.glob("*.md")):
            return candidate
    raise PolicyError("the built-in policies are missing from this installation; reinstall mcp-gateway")


def discover_sources(paths: Iterable[Path]) -> list[Path]:
    """Policy sources under the given files and directories (``*.md``, except README files)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.md") if p.name.lower() != "readme.md"))
        elif path.is_file():
            found.append(path)
        else:
            raise PolicySourceError(path, None, "no such policy file or directory", "Check the path you passed.")
    unique: dict[Path, None] = {p.resolve(): None for p in found}
    return list(unique)


def load_source(path: Path) -> PolicySource:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicySourceError(path, None, f"cannot read the file ({exc.strerror})", "Check the path.") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicySourceError(path, None, "the file is not UTF-8 text", "Save it as UTF-8.") from exc
    source = parse_source(text, path, hashlib.sha256(raw).hexdigest())
    companions = [name for name in (source.front.rules, source.front.classifier) if name]
    if not companions:
        return source
    # The lock depends on the rules and head files the policy names, so they are part of its hash:
    # editing one makes the lock stale like editing the English does.
    digest = hashlib.sha256(raw)
    for name in companions:
        digest.update(b"\0" + name.encode())
        try:
            digest.update(b"\0" + source.companion(name).read_bytes())
        except OSError:
            digest.update(b"\0missing")  # the compiler reports the missing file
    return source.model_copy(update={"sha256": digest.hexdigest()})


def parse_source(text: str, path: Path | str, sha256: str | None = None) -> PolicySource:
    path = Path(path)
    digest = sha256 or hashlib.sha256(text.encode()).hexdigest()
    text = text.replace("\r\n", "\n").removeprefix("\ufeff")  # a byte-order mark some editors write
    front_data, body_start = _split_front_matter(text, path)
    front = _validate_front(front_data, text, path)
    lines = text.split("\n")
    body_lines, examples = _split_examples(lines, body_start, path)
    body = "\n".join(body_lines).strip()
    if not body:
        raise PolicySourceError(
            path,
            body_start + 1,
            "the policy has no English text",
            "Write the rule in plain English below the front matter (and above any '## Violations' list).",
        )
    policy_id = front.id or path.stem
    if not re.match(_ID, policy_id):
        raise PolicySourceError(
            path,
            None,
            f"the policy id {policy_id!r} (from the file name) is not a valid id",
            "Use lowercase letters, digits, '-' and '_', or set 'id:' in the front matter.",
        )
    kinds = front.applies_to or list(SubjectKind)
    parsed = tuple(_parse_example(raw, violation, line, kinds, path) for raw, violation, line in examples)
    return PolicySource(path=str(path), id=policy_id, front=front, body=body, examples=parsed, sha256=digest)


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], int]:
    lines = text.split("\n")
    if lines[0].strip() != "---":  # "---  " (trailing blanks) opens front matter too
        return {}, 0
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            block = "\n".join(lines[1:index])
            try:
                data = yaml.safe_load(block) if block.strip() else {}
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = mark.line + 2 if mark is not None else 2
                problem = getattr(exc, "problem", None) or str(exc)
                raise PolicySourceError(
                    path,
                    line,
                    f"the front matter is not valid YAML ({problem})",
                    "Fix the YAML between the two '---' lines (use 'key: value', lists as [a, b]).",
                ) from exc
            if not isinstance(data, dict):
                raise PolicySourceError(
                    path,
                    2,
                    "the front matter must be a mapping of 'key: value' lines",
                    "Write one 'key: value' per line between the '---' lines.",
                )
            return data, index + 1
    raise PolicySourceError(
        path,
        1,
        "the front matter starts with '---' but never ends",
        "Add a closing '---' line after the front matter.",
    )


def _validate_front(data: dict[str, Any], text: str, path: Path) -> FrontMatter:
    known = set(FrontMatter.model_fields)
    for key in data:
        if key not in known:
            raise PolicySourceError(
                path,
                _key_line(text, str(key)),
                f"unknown front-matter key {key!r}",
                f"Remove it or use one of: {', '.join(sorted(known))}.",
            )
    try:
        return FrontMatter.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        location = ".".join(str(part) for part in error["loc"])
        raise PolicySourceError(
            path,
            _key_line(text, key),
            f"front-matter key {location!r}: {error['msg']}",
            _front_fix(key),
        ) from exc


def _front_fix(key: str) -> str:
    hints = {
        "action": "Use one of: block, mask, warn, audit.",
        "applies_to": f"Use any of: {', '.join(kind.value for kind in SubjectKind)}.",
        "on_error": "Use one of: block, allow, warn.",
        "id": "Use lowercase letters, digits, '-' and '_'.",
        "thresholds": "Give numbers between 0 and 1: allow_below <= violate_above.",
        "severity": "Use one of: low, medium, high, critical.",
    }
    return hints.get(key, "Correct the value.")


def _key_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.split("\n"), start=1):
        if re.match(rf"^\s*{re.escape(key)}\s*:", line):
            return number
    return None


def _split_examples(lines: list[str], start: int, path: Path) -> tuple[list[str], list[tuple[str, bool, int]]]:
    body: list[str] = []
    examples: list[tuple[str, bool, int]] = []
    section: bool | None = None
    current: list[str] = []
    current_line = 0

    def flush() -> None:
        if current and section is not None:
            examples.append((" ".join(part.strip() for part in current).strip(), section, current_line))
        current.clear()

    for number, line in enumerate(lines[start:], start=start + 1):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if heading:
            flush()
            name = heading.group(1).strip().lower().rstrip(":")
            if name in _EXAMPLE_HEADINGS:
                section = _EXAMPLE_HEADINGS[name]
                continue
            section = None
            body.append(line)
            continue
        if section is None:
            body.append(line)
            continue
        item = re.match(r"^\s*[-*+]\s+(.*)$", line)
        if item:
            flush()
            current.append(item.group(1))
            current_line = number
        elif line.strip() and current:
            current.append(line)
        elif line.strip():
            raise PolicySourceError(
                path,
                number,
                "text under an examples heading is not a list item",
                "Start each example with '- ', or move this text above the '## Violations' heading.",
            )
    flush()
    return body, examples


def _parse_example(raw: str, violation: bool, line: int, kinds: list[SubjectKind], path: Path) -> Example:
    default_kind = kinds[0] if len(kinds) == 1 else None
    stripped = raw.strip()
    subject: Subject
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            data.setdefault("kind", (default_kind or SubjectKind.TOOL_CALL).value)
            subject = Subject.model_validate(data)
        except (ValueError, ValidationError) as exc:
            raise PolicySourceError(
                path,
                line,
                f"example is not a valid subject object ({_short(exc)})",
                "Use JSON with keys kind, server, tool, arguments, text, e.g. "
                '{"kind": "tool_call", "tool": "send", "arguments": {"to": "x"}}.',
            ) from exc
    elif (call := _TOOL_CALL_EXAMPLE.match(stripped)) is not None and _json_object(call.group("args")) is not None:
        subject = Subject(
            kind=SubjectKind.TOOL_CALL, tool=call.group("tool"), arguments=_json_object(call.group("args")) or {}
        )
    else:
        text = stripped
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
            text = text[1:-1]
        subject = Subject(kind=default_kind or _text_kind(kinds), text=text)
    return Example(violation=violation, subject=subject, line=line, raw=raw)


def _text_kind(kinds: list[SubjectKind]) -> SubjectKind:
    for preferred in (SubjectKind.TOOL_RESULT, SubjectKind.PROMPT, SubjectKind.TOOL_DESCRIPTION):
        if preferred in kinds:
            return preferred
    return kinds[0]


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
    return str(exc)
