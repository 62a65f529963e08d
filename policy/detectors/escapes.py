"""Text written with escapes, read as it reads: URL percent escapes (``%3D``), JSON and C escapes
(``\\u0067``, ``\\x41``). A detector scans the unescaped view too and masks what it finds over the escaped
characters it came from: a token in a logged query string (``token%3Dghp_...``) has no word boundary before
it until the ``%3D`` is read, and ``ann%40example.com`` is no address until the ``%40`` is."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..verdict import Span

__all__ = ["ESCAPE", "unescape", "unescaped_spans"]

# one escape of any kind: whether a text needs reading unescaped at all
ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}")
# a run of escapes of one kind, read together (a UTF-8 character spans several percent escapes)
_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+|(?:\\u[0-9A-Fa-f]{4})+|(?:\\x[0-9A-Fa-f]{2})+")


def unescaped_spans(scan: Callable[[str], list[Span]], text: str) -> list[Span]:
    """What `scan` finds in `text` read unescaped, with each span over the escaped text it came from."""
    view, origin = unescape(text)
    return [span.model_copy(update={"start": origin[span.start], "end": origin[span.end]}) for span in scan(view)]


def unescape(text: str) -> tuple[str, list[int]]:
    """`text` with its `%XX`, `\\uXXXX` and `\\xXX` escapes read, and where in `text` each character of
    the result begins (one more entry: the end). Percent escapes are read as UTF-8; a byte that begins no
    character reads as U+FFFD."""
    out: list[str] = []
    origin: list[int] = []
    cursor = 0
    for match in _RUN.finditer(text):
        start, end = match.span()
        out.append(text[cursor:start])
        origin.extend(range(cursor, start))
        run = match.group()
        if run[0] == "%":
            chars = _percent_decoded(run, start, origin)
        else:
            width = 6 if run[1] == "u" else 4
            chars = "".join(chr(int(run[i + 2 : i + width], 16)) for i in range(0, len(run), width))
            origin.extend(range(start, end, width))
        out.append(chars)
        cursor = end
    out.append(text[cursor:])
    origin.extend(range(cursor, len(text) + 1))
    return "".join(out), origin


def _percent_decoded(run: str, start: int, origin: list[int]) -> str:
    """A run of `%XX` escapes read as UTF-8, character by character (each maps to its first byte's escape);
    a byte that begins no valid character reads as U+FFFD, and the rest of the run is still read."""
    raw = bytes.fromhex(run.replace("%", ""))
    out: list[str] = []
    index = 0
    while index < len(raw):
        lead = raw[index]
        width = 1 if lead < 0x80 else 2 if 0xC2 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 0
        width = 4 if 0xF0 <= lead < 0xF5 else width
        try:
            char = raw[index : index + width].decode("utf-8") if width else ""
        except UnicodeDecodeError:
            char = ""
        if char:
            out.append(char)
            origin.append(start + 3 * index)
            index += width
        else:  # read as U+FFFD, which ends a token as the byte would
            out.append("\ufffd")
            origin.append(start + 3 * index)
            index += 1
    return "".join(out)
