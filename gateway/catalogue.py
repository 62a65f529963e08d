"""Catalogue checks that need MCP context: plain-words diffs of changed definitions, look-alike
names, references to sensitive files, cross-server shadowing and name collisions.

These are signals with evidence for people (``scan``, ``pins diff``, the audit log); blocking is
decided by the tool-poisoning policy and the pins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Finding", "explain_change", "item_findings", "shadowing_findings", "skeleton"]

Severity = Literal["low", "medium", "high", "critical"]

_SENSITIVE = re.compile(
    r"~/\.ssh|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\.aws/credentials|\.git-credentials|\.netrc\b|\.npmrc\b|\.pypirc\b|"
    r"/etc/(?:passwd|shadow|sudoers)|\.kube/config|\bkubeconfig\b|\bwallet\.dat\b|\bseed phrase\b|"
    r"\bmnemonic\b|(?<![\w.])\.env\b|\bprivate[ _-]key\b|\bkeychain\b|\bcookies?\.sqlite\b",
    re.IGNORECASE,
)
_TO_THE_MODEL = re.compile(
    r"<\s*(?:important|system|instructions?|secret)\s*>|\bbefore (?:using|calling) (?:this|any) tool\b|"
    r"\bdo not (?:tell|mention|inform|show|reveal)\b[^.]{0,40}\buser\b|"
    r"\bignore (?:all |any )?(?:previous|prior|other)\b|"
    r"\b(?:the |an? )?(?:ai|assistant|agent|model|llm)\b[^.]{0,30}\b(?:must|should|always|never)\b|"
    r"\bwhen this tool is (?:available|present|loaded)\b|\b(?:bcc|cc|forward|send|post|upload)\b[^.]{0,60}"
    r"(?:https?://|@[a-z0-9-]+\.[a-z]{2,})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    server: str
    tool: str
    policy: str
    severity: Severity
    evidence: str

    def as_dict(self) -> dict[str, str]:
        return {
            "server": self.server,
            "tool": self.tool,
            "policy": self.policy,
            "severity": self.severity,
            "evidence": self.evidence,
        }


# Cyrillic and Greek letters that render like Latin ones in most fonts.
_CONFUSABLE = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "һ": "h",
        "ԛ": "q",
        "ԝ": "w",
        "ɡ": "g",
        "ʏ": "y",
        "А": "a",
        "В": "b",
        "Е": "e",
        "К": "k",
        "М": "m",
        "Н": "h",
        "О": "o",
        "Р": "p",
        "С": "c",
        "Т": "t",
        "Х": "x",
        "ο": "o",
        "α": "a",
        "ν": "v",
        "ρ": "p",
        "τ": "t",
        "ι": "i",
        "κ": "k",
        "υ": "u",
        "Ο": "o",
        "Α": "a",
        "Β": "b",
        "Ε": "e",
        "Ζ": "z",
        "Η": "h",
        "Ι": "i",
        "Κ": "k",
        "Μ": "m",
        "Ν": "n",
        "Ρ": "p",
        "Τ": "t",
        "Χ": "x",
        "Υ": "y",
    }
)


def skeleton(name: str) -> str:
    """A name with look-alike characters folded to ASCII, to compare names as a reader sees them."""
    folded = unicodedata.normalize("NFKD", name.translate(_CONFUSABLE))
    out = []
    for ch in folded:
        if ch.isascii():
            out.append(ch.lower())
            continue
        base = unicodedata.name(ch, "")
        match = re.search(r"(?:SMALL|CAPITAL) LETTER ([A-Z])\b", base)
        if match and "COMBINING" not in base:
            out.append(match.group(1).lower())
    return "".join(out)


def _text_of(item: Mapping[str, Any]) -> str:
    parts = [str(item.get(key, "")) for key in ("title", "description")]
    schema = item.get("inputSchema")
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        for name, prop in schema["properties"].items():
            if isinstance(prop, dict):
                parts.append(f"{name}: {prop.get('description', '')}")
    return "\n".join(part for part in parts if part)


def item_findings(server: str, item: Mapping[str, Any], label: str | None = None) -> list[Finding]:
    name = str(item.get("name", ""))
    where = label or name
    findings: list[Finding] = []
    if not name.isascii():
        odd = [f"{ch} (U+{ord(ch):04X} {unicodedata.name(ch, '?')})" for ch in name if not ch.isascii()]
        findings.append(
            Finding(
                server,
                where,
                "homoglyph-name",
                "high",
                f"name {name!r} uses non-ASCII look-alike characters: {', '.join(odd[:3])}; "
                f"it reads as {skeleton(name)!r}",
            )
        )
    text = _text_of(item)
    for match in list(_SENSITIVE.finditer(text))[:3]:
        findings.append(
            Finding(
                server,
                where,
                "sensitive-reference",
                "medium",
                f"mentions {match.group(0)!r}: …{text[max(0, match.start() - 60) : match.end() + 60]}…",
            )
        )
    for match in list(_TO_THE_MODEL.finditer(text))[:3]:
        findings.append(
            Finding(
                server,
                where,
                "instructions-to-model",
                "medium",
                f"addresses the model: …{text[max(0, match.start() - 40) : match.end() + 80]}…",
            )
        )
    return findings


def shadowing_findings(catalogue: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Finding]:
    """Name collisions across servers, and descriptions that talk about other servers' tools."""
    findings: list[Finding] = []
    owners: dict[str, list[str]] = {}
    for server, tools in catalogue.items():
        for tool in tools:
            owners.setdefault(skeleton(str(tool.get("name", ""))), []).append(server)
    for name, servers in owners.items():
        if len(set(servers)) > 1:
            for server in sorted(set(servers)):
                findings.append(
                    Finding(
                        server,
                        name,
                        "name-collision",
                        "medium",
                        f"a tool named {name!r} is offered by {', '.join(sorted(set(servers)))}",
                    )
                )
    for server, tools in catalogue.items():
        others = {
            str(t.get("name")): other
            for other, items in catalogue.items()
            if other != server
            for t in items
            if len(str(t.get("name", ""))) >= 4
        }
        for tool in tools:
            text = _text_of(tool)
            for other_name, other_server in others.items():
                if re.search(rf"(?<![\w-]){re.escape(other_name)}(?![\w-])", text):
                    findings.append(
                        Finding(
                            server,
                            str(tool.get("name")),
                            "shadowing",
                            "high",
                            f"its description refers to {other_name!r} of server {other_server!r}, "
                            "which can change how that tool is used",
                        )
                    )
    return findings


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def explain_change(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What changed between a pinned definition and the current one, in plain words."""
    if old is None:
        return ["first seen"]
    notes: list[str] = []
    for key in ("title", "description"):
        before, after = str(old.get(key) or ""), str(new.get(key) or "")
        if before == after:
            continue
        added = [s for s in _sentences(after) if s not in _sentences(before)]
        removed = [s for s in _sentences(before) if s not in _sentences(after)]
        for match in _SENSITIVE.finditer(" ".join(added)):
            notes.append(f"{key} now mentions {match.group(0)!r}")
        for match in _TO_THE_MODEL.finditer(" ".join(added)):
            notes.append(f"{key} now addresses the model: {match.group(0)!r}")
        notes += [f"{key} gained: {s[:160]!r}" for s in added[:4]]
        notes += [f"{key} lost: {s[:160]!r}" for s in removed[:2]]
    old_schema = _mapping(old.get("inputSchema"))
    new_schema = _mapping(new.get("inputSchema"))
    old_props = old_schema.get("properties") or {}
    new_props = new_schema.get("properties") or {}
    old_required, new_required = set(old_schema.get("required") or []), set(new_schema.get("required") or [])
    for name in sorted(set(new_props) - set(old_props)):
        notes.append(f"new {'required ' if name in new_required else ''}parameter {name!r}")
    for name in sorted(set(old_props) - set(new_props)):
        notes.append(f"parameter {name!r} removed")
    for name in sorted(set(new_props) & set(old_props)):
        if old_props[name] != new_props[name]:
            notes.append(f"parameter {name!r} changed: {old_props[name]} → {new_props[name]}")
    for name in sorted((new_required - old_required) & set(old_props)):
        notes.append(f"parameter {name!r} is now required")
    old_notes, new_notes = old.get("annotations") or {}, new.get("annotations") or {}
    if old_notes.get("readOnlyHint") and not new_notes.get("readOnlyHint"):
        notes.append("no longer declared read-only")
    if new_notes.get("destructiveHint") and not old_notes.get("destructiveHint"):
        notes.append("now declared destructive")
    if old_notes.get("openWorldHint") is False and new_notes.get("openWorldHint"):
        notes.append("now reaches the outside world (openWorldHint)")
    for key in ("outputSchema", "arguments"):
        if old.get(key) != new.get(key):
            notes.append(f"{key} changed")
    return notes or ["definition changed (formatting or metadata)"]
