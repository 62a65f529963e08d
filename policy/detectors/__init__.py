"""Deterministic detectors: small registered objects that find spans in strings.

A compiled policy names detectors by string (``detectors: [secrets]``); the engine looks them up
here. Built-ins register through the same hook a plugin uses: an entry point in the
``mcp_gateway.detectors`` group naming a zero-argument factory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol

from ..errors import PolicyError

if TYPE_CHECKING:
    from ..verdict import Span

__all__ = ["Detector", "DetectorRegistry"]

logger = logging.getLogger(__name__)


class Detector(Protocol):
    """Finds sensitive or suspicious spans in one string.

    `scan` returns spans whose `field` is the given field path and whose offsets index `text`.
    It must be safe to call from several threads, and fast: it runs on every message.

    A detector may also define ``field_context(field) -> str``: the part of a field path its findings
    depend on ("" for none). The engine then scans a string met again under a path of the same
    context once. Without it, findings are taken to depend on the whole path.

    Findings must depend on `field` and `text` alone: a running gateway hands a short message it meets
    again the verdicts that message got before. A detector that reads anything else (a feed, a counter,
    the clock) sets ``reuses_verdicts = False``; the policies that use it then decide every message.
    """

    name: str

    def scan(self, field: str, text: str) -> list[Span]: ...


DetectorFactory = Callable[[], Detector]


def _secrets() -> Detector:
    from .secrets import SecretsDetector

    return SecretsDetector()


def _pii() -> Detector:
    from .pii import PiiDetector

    return PiiDetector()


def _hidden() -> Detector:
    from .hidden import HiddenContentDetector

    return HiddenContentDetector()


_BUILTINS: dict[str, DetectorFactory] = {"secrets": _secrets, "pii": _pii, "hidden-content": _hidden}


class DetectorRegistry:
    """Detector factories by name; each detector is built once, on first use."""

    def __init__(self, factories: dict[str, DetectorFactory] | None = None, *, plugins: bool = True) -> None:
        self._factories: dict[str, DetectorFactory] = dict(_BUILTINS if factories is None else factories)
        if plugins:
            for entry in entry_points(group="mcp_gateway.detectors"):
                if entry.name not in self._factories:
                    self._factories[entry.name] = entry.load()
        self._built: dict[str, Detector] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: DetectorFactory) -> None:
        with self._lock:
            self._factories[name] = factory
            self._built.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Detector:
        with self._lock:
            detector = self._built.get(name)
            if detector is not None:
                return detector
            factory = self._factories.get(name)
            if factory is None:
                raise PolicyError(
                    f"unknown detector {name!r}; known detectors: {', '.join(self.names())}. "
                    "Fix the policy's 'detectors:' list or install the plugin that provides it."
                )
            detector = factory()
            self._built[name] = detector
            return detector
