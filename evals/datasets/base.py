"""What every adapter shares: sources and their licences, stable keys and splits, case construction.

Splits are decided by keys, never by row order, so that a rebuild is byte-identical and the same text
lands in the same split whichever dataset it comes from. Two rules sit on top of `split_of`:

* a source whose licence does not allow commercial use (or that has no licence) only ever lands in
  ``test``: train and dev both feed the shipped classifier heads (training, threshold calibration);
* our own templates rotate through the splits by template (3 train : 1 dev : 1 test), so every
  attack style is represented in each split and no template is shared between splits.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from policy.cases import Case, split_of
from policy.subject import SubjectKind

__all__ = [
    "SUITES", "Case", "Source", "Split", "SubjectKind", "Suite", "digest", "make_case", "normalise", "read_csv",
    "read_json", "read_jsonl", "read_lines", "read_yaml", "rng", "rotate_split", "source_split", "text_split",
    "text_tag",
]

Suite = Literal["prompt-injection", "content-safety", "tool-poisoning", "secrets", "pii"]
Split = Literal["train", "dev", "test"]
SUITES: tuple[Suite, ...] = ("prompt-injection", "content-safety", "tool-poisoning", "secrets", "pii")
_ROTATION: tuple[Split, ...] = ("train", "train", "train", "dev", "test")


@dataclass(frozen=True)
class Source:
    """One labelled source as it appears in case ids, file names and the manifest."""

    name: str
    suite: Suite
    licence: str
    upstream: str
    commercial: bool
    """Whether the licence allows commercial use; False also for data with no licence at all."""
    note: str = ""

    @property
    def eval_only(self) -> bool:
        return not self.commercial


def normalise(text: str) -> str:
    """The form two texts must share to count as the same text (case and spacing ignored)."""
    return " ".join(text.split()).casefold()


def digest(text: str, size: int = 12) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()[:size]


def text_split(text: str) -> Split:
    """The split of a text: equal texts (after `normalise`) always share it, across datasets."""
    return split_of(normalise(text))


def source_split(source: Source, key: str) -> Split:
    return "test" if source.eval_only else text_split(key)


def rotate_split(index: int) -> Split:
    return _ROTATION[index % len(_ROTATION)]


def text_tag(prefix: str, text: str) -> str:
    """A tag naming a text by its digest, e.g. ``attack:3f2a...``: scorers group and check leakage by it."""
    return f"{prefix}:{digest(text)}"


def rng(*parts: object) -> random.Random:
    """A generator seeded from the parts: string seeds hash with SHA-512, not with PYTHONHASHSEED."""
    return random.Random(":".join(str(p) for p in parts))


def make_case(source: Source, row_key: str, *, kind: SubjectKind, expect: Literal["violation", "allow"], text: str,
              split: Split, tags: Sequence[str] = (), server: str = "", tool: str = "",
              arguments: dict[str, Any] | None = None, structured: Any = None) -> Case:
    return Case(id=f"{source.name}:{row_key}", policy=source.suite, kind=kind, expect=expect, text=text,
                server=server, tool=tool, arguments=arguments or {}, structured=structured, source=source.name,
                split=split, tags=list(dict.fromkeys(tags)))


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def read_lines(path: Path) -> list[str]:
    """Non-empty lines, without their line ends."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the 800 KB of re-hosts 8x faster
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
