"""Secrets: CredSweeper's and detect-secrets' test fixtures, as whole files and as line windows.

CredSweeper's ``data/output.json`` is the tool's own expected output on its samples (silver labels,
ML filter on): a file with a finding is a violation, and so is a window of lines around each
finding. Negatives are the files with no finding (many are deliberate look-alikes: ``*_n``,
``*_fp``, ``password_FALSE``, encrypted PEM keys) and windows of a positive file that are at least
three lines away from every finding. detect-secrets' baseline dates from 2020 and may lag its
fixtures, so only its positives are windowed; files it lists nothing for are negatives.

File names never reach the case: several of them ("aws_multi_fp") spell out the label. Every
window of one file shares the file's split. Gold value spans go to a side file for masking scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .base import Case, Source, SubjectKind, Suite, make_case, read_json, text_split

__all__ = ["SOURCES", "SpanRow", "secrets_cases", "secrets_spans"]

_S: Suite = "secrets"
CREDSWEEPER = Source("credsweeper", _S, "MIT", "Samsung/CredSweeper tests/samples + tests/data/output.json", True,
                     "labels are CredSweeper's expected output (silver); values are fake")
DETECT_SECRETS = Source("detect-secrets", _S, "Apache-2.0", "Yelp/detect-secrets test_data/", True,
                        "labels from the 2020 baseline.file; values are fake")
SOURCES = (CREDSWEEPER, DETECT_SECRETS)

_CONTEXT = 2  # lines either side of a finding
_MAX_FILE = 16_000  # larger files are only used as windows
_NEGATIVE_WINDOW = 5


@dataclass(frozen=True)
class SpanRow:
    case_id: str
    split: str
    spans: list[tuple[int, int, str]]


@dataclass(frozen=True)
class _Finding:
    rule: str
    first: int  # 0-based line indexes, inclusive
    last: int
    values: tuple[str, ...]


def _read(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\x00" in data:
        return None
    return data.decode("utf-8", errors="replace")


def _slug(rule: str) -> str:
    return rule.lower().replace(" ", "-")


def _spans(text: str, findings: list[_Finding]) -> list[tuple[int, int, str]]:
    spans: set[tuple[int, int, str]] = set()
    for finding in findings:
        for value in finding.values:
            start = text.find(value) if value else -1
            if start >= 0:
                spans.add((start, start + len(value), _slug(finding.rule)))
    return sorted(spans)


def _credsweeper_findings(base: Path) -> dict[str, list[_Finding]]:
    by_file: dict[str, list[_Finding]] = {}
    for finding in read_json(base / "data" / "output.json"):
        lines: list[int] = []
        values: list[str] = []
        name = ""
        for line in finding["line_data_list"]:
            name = str(line["path"]).removeprefix("./tests/samples/")
            path = base / "samples" / name
            if not path.exists():  # points at a source-code sample that was not copied
                continue
            text = _read(path) or ""
            file_lines = text.splitlines()
            number = int(line["line_num"]) - 1
            value = str(line["value"])
            if not (0 <= number < len(file_lines) and value in file_lines[number]):
                # structured files (XML) are reported at parsed positions: find the value instead
                number = next((i for i, row in enumerate(file_lines) if value and value in row), -1)
            if number >= 0:
                lines.append(number)
                values.append(value)
        if lines:
            by_file.setdefault(name, []).append(_Finding(str(finding["rule"]), min(lines), max(lines), tuple(values)))
    return by_file


def _detect_secrets_findings(base: Path) -> dict[str, list[_Finding]]:
    baseline: dict[str, list[dict[str, Any]]] = read_json(base / "baseline.file")["results"]
    return {name: [_Finding(str(r["type"]), int(r["line_number"]) - 1, int(r["line_number"]) - 1, ())
                   for r in results]
            for name, results in baseline.items() if (base / name).exists()}


def _cases(source: Source, base: Path, names: list[str], findings: dict[str, list[_Finding]],
           negative_windows: bool) -> Iterator[tuple[Case, list[tuple[int, int, str]]]]:
    for name in names:
        text = _read(base / name)
        if text is None or not text.strip():
            continue
        split = text_split(f"{source.name}:{name}")
        found = sorted(findings.get(name, []), key=lambda f: (f.first, f.last, f.rule))
        rules = sorted({f"rule:{_slug(f.rule)}" for f in found})
        expect: Literal["violation", "allow"] = "violation" if found else "allow"
        common: dict[str, Any] = {"kind": SubjectKind.TOOL_RESULT, "split": split, "server": "filesystem",
                                  "tool": "read_text_file"}
        if len(text) <= _MAX_FILE:
            yield (make_case(source, f"{name}", expect=expect, text=text, tags=("file", *rules), **common),
                   _spans(text, found))
        lines = text.splitlines()
        windows: dict[tuple[int, int], list[_Finding]] = {}
        for finding in found:
            span = (max(0, finding.first - _CONTEXT), min(len(lines), finding.last + _CONTEXT + 1))
            windows.setdefault(span, []).append(finding)
        for (start, end), inside in sorted(windows.items()):
            window = "\n".join(lines[start:end])
            tags = ("window", *sorted({f"rule:{_slug(f.rule)}" for f in inside}))
            yield (make_case(source, f"{name}:L{start + 1}-{end}", expect="violation", text=window, tags=tags,
                             **common), _spans(window, inside))
        if not negative_windows:
            continue
        near = {i for f in found for i in range(f.first - _CONTEXT - 1, f.last + _CONTEXT + 2)}
        for run in _runs([i for i in range(len(lines)) if i not in near]):
            window = "\n".join(lines[i] for i in run)
            if window.strip():
                yield (make_case(source, f"{name}:L{run[0] + 1}-{run[-1] + 1}", expect="allow", text=window,
                                 tags=("window", "clean-lines" if found else "negative-file"), **common), [])


def _runs(indexes: list[int]) -> list[list[int]]:
    """Consecutive line indexes cut into runs of at most `_NEGATIVE_WINDOW`."""
    runs: list[list[int]] = []
    for index in indexes:
        if runs and runs[-1][-1] == index - 1 and len(runs[-1]) < _NEGATIVE_WINDOW:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _all(data_dir: Path) -> Iterator[tuple[Case, list[tuple[int, int, str]]]]:
    cred = data_dir / "credsweeper-samples"
    names = sorted(p.name for p in (cred / "samples").iterdir() if p.is_file())
    yield from _cases(CREDSWEEPER, cred / "samples", names, _credsweeper_findings(cred), negative_windows=True)
    ds = data_dir / "detect-secrets-testdata"
    names = sorted(str(p.relative_to(ds)) for p in ds.rglob("*")
                   if p.is_file() and p.name not in ("baseline.file", "PROVENANCE.md"))
    yield from _cases(DETECT_SECRETS, ds, names, _detect_secrets_findings(ds), negative_windows=False)


def secrets_cases(data_dir: Path) -> Iterator[Case]:
    for case, _ in _all(data_dir):
        yield case


def secrets_spans(data_dir: Path) -> Iterator[SpanRow]:
    for case, spans in _all(data_dir):
        if spans:
            yield SpanRow(case.id, str(case.split), spans)
