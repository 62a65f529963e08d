"""Test doubles shipped with the engine, so that tests of code built on it need no network or model.

* `FakeLLM`: a keyed, scripted `StructuredLLM`. An unscripted call fails loudly.
* `HashEmbedder`: a deterministic bag-of-words embedder (feature hashing): texts sharing words
  are near, texts sharing none are orthogonal.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from .errors import LLMOutputError, LLMUnavailableError
from .llm import LLMResult

__all__ = ["FakeLLM", "HashEmbedder", "Script", "UnscriptedCallError"]

T = TypeVar("T", bound=BaseModel)
Reply = BaseModel | dict[str, Any] | Exception | Callable[[list[dict[str, str]]], Any]


class UnscriptedCallError(AssertionError):
    """The code under test asked the fake LLM something no test scripted."""


@dataclass
class Script:
    """One scripted answer: used when the response type matches and `contains` is in the prompt."""

    response_model: str
    contains: str
    reply: Reply
    times: int | None = None  # None: any number of times
    used: int = 0


@dataclass
class FakeLLM:
    scripts: list[Script] = field(default_factory=list)
    model: str = "fake/scripted"
    calls: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(
        self, response_model: type[BaseModel] | str, contains: str, reply: Reply, times: int | None = None
    ) -> FakeLLM:
        name = response_model if isinstance(response_model, str) else response_model.__name__
        self.scripts.append(Script(name, contains, reply, times))
        return self

    def complete(
        self,
        messages: list[dict[str, str]],
        response_model: type[T],
        *,
        timeout: float,
        max_retries: int = 2,
        max_tokens: int | None = None,
    ) -> LLMResult[T]:
        prompt = "\n".join(message["content"] for message in messages)
        with self._lock:
            self.calls.append((response_model.__name__, messages))
            script = next(
                (
                    s
                    for s in self.scripts
                    if s.response_model == response_model.__name__
                    and s.contains in prompt
                    and (s.times is None or s.used < s.times)
                ),
                None,
            )
            if script is None:
                raise UnscriptedCallError(
                    f"FakeLLM has no script for a {response_model.__name__} request; the prompt began: {prompt[:300]!r}"
                )
            script.used += 1
        reply = (
            script.reply(messages)
            if callable(script.reply) and not isinstance(script.reply, BaseModel)
            else script.reply
        )
        if isinstance(reply, LLMUnavailableError | LLMOutputError):
            raise reply
        if isinstance(reply, Exception):
            raise reply
        value = (
            reply
            if isinstance(reply, response_model)
            else response_model.model_validate(reply.model_dump() if isinstance(reply, BaseModel) else reply)
        )
        return LLMResult(value=value, model=self.model, latency_ms=0.0, cost_usd=0.0)


class HashEmbedder:
    """Deterministic embeddings from hashed word unigrams and bigrams."""

    def __init__(self, dim: int = 256, name: str = "hash") -> None:
        self.dim = dim
        self.name = name

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())
            for token in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, index] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        normalised: np.ndarray = out / norms
        return normalised
