"""Cut texts into sentence-sized units, so that one sentence of injection buried in a 60 KB page
dominates the unit it sits in instead of being averaged away with the page around it."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Chunk", "context", "segment"]

# A sentence ends at . ! ? or a line break; a blank line always ends a unit.
_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n")


@dataclass(frozen=True, slots=True)
class Chunk:
    start: int
    end: int
    text: str


def segment(text: str, min_chars: int = 60, max_chars: int = 400, limit: int = 8192) -> list[Chunk]:
    """Sentence units of `min_chars`..`max_chars` characters covering `text` (at most `limit` units).

    Short sentences are merged with their neighbours; a sentence longer than `max_chars` is cut
    into overlapping windows at whitespace, so nothing is cut mid-word and nothing is skipped.
    """
    if len(text) <= max_chars:
        return [Chunk(0, len(text), text)] if text.strip() else []
    pieces: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.start() > start:
            pieces.append((start, match.start()))
        start = match.end()
    if start < len(text):
        pieces.append((start, len(text)))
    units: list[Chunk] = []
    pending: tuple[int, int] | None = None
    for begin, end in pieces:
        if pending is not None and end - pending[0] <= max_chars:
            pending = (pending[0], end)
        else:
            if pending is not None:
                units.extend(_windows(text, *pending, max_chars))
            pending = (begin, end)
        if pending[1] - pending[0] >= min_chars:
            units.extend(_windows(text, *pending, max_chars))
            pending = None
        if len(units) >= limit:
            return units[:limit]
    if pending is not None:
        if units and pending[1] - pending[0] < min_chars and pending[1] - units[-1].start <= max_chars:
            last = units.pop()
            units.append(Chunk(last.start, pending[1], text[last.start : pending[1]]))
        else:
            units.extend(_windows(text, *pending, max_chars))
    return [unit for unit in units[:limit] if unit.text.strip()]


def _windows(text: str, start: int, end: int, max_chars: int) -> list[Chunk]:
    if end - start <= max_chars:
        return [Chunk(start, end, text[start:end])]
    overlap = max_chars // 4
    out: list[Chunk] = []
    cursor = start
    while cursor < end:
        stop = min(cursor + max_chars, end)
        if stop < end:
            space = text.rfind(" ", cursor + max_chars // 2, stop)
            stop = space if space != -1 else stop
        out.append(Chunk(cursor, stop, text[cursor:stop]))
        if stop >= end:
            break
        nxt = max(stop - overlap, cursor + 1)
        space = text.find(" ", nxt, stop)
        cursor = space + 1 if space != -1 else nxt
    return out


def context(text: str, chunk: Chunk, margin: int = 300) -> str:
    """The chunk with up to `margin` characters of its surroundings, for a judge to read."""
    start = max(0, chunk.start - margin)
    end = min(len(text), chunk.end + margin)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
