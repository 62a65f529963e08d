"""Checks that must not wait: a caller that decides a message where waiting would hold up other work
(the gateway's event loop) asks for a quick check, and a step that would take long instead raises
`WouldBlock`, before it starts; the caller then runs the whole check again where it may wait.

The steps that take long are a transformer pass over a text not met before (milliseconds on a CPU)
and a call to the LLM judge (seconds). Everything else (detectors and rules on a short text, the
static screen, remembered vectors and scores, the judge's cache) is quick.
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
