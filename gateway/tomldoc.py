"""Minimal edits to TOML config files (Codex's ``config.toml``). The one module that uses tomlkit.

tomlkit keeps comments, key order and layout; values that change are replaced item by item, keeping
the replaced item's trailing comment. The standard library's ``tomllib`` checks the input first, so a
file that Codex itself would reject is never rewritten.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping, MutableMapping
from typing import Any, cast

import tomlkit
import tomlkit.exceptions
import tomlkit.items
from pydantic import JsonValue

from .clients import ConfigLocation
from .configdoc import EntrySource, EntryValue, TablePath, same_json
from .errors import ClientConfigError

__all__ = ["TomlDocument"]


class TomlDocument:
    """A TOML config file open for editing."""

    def __init__(self, location: ConfigLocation, text: str) -> None:
        self.location = location
        try:
            tomllib.loads(text)
            self._doc = tomlkit.parse(text)
        except (tomllib.TOMLDecodeError, tomlkit.exceptions.ParseError) as exc:
            raise ClientConfigError(
                f"{location.path}: not valid TOML: {exc}; the file was not changed. Fix the file and run again"
            ) from exc

    def data(self) -> dict[str, JsonValue]:
        plain = _plain(self._doc.unwrap())
        assert isinstance(plain, dict)
        return plain

    def tables(self) -> list[TablePath]:
        found: list[TablePath] = []
        for pattern in self.location.client.tables:
            found += self._match(self._doc, pattern, ())
        return found

    def _match(self, node: object, pattern: TablePath, prefix: TablePath) -> list[TablePath]:
        if not isinstance(node, Mapping):
            return []
        head, rest = pattern[0], pattern[1:]
        found: list[TablePath] = []
        for key in list(node) if head == "*" else [head]:
            if key not in node:
                continue
            child = node[key]
            if rest:
                found += self._match(child, rest, (*prefix, key))
            elif isinstance(child, Mapping):
                found.append((*prefix, key))
            elif head != "*":
                raise ClientConfigError(
                    f"{self.location.path}: {'.'.join((*prefix, key))} is not a table of servers; "
                    "the file was not changed. Fix it and run again"
                )
        return found

    def entries(self, table: TablePath) -> dict[str, JsonValue]:
        plain = _plain(_unwrap(self._container(table)))
        assert isinstance(plain, dict)
        return plain

    def source(self, table: TablePath, name: str) -> EntrySource:
        entry = self._container(table).get(name)
        if not isinstance(entry, Mapping):
            return EntrySource()
        texts: dict[str, str] = {}
        for key in entry:
            item = _item(entry, key)
            # only values can be re-read from their text; a [table] section's text is not a value
            if item is not None and not isinstance(item, tomlkit.items.Table | tomlkit.items.AoT):
                texts[key] = item.as_string().strip()
        return EntrySource(key_texts=texts)

    def set_entry(self, table: TablePath, name: str, value: EntryValue, source: EntrySource | None = None) -> None:
        container = self._container(table)
        entry = container.get(name)
        if not isinstance(entry, MutableMapping):
            container[name] = value
            return
        texts = source.key_texts if source is not None else {}
        old = _plain(_unwrap(entry))
        assert isinstance(old, dict)
        for key in [k for k in old if k not in value]:
            del entry[key]
        for key, new in value.items():
            if key in old and same_json(old[key], new):
                continue
            item = _item_from_text(texts.get(key), new) or tomlkit.item(new)
            previous = _item(entry, key) if key in old else None
            if previous is not None and not isinstance(previous, tomlkit.items.Table | tomlkit.items.AoT):
                # keep the line's indentation and trailing comment: only the value is the user's edit to undo
                item.trivia.indent = previous.trivia.indent
                item.trivia.comment_ws = previous.trivia.comment_ws
                item.trivia.comment = previous.trivia.comment
                item.trivia.trail = previous.trivia.trail
            entry[key] = item
        _reorder(entry, list(value))

    def render(self) -> str:
        return tomlkit.dumps(self._doc)

    def _container(self, table: TablePath) -> MutableMapping[str, Any]:
        node: Any = self._doc
        for key in table:
            node = node[key]
        return cast(MutableMapping[str, Any], node)


def _item(container: Mapping[str, Any], key: str) -> tomlkit.items.Item | None:
    getter = getattr(container, "item", None)
    if getter is None:
        return None
    try:
        found = getter(key)
    except (KeyError, tomlkit.exceptions.NonExistentKey):
        return None
    return found if isinstance(found, tomlkit.items.Item) else None


def _reorder(entry: MutableMapping[str, Any], order: list[str]) -> None:
    """Put the entry's values back in `order` (new keys land at the end): a restore gives back the same text."""
    values = [key for key in entry if not isinstance(_item(entry, key), tomlkit.items.Table | tomlkit.items.AoT)]
    wanted = [key for key in order if key in values]
    if values == wanted:
        return
    first = next(i for i, (have, want) in enumerate(zip(values, wanted, strict=True)) if have != want)
    for key in wanted[first:]:
        item = _item(entry, key)
        del entry[key]
        entry[key] = item


def _item_from_text(text: str | None, value: JsonValue) -> tomlkit.items.Item | None:
    if text is None:
        return None
    try:
        item = tomlkit.parse(f"v = {text}\n").item("v")
    except tomlkit.exceptions.TOMLKitError:
        return None
    if not isinstance(item, tomlkit.items.Item):
        return None
    return item if same_json(_plain(item.unwrap()), value) else None


def _unwrap(node: object) -> object:
    unwrap = getattr(node, "unwrap", None)
    return unwrap() if callable(unwrap) else node


def _plain(value: object) -> JsonValue:
    """TOML values as JSON values; dates and times become their ISO text (they are never edited)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
