"""Content a human reviewer cannot see but a model reads.

Tool descriptions and results can smuggle instructions past a person who approves them:
Unicode tag characters (an invisible copy of ASCII), zero-width characters, bidirectional
overrides that reorder what is displayed, and terminal escape sequences that hide or rewrite
lines in a console. Each finding is a span over the hidden run.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..verdict import Span

__all__ = ["HiddenContentDetector", "find_hidden", "reveal_tags"]

# U+E0000..U+E007F mirror ASCII invisibly; decoding them shows what was smuggled.
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
# Zero-width and invisible formatting characters, in runs of two or more (a lone ZWJ joins emoji).
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad]{2,}")
# Bidirectional embedding, override and isolate controls reorder what a reviewer sees.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# CSI/OSC escape sequences: cursor movement, colours that hide text, terminal titles, hyperlinks.
_ANSI = re.compile(r"\x1b(?:\[[0-?]{0,32}[ -/]{0,8}[@-~]|\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)|[@-Z\\-_])")


def find_hidden(text: str) -> list[tuple[int, int, str]]:
    """(start, end, label) of every hidden run; no dependencies, so the start-up path can use it."""
    if text.isascii() and "\x1b" not in text:
        return []
    found: list[tuple[int, int, str]] = []
    for pattern, label in (
        (_TAGS, "unicode-tag-characters"),
        (_INVISIBLE, "zero-width-characters"),
        (_BIDI, "bidi-control"),
        (_ANSI, "ansi-escape"),
    ):
        found.extend((m.start(), m.end(), label) for m in pattern.finditer(text))
    return sorted(found)


class HiddenContentDetector:
    name = "hidden-content"

    @staticmethod
    def field_context(field: str) -> str:
        return ""  # the text alone decides

    def scan(self, field: str, text: str) -> list[Span]:
        from ..verdict import Span

        return [Span(field=field, start=start, end=end, label=label) for start, end, label in find_hidden(text)]


def reveal_tags(text: str) -> str:
    """The ASCII hidden in Unicode tag characters, for evidence a human can read."""
    return "".join(chr(ord(ch) - 0xE0000) if 0xE0000 <= ord(ch) <= 0xE007F else ch for ch in text)
