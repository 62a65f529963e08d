"""Adapters from the public labelled datasets to `policy.cases.Case` files, and the build that runs them.

``ADAPTERS`` maps a name to a function ``data_dir -> Iterable[Case]``; every case names its
``source`` (one of ``SOURCES``, which records the licence) and its suite (``Case.policy``).
`build_all` runs every adapter and writes::

    <out>/<suite>/<source>.<split>.jsonl   the cases
    <out>/pii/<split>.spans.jsonl          gold PII spans per case id (span-level scoring)
    <out>/secrets/<split>.spans.jsonl      gold secret value spans per case id (masking scores)
    <out>/manifest.json                    counts per suite/source/split/label, licences, what was dropped

Within a suite, one text appears once: exact duplicates (after case and space folding) keep their
first occurrence in adapter order; a text that two sources label differently is dropped altogether
and listed in the manifest. The data stays in ``../shared/data``; nothing here copies rows into the
repository.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from policy.cases import Case

from . import (
    bipia,
    crosssuite,
    indirect,
    injection,
    mcp_catalogue,
    multilingual,
    npm_code,
    package_code,
    pii_data,
    safety,
    secrets_data,
    tool_outputs,
)
from .base import SUITES, Source, normalise

__all__ = ["ADAPTERS", "DATA_DIR_ENV", "SOURCES", "DatasetError", "build_all", "default_data_dir"]

DATA_DIR_ENV = "MCP_GATEWAY_DATA_DIR"
ROOT = Path(__file__).resolve().parents[2]

ADAPTERS: dict[str, Callable[[Path], Iterable[Case]]] = {
    "injection": injection.direct_cases,
    "bipia": bipia.bipia_cases,
    "indirect": indirect.indirect_cases,
    "tool-poisoning": mcp_catalogue.tool_poisoning_cases,
    "content-safety": safety.safety_cases,
    "secrets": secrets_data.secrets_cases,
    "pii": pii_data.pii_cases,
    "tool-outputs": tool_outputs.tool_output_cases,
    "package-code": package_code.package_code_cases,
    "package-docs": package_code.package_doc_cases,
    "npm-code": npm_code.npm_code_cases,
    "benign-multilingual": multilingual.multilingual_cases,
}
SOURCES: dict[str, Source] = {
    source.name: source
    for module in (injection, bipia, indirect, mcp_catalogue, safety, secrets_data, pii_data, tool_outputs,
                   package_code, npm_code, crosssuite, multilingual)
    for source in module.SOURCES
}


class DatasetError(Exception):
    """The data directory is missing or an adapter produced cases that break the build's rules."""


def default_data_dir() -> Path:
    """``$MCP_GATEWAY_DATA_DIR``, else ``shared/data`` beside the repository (where CI has it)."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else ROOT.parent / "shared" / "data"


def _collect(data_dir: Path) -> dict[str, list[Case]]:
    by_suite: dict[str, list[Case]] = {suite: [] for suite in SUITES}
    for name, adapter in ADAPTERS.items():
        for case in adapter(data_dir):
            source = SOURCES.get(case.source)
            if source is None or source.suite != case.policy or case.split is None:
                raise DatasetError(f"adapter {name!r} made case {case.id!r} with source {case.source!r}, "
                                   f"policy {case.policy!r}, split {case.split!r}; register the source in its "
                                   "module's SOURCES and give every case a split")
            by_suite[source.suite].append(case)
    return by_suite


def _deduplicate(cases: list[Case]) -> tuple[list[Case], Counter[str], list[str]]:
    """Each text once per suite: (kept cases, duplicates dropped per source, ids dropped as conflicting)."""
    labels: dict[tuple[str, str], set[str]] = {}
    for case in cases:
        labels.setdefault((case.kind.value, normalise(case.subject().reading())), set()).add(case.expect)
    kept: list[Case] = []
    seen: set[tuple[str, str]] = set()
    duplicates: Counter[str] = Counter()
    conflicts: list[str] = []
    for case in cases:
        marker = (case.kind.value, normalise(case.subject().reading()))
        if len(labels[marker]) > 1:
            conflicts.append(case.id)
        elif marker in seen:
            duplicates[case.source] += 1
        else:
            seen.add(marker)
            kept.append(case)
    return kept, duplicates, conflicts


# `policy.cases.load_cases` reads JSONL with str.splitlines, which also breaks at U+0085, U+2028 and
# U+2029; JSON may leave those raw inside strings (in-the-wild jailbreaks contain them), so escape them.
_LINE_BREAKS = (("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _write_cases(cases: list[Case], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for case in cases:
            line = case.model_dump_json(exclude_defaults=True)
            for raw, escaped in _LINE_BREAKS:
                line = line.replace(raw, escaped)
            handle.write(line + "\n")
    return len(cases)


def _write_spans(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _spans(out_dir: Path, data_dir: Path, kept: set[str]) -> None:
    pii: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    for row in pii_data.pii_spans(data_dir):
        if row.case.id in kept:
            pii[str(row.case.split)].append({"id": row.case.id, "spans": [list(s) for s in row.spans],
                                             "other": [list(s) for s in row.other]})
    secret: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    for span_row in secrets_data.secrets_spans(data_dir):
        if span_row.case_id in kept:
            secret[span_row.split].append({"id": span_row.case_id, "spans": [list(s) for s in span_row.spans]})
    for split in ("train", "dev", "test"):
        _write_spans(out_dir / "pii" / f"{split}.spans.jsonl", pii[split])
        _write_spans(out_dir / "secrets" / f"{split}.spans.jsonl", secret[split])


def build_all(out_dir: Path, data_dir: Path | None = None) -> dict[str, int]:
    """Build every suite into `out_dir`; returns the number of cases per written file (relative path)."""
    data_dir = data_dir or default_data_dir()
    if not data_dir.is_dir():
        raise DatasetError(f"data directory {data_dir} does not exist; set {DATA_DIR_ENV} or place the datasets "
                           "in shared/data beside the repository")
    by_suite = _collect(data_dir)
    by_suite["prompt-injection"].extend(crosssuite.cross_suite_cases(by_suite))
    files: dict[str, int] = {}
    manifest: dict[str, Any] = {"format": 1, "suites": {}, "sources": {}, "dropped": {"duplicates": {},
                                                                                        "conflicts": {}}}
    counts: dict[str, dict[str, Counter[str]]] = {}
    all_ids: set[str] = set()
    for suite, cases in by_suite.items():
        kept, duplicates, conflicts = _deduplicate(cases)
        manifest["dropped"]["duplicates"].update(sorted(duplicates.items()))
        if conflicts:
            manifest["dropped"]["conflicts"][suite] = conflicts
        groups: dict[tuple[str, str], list[Case]] = {}
        for case in kept:
            if case.id in all_ids:
                raise DatasetError(f"case id {case.id!r} appears twice; ids are <source>:<row key>")
            all_ids.add(case.id)
            groups.setdefault((case.source, str(case.split)), []).append(case)
            counts.setdefault(case.source, {}).setdefault(str(case.split), Counter())[case.expect] += 1
        directory = out_dir / suite
        if directory.is_dir():
            for stale in directory.glob("*.jsonl"):  # files of sources that no longer exist
                stale.unlink()
        for (source, split), members in sorted(groups.items()):
            relative = f"{suite}/{source}.{split}.jsonl"
            files[relative] = _write_cases(members, out_dir / relative)
        manifest["suites"][suite] = {
            split: dict(sorted(Counter(c.expect for c in kept if c.split == split).items()))
            for split in ("train", "dev", "test")
        }
    _spans(out_dir, data_dir, all_ids)
    for name, info in sorted(SOURCES.items()):
        manifest["sources"][name] = {
            "suite": info.suite, "licence": info.licence, "upstream": info.upstream,
            "commercial_use": info.commercial, "eval_only": info.eval_only, "note": info.note,
            "counts": {split: dict(sorted(c.items())) for split, c in sorted(counts.get(name, {}).items())},
        }
    manifest["files"] = dict(sorted(files.items()))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    return files
