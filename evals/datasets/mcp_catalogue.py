"""MCP catalogues: real tool descriptions (benign), poisoned ones (MCP-SafetyBench), and the tool-poisoning suite.

Also the loaders for the benign ``tools/call`` examples in the MCP snapshots, which `indirect` uses
as carriers and as benign tool results.

What counts as poisoned follows our policy: a description that carries instructions for the model
beyond how to use the tool. MCP-SafetyBench's "Preference Manipulation" ("the world's best
tool, used by 99% of professionals") and "Function Overlapping" (a look-alike duplicate of a real
tool) carry no such instruction; they are attacks on tool *selection*, visible only by comparing
tools across a catalogue (the gateway's pins and shadowing check), so they are left out rather
than labelled as violations of a text policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.guards import describe_tool  # the reading the gateway builds at tools/list

from .attack_templates import POISON_TEMPLATES, fill
from .base import (
    Case,
    Source,
    Split,
    SubjectKind,
    Suite,
    make_case,
    normalise,
    read_json,
    rng,
    rotate_split,
    text_split,
    text_tag,
)

__all__ = ["SOURCES", "ToolDef", "ToolExample", "describe_tool", "livemcpbench_tools", "snapshot_examples",
           "snapshot_tools", "tool_names", "tool_poisoning_cases"]

_TP: Suite = "tool-poisoning"
LIVEMCPBENCH = Source("livemcpbench", _TP, "Apache-2.0 (descriptions: each server's own licence)",
                      "icip-cas/LiveMCPBench tools/LiveMCPTool/tools.json", True)
SNAPSHOT_TOOLS = Source("mcp-snapshots-tools", _TP, "MIT", "jakemannix/mcp-proxy demo/mcp-snapshots", True)
SAFETYBENCH = Source("mcp-safetybench-tools", _TP, "BSD-3-Clause (declared in pyproject, no LICENSE file)",
                     "xjzzzzzzzz/MCPSafety benchmark/configs/test", True,
                     "tool poisoning and tool shadowing only; preference manipulation and function overlapping "
                     "left out (no instruction in the text)")
MCPSECBENCH_POISON = Source("mcpsecbench-poison", _TP, "MIT", "TUM-DSE/MCPSecBench attacks_updated.json", True,
                            "the playground's poisoned-description snippets, appended to real descriptions")
POISON_BUILT = Source("poison-templates", _TP, "Apache-2.0 (this repository's templates)",
                      "own templates appended to real descriptions", True)
SOURCES = (LIVEMCPBENCH, SNAPSHOT_TOOLS, SAFETYBENCH, MCPSECBENCH_POISON, POISON_BUILT)

_SNAPSHOT_SKIP = {"memory-projection-demo.json", "server-sqlite.json"}  # a demo config and a 30-byte stub
_DISGUISES = ("{d} {a}", "{d}\n\n<IMPORTANT>\n{a}\n</IMPORTANT>", "{d}\n<!-- {a} -->", "{d}\n\n\n\n\n\n\n\n{a}",
              "{d} Note to the assistant: {a}")
_SHINGLE = 3
_NEAR_DUPLICATE = 0.15


@dataclass(frozen=True)
class ToolDef:
    origin: str
    server: str
    name: str
    item: Mapping[str, Any] = field(hash=False)

    @property
    def text(self) -> str:
        return describe_tool(self.item)


@dataclass(frozen=True)
class ToolExample:
    server: str
    tool: str
    arguments: Mapping[str, Any]
    text: str
    structured: Any


def snapshot_tools(data_dir: Path) -> list[ToolDef]:
    found: list[ToolDef] = []
    for path in sorted((data_dir / "mcp-server-snapshots").glob("*.json")):
        if path.name in _SNAPSHOT_SKIP or path.stem.endswith("-examples"):
            continue
        snapshot = read_json(path)
        info = snapshot.get("server_info") or {}
        server = str(snapshot.get("server") or info.get("name") or path.stem)
        found += [ToolDef("snapshot", server, str(tool["name"]), tool) for tool in snapshot.get("tools", [])]
    return found


def _text_of(output: Mapping[str, Any]) -> str:
    if isinstance(output.get("text"), str):
        return str(output["text"])
    blocks = output.get("content") or []
    return "\n".join(str(b["text"]) for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


def snapshot_examples(data_dir: Path) -> list[ToolExample]:
    """The example ``tools/call`` results: benign (hand-written or captured by the snapshot's author)."""
    found: list[ToolExample] = []
    for path in sorted((data_dir / "mcp-server-snapshots").glob("*-examples.json")):
        snapshot = read_json(path)
        server = str(snapshot.get("server") or path.stem.removesuffix("-examples"))
        tools = snapshot.get("tools")
        if isinstance(tools, dict):
            for name, example in tools.items():
                output = example.get("example_output") or {}
                found.append(ToolExample(server, name, example.get("example_input") or {}, _text_of(output),
                                         output.get("structuredContent")))
        for example in snapshot.get("examples", []):
            found.append(ToolExample(server, str(example["tool"]), example.get("arguments") or {},
                                     _text_of(example.get("output") or {}), None))
    return [e for e in found if e.text.strip()]


def livemcpbench_tools(data_dir: Path) -> list[ToolDef]:
    found: list[ToolDef] = []
    for server in read_json(data_dir / "livemcpbench-tools" / "tools.json"):
        for group in server["tools"].values():
            found += [ToolDef("livemcpbench", str(server["name"]), str(tool["name"]), tool)
                      for tool in group["tools"]]
    return found


def tool_names(data_dir: Path) -> tuple[str, ...]:
    """Real tool names, for attack templates that name a tool to call."""
    return tuple(sorted({t.name for t in snapshot_tools(data_dir)}))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", normalise(text))


def _core(words: list[str], others: list[list[str]]) -> list[str]:
    """The words left after the longest prefix and suffix shared with another description of the same
    tool: the real description and its "Args:" tail are the same in every poisoned copy."""
    prefix = suffix = 0
    for other in others:
        limit = min(len(words), len(other))
        prefix = max(prefix, next((k for k in range(limit) if words[k] != other[k]), limit))
        suffix = max(suffix, next((k for k in range(limit) if words[-1 - k] != other[-1 - k]), limit))
    return words[prefix:len(words) - suffix] if prefix + suffix < len(words) else words


def _cluster_keys(rows: list[tuple[str, str]]) -> list[str]:
    """For each (tool, description), the key of its near-duplicate cluster.

    MCP-SafetyBench reuses each injection across domains with the tool names and targets swapped
    ("CRITICAL SYSTEM UPDATE: ... you must execute the following command ..."); a key per text
    would put the same attack in train and test. Texts are compared without the parts every
    poisoned copy of the same tool shares, on word 3-grams, Jaccard >= 0.15, transitively.
    """
    words = [_words(text) for _, text in rows]
    cores = [_core(words[i], [words[j] for j in range(len(rows)) if j != i and rows[j][0] == rows[i][0]])
             for i in range(len(rows))]
    sets = [{tuple(c[k:k + _SHINGLE]) for k in range(max(1, len(c) - _SHINGLE + 1))} for c in cores]
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= _NEAR_DUPLICATE:
                parent[root(j)] = root(i)
    members: dict[int, list[str]] = {}
    for i, (_, text) in enumerate(rows):
        members.setdefault(root(i), []).append(normalise(text))
    return [min(members[root(i)]) for i in range(len(rows))]


def _safetybench(data_dir: Path) -> Iterator[Case]:
    rows: list[tuple[str, str, str, str]] = []  # (row key, tool, text, category)
    tasks = data_dir / "mcp-safetybench" / "benchmark" / "configs" / "test"
    for path in sorted(tasks.glob("*/*.json")):
        task = read_json(path)
        category = str(task["attack_category"])
        if category.startswith("Tool Poisoning"):
            for index, change in enumerate(task.get("mcp_server_modifications", [])):
                if isinstance(change.get("modification_description"), str):
                    rows.append((f"{path.stem}.{index}", change["tool_name"], change["modification_description"],
                                 category))
        elif category == "Tool Shadowing":
            added = task["mcp_server_additions"]
            rows.append((path.stem, added["tool_name"], added["description"], category))
    keys = _cluster_keys([(tool, text) for _, tool, text, _ in rows])
    seen: set[str] = set()
    for (row_key, tool, text, category), key in zip(rows, keys, strict=True):
        if normalise(text) in seen:
            continue
        seen.add(normalise(text))
        slug = category.lower().replace("tool poisoning-", "").replace(" ", "-")
        yield make_case(SAFETYBENCH, row_key, kind=SubjectKind.TOOL_DESCRIPTION, expect="violation",
                        text=text.strip(), tool=tool, split=text_split(key),
                        tags=("mcp-safetybench", f"category:{slug}", text_tag("cluster", key)))


def _hosts(tools: list[ToolDef], split: Split, key: str, count: int) -> list[ToolDef]:
    """Benign tools of one split, to carry an appended instruction (the host never crosses splits)."""
    same = [t for t in tools if _tool_split(t) == split and t.text.strip() and len(t.text) < 1200]
    return rng("host", key).sample(same, min(count, len(same)))


def _tool_split(tool: ToolDef) -> Split:
    # One server's tools share wording and parameters: the whole server lands in one split.
    return text_split(f"server:{tool.server}")


def _benign(tools: list[ToolDef], source: Source) -> Iterator[Case]:
    for tool in tools:
        text = tool.text
        if text.strip():
            yield make_case(source, f"{tool.server}/{tool.name}", kind=SubjectKind.TOOL_DESCRIPTION, expect="allow",
                            text=text, tool=tool.name, server=tool.server, split=_tool_split(tool),
                            tags=("real-description",))


def _appended(source: Source, host: ToolDef, key: str, instruction: str, *, split: Split,
              tags: tuple[str, ...]) -> Case:
    draw = rng("disguise", key, host.server, host.name)
    disguise = draw.randrange(len(_DISGUISES))
    description = str(host.item.get("description") or "").strip()
    poisoned = {**host.item, "description": _DISGUISES[disguise].format(d=description, a=instruction)}
    return make_case(source, f"{key}@{host.origin}:{host.server}/{host.name}", kind=SubjectKind.TOOL_DESCRIPTION,
                     expect="violation", text=describe_tool(poisoned), tool=host.name, server=host.server, split=split,
                     tags=(*tags, f"disguise:{disguise}"))


def tool_poisoning_cases(data_dir: Path) -> Iterator[Case]:
    snapshot = snapshot_tools(data_dir)
    live = livemcpbench_tools(data_dir)
    yield from _benign(live, LIVEMCPBENCH)
    yield from _benign(snapshot, SNAPSHOT_TOOLS)
    yield from _safetybench(data_dir)
    hosts = live + snapshot
    names = tool_names(data_dir)
    for group in read_json(data_dir / "mcpsecbench" / "attacks_updated.json"):
        snippet = str(group.get("malicious_prompt", "")).strip()
        if not snippet:
            continue
        split = text_split(snippet)
        for host in _hosts(hosts, split, snippet, 3):
            yield _appended(MCPSECBENCH_POISON, host, str(group["name"]).lower().replace(" ", "-"), snippet,
                            split=split, tags=("mcpsecbench", text_tag("attack", snippet)))
    for index, template in enumerate(POISON_TEMPLATES):
        split = rotate_split(index)
        for lang, text in sorted(template.texts.items()):
            for host in _hosts(hosts, split, f"{template.id}.{lang}", 6):
                instruction = fill(text, rng(template.id, lang, host.server, host.name), names)
                yield _appended(POISON_BUILT, host, f"{template.id}.{lang}", instruction, split=split,
                                tags=("own-template", f"template:{template.id}", f"style:{template.style}",
                                      f"lang:{lang}", f"attack:tpl-{template.id}"))
