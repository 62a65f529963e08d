"""BIPIA: indirect injection in emails, tables and Stack Overflow answers (tool results).

BIPIA ships clean contexts and attack strings separately, each with its own train/test files, and
its train and test attacks come from disjoint categories. We keep that separation: BIPIA test
becomes our test; BIPIA train is cut into our train and dev, contexts by a hash of the text and
attacks by whole category (every fourth category is dev), so dev, like test, holds attack kinds
the classifier never trained on. A positive is a context with one attack inserted at its start,
middle or end (BIPIA's own placements); its negative twin is the same context untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from policy.cases import split_of

from .base import Case, Source, Split, SubjectKind, Suite, make_case, normalise, read_json, read_jsonl, rng, text_tag
from .insertion import POSITIONS, insert

__all__ = ["SOURCES", "Attack", "Context", "attacks", "bipia_cases", "contexts"]

Task = Literal["email", "table", "code"]
_PI: Suite = "prompt-injection"
_UPSTREAM = "microsoft/BIPIA benchmark/"
EMAIL = Source("bipia-email", _PI, "MIT; contexts from OpenAI Evals (MIT)", _UPSTREAM + "email", True)
TABLE = Source("bipia-table", _PI, "MIT; contexts from WikiTableQuestions (CC-BY-SA-4.0)", _UPSTREAM + "table", True,
               "share-alike applies to the contexts")
CODE = Source("bipia-code", _PI, "MIT; contexts from Stack Exchange (CC-BY-SA-4.0)", _UPSTREAM + "code", True,
              "share-alike applies to the contexts")
SOURCES = (EMAIL, TABLE, CODE)
_BY_TASK: dict[Task, Source] = {"email": EMAIL, "table": TABLE, "code": CODE}
# Where each context would come from in MCP traffic.
_TOOLS: dict[Task, tuple[str, str]] = {"email": ("mail", "read_email"), "table": ("database", "query_table"),
                                       "code": ("web-search", "search_stackoverflow")}
# Attacks per clean context: tables are 18x more numerous than emails or code answers.
_ATTACKS_PER_CONTEXT: dict[tuple[Task, Split], int] = {
    ("email", "train"): 3, ("email", "dev"): 3, ("email", "test"): 3, ("code", "train"): 3, ("code", "dev"): 3,
    ("code", "test"): 3, ("table", "train"): 1, ("table", "dev"): 1, ("table", "test"): 2,
}


@dataclass(frozen=True)
class Context:
    task: Task
    key: str
    text: str
    split: Split

    @property
    def source(self) -> Source:
        return _BY_TASK[self.task]

    @property
    def server(self) -> str:
        return _TOOLS[self.task][0]

    @property
    def tool(self) -> str:
        return _TOOLS[self.task][1]


@dataclass(frozen=True)
class Attack:
    family: Literal["text", "code"]
    category: str
    text: str
    split: Split


def _our_split(bipia_split: str, key: str) -> Split:
    if bipia_split == "test":
        return "test"
    return split_of(key, dev=0.25, test=0.0)


def contexts(data_dir: Path) -> list[Context]:
    base = data_dir / "bipia"
    found: list[Context] = []
    seen: set[str] = set()  # BIPIA asks several questions about one table: each context once
    for task in ("email", "table", "code"):
        for bipia_split in ("train", "test"):
            for index, row in enumerate(read_jsonl(base / task / f"{bipia_split}.jsonl")):
                context = row["context"]
                text = "\n".join(context) if isinstance(context, list) else str(context)
                if text.strip() and normalise(text) not in seen:
                    seen.add(normalise(text))
                    found.append(Context(task, f"{bipia_split}.{index}", text.strip(),
                                         _our_split(bipia_split, text)))
    return found


def attacks(data_dir: Path) -> list[Attack]:
    found: list[Attack] = []
    for family in ("text", "code"):
        for bipia_split in ("train", "test"):
            groups: dict[str, list[str]] = read_json(data_dir / "bipia" / f"{family}_attack_{bipia_split}.json")
            for number, category in enumerate(sorted(groups)):
                split: Split = "test" if bipia_split == "test" else ("dev" if number % 4 == 3 else "train")
                found += [Attack(family, category, text.strip(), split) for text in groups[category]]
    return found


def bipia_cases(data_dir: Path) -> Iterator[Case]:
    pool: dict[tuple[str, Split], list[Attack]] = {}
    for attack in attacks(data_dir):
        pool.setdefault((attack.family, attack.split), []).append(attack)
    for context in contexts(data_dir):
        common: dict[str, Any] = {"kind": SubjectKind.TOOL_RESULT, "split": context.split,
                                  "server": context.server, "tool": context.tool}
        yield make_case(context.source, context.key, expect="allow", text=context.text,
                        tags=("indirect", "bipia", f"carrier:{context.task}", "clean"), **common)
        family = "code" if context.task == "code" else "text"
        choices = pool[(family, context.split)]
        draw = rng("bipia", context.task, context.key)
        for attack in draw.sample(choices, _ATTACKS_PER_CONTEXT[(context.task, context.split)]):
            position = draw.choice(POSITIONS)
            text = insert(context.text, attack.text, position, draw)
            slug = attack.category.lower().replace(" ", "-").replace("&", "and")
            attack_tag = text_tag("attack", attack.text)
            yield make_case(context.source, f"{context.key}+{attack_tag.split(':')[1][:8]}.{position}",
                            expect="violation", text=text,
                            tags=("indirect", "bipia", f"carrier:{context.task}", f"bipia:{slug}",
                                  f"position:{position}", "wrapper:plain", attack_tag), **common)
