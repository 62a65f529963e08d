"""Minimal edits to JSON and JSONC config files: splice new text into the spans of the values that change.

An entry is edited on its own text (re-parsed after every key edit, so spans are never stale) and
spliced back into the file when it is rendered: a multi-megabyte ``~/.claude.json`` is parsed once,
not once per edit. New text follows the file's own style: its newline, the indentation of the
neighbouring keys, one line or many as the old value was written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from pydantic import JsonValue

from . import jsonc
from .clients import ConfigLocation
from .configdoc import EntrySource, EntryValue, TablePath, same_json
from .errors import ClientConfigError

__all__ = ["JsonDocument"]

_BOM = "\ufeff"


class JsonDocument:
    """A JSON (or JSONC) config file open for editing."""

    def __init__(self, location: ConfigLocation, text: str) -> None:
        self.location = location
        self._bom = text.startswith(_BOM)
        self._text = text.removeprefix(_BOM)
        self._newline = "\r\n" if "\r\n" in self._text else "\n"
        self._root = self._parse(self._text)
        self._edits: dict[TablePath, tuple[str, EntryValue]] = {}  # entry path -> (new text, new value)
        if not isinstance(self._root, jsonc.ObjectNode):
            raise ClientConfigError(
                f"{location.path}: the top level is not a JSON object, as a client config file's is; "
                "the file was not changed"
            )

    def _parse(self, text: str) -> jsonc.Node:
        if not text.strip():
            return jsonc.ObjectNode(0, 0, ())
        try:
            return jsonc.parse(text)
        except jsonc.JsoncError as exc:
            raise ClientConfigError(
                f"{self.location.path}:{exc.line}:{exc.column}: not valid JSON: {exc.message}; "
                "the file was not changed. Fix the file and run again"
            ) from exc

    # -- reading ---------------------------------------------------------------------------------

    def data(self) -> dict[str, JsonValue]:
        assert isinstance(self._root, jsonc.ObjectNode)
        data = self._root.to_python()
        for path, (_, value) in self._edits.items():
            node: JsonValue = data
            for key in path[:-1]:
                assert isinstance(node, dict)
                node = node[key]
            assert isinstance(node, dict)
            node[path[-1]] = value
        return data

    def tables(self) -> list[TablePath]:
        found: list[TablePath] = []
        for pattern in self.location.client.tables:
            found += self._match(self._root, pattern, ())
        return found

    def _match(self, node: jsonc.Node, pattern: TablePath, prefix: TablePath) -> list[TablePath]:
        if not isinstance(node, jsonc.ObjectNode):
            return []
        where = ".".join(prefix) or "the top level"
        head, rest = pattern[0], pattern[1:]
        keys = [m.key for m in node.members] if head == "*" else [head]
        repeated = set(node.duplicates) & set(keys)
        if repeated:
            raise ClientConfigError(
                f"{self.location.path}: {where} has the key {sorted(repeated)[0]!r} more than once; the client "
                "reads only the last, so the file was not changed. Remove the duplicate and run again"
            )
        found: list[TablePath] = []
        for key in dict.fromkeys(keys):
            child = node.get(key)
            if child is None:
                continue
            if rest:
                found += self._match(child, rest, (*prefix, key))
            elif isinstance(child, jsonc.ObjectNode):
                self._check_table(child, (*prefix, key))
                found.append((*prefix, key))
            elif head != "*":
                raise ClientConfigError(
                    f"{self.location.path}: {'.'.join((*prefix, key))} is not an object of servers; "
                    "the file was not changed. Fix it and run again"
                )
        return found

    def _check_table(self, table: jsonc.ObjectNode, path: TablePath) -> None:
        if table.duplicates:
            raise ClientConfigError(
                f"{self.location.path}: the server {table.duplicates[0]!r} appears twice in {'.'.join(path)}; "
                "the client uses only the last one, so the file was not changed. Remove one and run again"
            )
        for member in table.members:
            if isinstance(member.value, jsonc.ObjectNode) and member.value.duplicates:
                raise ClientConfigError(
                    f"{self.location.path}: server {member.key!r} in {'.'.join(path)} has the key "
                    f"{member.value.duplicates[0]!r} twice; the file was not changed. Remove one and run again"
                )

    def entries(self, table: TablePath) -> dict[str, JsonValue]:
        node = self._node(table)
        assert isinstance(node, jsonc.ObjectNode)
        found = node.to_python()
        found.update({path[-1]: value for path, (_, value) in self._edits.items() if path[:-1] == table})
        return found

    def source(self, table: TablePath, name: str) -> EntrySource:
        node = self._node((*table, name))
        if not isinstance(node, jsonc.ObjectNode):
            return EntrySource(entry_text=self._slice(node))
        return EntrySource(
            entry_text=self._slice(node),
            key_texts={member.key: self._slice(member.value) for member in node.members},
        )

    def render(self) -> str:
        text = self._text
        # entries never overlap, so their spans in the parsed text stay valid from the end backwards
        for start, end, replacement in sorted(
            ((self._node(path).start, self._node(path).end, new) for path, (new, _) in self._edits.items()),
            reverse=True,
        ):
            text = text[:start] + replacement + text[end:]
        return (_BOM if self._bom else "") + text

    def _node(self, path: TablePath) -> jsonc.Node:
        node: jsonc.Node | None = self._root
        for key in path:
            assert isinstance(node, jsonc.ObjectNode), path
            node = node.get(key)
        assert node is not None, path
        return node

    def _slice(self, node: jsonc.Node) -> str:
        return self._text[node.start : node.end]

    def _line_indent(self, pos: int) -> str:
        start = self._text.rfind("\n", 0, pos) + 1
        match = re.match(r"[ \t]*", self._text[start:pos])
        return match.group() if match else ""

    def _indent_unit(self) -> str:
        """The file's unit of indentation, as the top-level keys show it (two spaces if they do not)."""
        assert isinstance(self._root, jsonc.ObjectNode)
        for member in self._root.members:
            line_start = self._text.rfind("\n", 0, member.key_start) + 1
            indent = self._line_indent(member.key_start)
            if indent and line_start + len(indent) == member.key_start:
                return indent
        return "  "

    # -- editing ---------------------------------------------------------------------------------

    def set_entry(self, table: TablePath, name: str, value: EntryValue, source: EntrySource | None = None) -> None:
        path = (*table, name)
        node = self._node(path)
        current = self._edits[path][0] if path in self._edits else self._slice(node)
        if source is not None and source.entry_text is not None and _parses_to(source.entry_text, value):
            self._edits[path] = (source.entry_text, value)
            return
        # the entry is edited with the indentation of its first line, so its layout matches the file's
        indent = self._line_indent(node.start)
        editor = _ObjectEditor(indent + current, self._newline, self._indent_unit())
        editor.set(value, source.key_texts if source is not None else {})
        self._edits[path] = (editor.text[len(indent) :], value)


class _ObjectEditor:
    """Key-level edits of one JSON object, given as its own text (after its line's indentation)."""

    def __init__(self, text: str, newline: str, indent_unit: str) -> None:
        self.text = text
        self._newline = newline
        self._unit = indent_unit
        self._root = jsonc.parse(text)

    def set(self, value: EntryValue, key_texts: Mapping[str, str]) -> None:
        """Make the object parse to `value`: change, insert and delete only the keys that differ."""
        node = self._root
        if not isinstance(node, jsonc.ObjectNode):
            start = node.start
            self._replace(start, node.end, self._render(value, self.text[:start], multiline=True))
            return
        path: TablePath = ()  # the object itself
        old = node.to_python()
        for key, new in value.items():
            if key in old and not same_json(old[key], new):
                member_node = self._node((*path, key))
                self._splice(member_node, self._text_for(key, new, key_texts, member_node))
        # insert before deleting, so that the new keys take the layout of the keys they replace
        previous: str | None = None
        for key, new in value.items():
            if key not in old:
                self._insert_member(path, previous, key, self._text_for(key, new, key_texts, None, path))
            previous = key
        for key in [k for k in old if k not in value]:
            self._delete_member(path, key)

    def _text_for(
        self,
        key: str,
        value: JsonValue,
        key_texts: Mapping[str, str],
        old: jsonc.Node | None,
        parent: TablePath | None = None,
    ) -> str:
        text = key_texts.get(key)
        if text is not None and _parses_to(text, value):
            return text
        if old is not None:
            return self._render(value, self._line_indent(old.start), multiline="\n" in self._slice(old))
        assert parent is not None
        parent_multiline = "\n" in self._slice(self._node(parent))
        return self._render(value, self._member_indent(parent), multiline=parent_multiline and isinstance(value, dict))

    def _render(self, value: JsonValue, base_indent: str, *, multiline: bool) -> str:
        if not multiline or not isinstance(value, dict | list) or not value:
            return json.dumps(value, ensure_ascii=False)
        rendered = json.dumps(value, ensure_ascii=False, indent=self._unit)
        return rendered.replace("\n", self._newline + base_indent)

    def _splice(self, node: jsonc.Node, replacement: str) -> None:
        self._replace(node.start, node.end, replacement)

    def _replace(self, start: int, end: int, replacement: str) -> None:
        self.text = self.text[:start] + replacement + self.text[end:]
        self._root = jsonc.parse(self.text)

    def _node(self, path: TablePath) -> jsonc.Node:
        node: jsonc.Node | None = self._root
        for key in path:
            assert isinstance(node, jsonc.ObjectNode), path
            node = node.get(key)
        assert node is not None, path
        return node

    def _slice(self, node: jsonc.Node) -> str:
        return self.text[node.start : node.end]

    def _line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def _line_indent(self, pos: int) -> str:
        start = self._line_start(pos)
        match = re.match(r"[ \t]*", self.text[start:pos])
        return match.group() if match else ""

    def _alone_before(self, pos: int) -> bool:
        return not self.text[self._line_start(pos) : pos].strip()

    def _rest_of_line(self, pos: int) -> tuple[str, int]:
        newline = self.text.find("\n", pos)
        end = len(self.text) if newline < 0 else newline
        return self.text[pos:end], end

    def _comma_after(self, pos: int) -> int | None:
        """Position of the comma that follows a value ending at `pos`, skipping comments."""
        pos = jsonc.skip_trivia(self.text, pos)
        return pos if pos < len(self.text) and self.text[pos] == "," else None

    def _member_indent(self, obj_path: TablePath) -> str:
        obj = self._node(obj_path)
        assert isinstance(obj, jsonc.ObjectNode)
        if obj.members:
            return self._line_indent(obj.members[0].key_start)
        return self._line_indent(obj.start) + self._unit

    def _delete_member(self, obj_path: TablePath, key: str) -> None:
        obj = self._node(obj_path)
        assert isinstance(obj, jsonc.ObjectNode)
        index = next(i for i, m in enumerate(obj.members) if m.key == key)
        member = obj.members[index]
        start, end = member.key_start, member.value.end
        comma = self._comma_after(end)
        if comma is not None:
            end = comma + 1
        rest, line_end = self._rest_of_line(end)
        if self._alone_before(start) and not rest.strip() and line_end < len(self.text):
            start, end = self._line_start(start), line_end + 1  # the member had its own line(s)
        if comma is None and index > 0:
            # the last member goes: the comma after the one before it must go too
            prev_comma = self._comma_after(obj.members[index - 1].value.end)
            if prev_comma is not None:
                self._replace(start, end, "")
                self._replace(prev_comma, prev_comma + 1, "")
                return
        self._replace(start, end, "")

    def _insert_member(self, obj_path: TablePath, after: str | None, key: str, value_text: str) -> None:
        obj = self._node(obj_path)
        assert isinstance(obj, jsonc.ObjectNode)
        multiline = "\n" in self._slice(obj)
        member_text = f"{json.dumps(key, ensure_ascii=False)}: {value_text}"
        indent = self._member_indent(obj_path)
        anchor = next((m for m in obj.members if m.key == after), None) if after is not None else None
        if anchor is None:
            if not obj.members:
                self._replace(obj.start + 1, obj.start + 1, member_text)
            elif multiline:
                self._replace(obj.start + 1, obj.start + 1, f"{self._newline}{indent}{member_text},")
            else:
                self._replace(obj.start + 1, obj.start + 1, f"{member_text}, ")
            return
        comma = self._comma_after(anchor.value.end)
        if comma is None:
            sep = f",{self._newline}{indent}" if multiline else ", "
            self._replace(anchor.value.end, anchor.value.end, f"{sep}{member_text}")
            return
        rest, line_end = self._rest_of_line(comma + 1)
        if multiline and (not rest.strip() or rest.strip().startswith("//")):
            line_end -= 1 if self.text[line_end - 1 : line_end] == "\r" else 0
            self._replace(line_end, line_end, f"{self._newline}{indent}{member_text},")
        else:
            self._replace(comma + 1, comma + 1, f" {member_text},")


def _parses_to(text: str, value: JsonValue) -> bool:
    try:
        return same_json(jsonc.parse(text).to_python(), value)
    except jsonc.JsoncError:
        return False
