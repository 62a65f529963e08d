"""A value worked out once per object, such as a compiled policy's rule plan or digest.

Objects are told apart by identity, not equality, and each is kept beside its value: a new object
that Python placed at an address an old one had is not taken for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerObject"]

K = TypeVar("K")
V = TypeVar("V")


class PerObject(Generic[K, V]):
    """`get(obj, work)`: `work(obj)` the first time `obj` is asked for, its value after that. Safe to share
    between threads (two that ask at once may both work it out; either value is kept)."""

    def __init__(self) -> None:
        self._values: dict[int, tuple[K, V]] = {}

    def get(self, key: K, work: Callable[[K], V]) -> V:
        known = self._values.get(id(key))
        if known is None or known[0] is not key:
            known = (key, work(key))
            self._values[id(key)] = known
        return known[1]

    def has(self, key: K) -> bool:
        known = self._values.get(id(key))
        return known is not None and known[0] is key

    def clear(self) -> None:
        self._values.clear()
