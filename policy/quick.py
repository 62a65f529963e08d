"""Checks that must not wait: a caller that decides a message where waiting would hold up other work
(the gateway's event loop) asks for a quick check, and a step that would take long instead raises
`WouldBlock`, before it starts; the caller then decides that policy (and the ones after it) again
where it may wait.

The steps that take long are a call to the LLM judge (seconds), loading MiniLM or the static table,
embedding a policy's exemplars and decoding a fine-tuned head's layers (the last three done by warm-up
before the first message). Everything else
on a short text is quick enough: detectors and rules, the static screen, remembered vectors and
scores, the judge's cache, and even a MiniLM pass over a new short text (7-17 ms here; decided on a
worker thread instead, a new short text cost about 0.8 ms more in all, measured).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["WouldBlock", "quick_only", "slow_step"]

_QUICK: ContextVar[bool] = ContextVar("mcp_gateway_quick_only", default=False)


class WouldBlock(Exception):
    """A quick check met a step that takes long; nothing of that step has run."""


@contextmanager
def quick_only() -> Iterator[None]:
    """Within this block (and this context), a step that takes long raises `WouldBlock` instead of running."""
    token = _QUICK.set(True)
    try:
        yield
    finally:
        _QUICK.reset(token)


def slow_step(what: str) -> None:
    """Called by a step that takes long, before it starts: raises `WouldBlock` inside `quick_only`."""
    if _QUICK.get():
        raise WouldBlock(what)
