"""The values shared by the config-file modules: a server entry, its source text, and the document protocol."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import JsonValue

from .clients import ConfigLocation

__all__ = ["ConfigDocument", "EntrySource", "EntryValue", "ServerEntry", "TablePath", "same_json"]

TablePath = tuple[str, ...]
EntryValue = dict[str, JsonValue]


@dataclass(frozen=True)
class ServerEntry:
    """One server in one table of one config file, as parsed (unknown keys included)."""

    table: TablePath
    name: str
    value: JsonValue
    """Usually an object; anything else is reported as a server we do not understand."""

    @property
    def where(self) -> str:
        return ".".join((*self.table, self.name))


@dataclass(frozen=True)
class EntrySource:
    """The source text of an entry, kept so that a restore gives back the user's own formatting."""

    entry_text: str | None = None
    """The whole entry as it was written (JSON only)."""
    key_texts: Mapping[str, str] = field(default_factory=dict)
    """The text of each top-level value of the entry, by key."""


class ConfigDocument(Protocol):
    """A parsed config file that can be edited entry by entry and rendered back to text."""

    location: ConfigLocation

    def tables(self) -> list[TablePath]: ...

    def entries(self, table: TablePath) -> dict[str, JsonValue]: ...

    def source(self, table: TablePath, name: str) -> EntrySource: ...

    def set_entry(self, table: TablePath, name: str, value: EntryValue, source: EntrySource | None = None) -> None:
        """Make entry `name` parse to `value`, touching only the keys that change.

        Where `source` holds text that parses to the wanted value, that text is used verbatim.
        """

    def data(self) -> dict[str, JsonValue]:
        """The whole document as plain values, with the edits made so far."""

    def render(self) -> str: ...


def same_json(a: JsonValue, b: JsonValue) -> bool:
    """Parsed equality without Python's ``True == 1 == 1.0``: key order is ignored, types are not."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
