"""The compiled policy: a typed, versioned, reviewable value written to a lock file.

Everything the runtime needs is here; the runtime never reads the English source again.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from .conditions import Rule
from .source import OnError, Quality, Thresholds
from .subject import Subject, SubjectKind, canonical_json
from .verdict import Action

__all__ = [
    "SCHEMA_VERSION",
    "ClassifierSpec",
    "CompiledPolicy",
    "EncoderLayer",
    "Exemplar",
    "Head",
    "JudgeSpec",
    "Layer",
    "LinearHead",
    "MLPHead",
    "MeanHead",
    "Mismatch",
    "Provenance",
    "Scope",
    "TunedHead",
    "Verification",
    "sigmoid",
    "untuned_screen",
]

SCHEMA_VERSION = 1


class _Derived:
    """A value computed once from a model's field and kept beside it; never part of the model's identity
    (two models with equal fields are equal whether or not either has computed it yet)."""

    __slots__ = ("_source", "_value")

    def __init__(self) -> None:
        self._source: object = None
        self._value: Any = None

    def get(self, source: object, build: Callable[[], Any]) -> Any:
        if self._source is not source:  # recomputed if the field was replaced (a model_copy with an update)
            self._value = build()
            self._source = source
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Derived)

    __hash__ = object.__hash__


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Scope(_Frozen):
    """Which subjects a policy applies to."""

    kinds: list[SubjectKind]
    servers: list[str] = Field(default_factory=lambda: ["*"])
    tools: list[str] = Field(default_factory=lambda: ["*"])

    def matches(self, subject: Subject) -> bool:
        if subject.kind not in self.kinds:
            return False
        if not _glob_any(subject.server, self.servers):
            return False
        # A subject without a tool (a prompt, a resource) is in scope unless tools are named.
        if subject.tool or self.names_tools:
            return _glob_any(subject.tool, self.tools)
        return True

    @property
    def names_tools(self) -> bool:
        """Whether the policy is for some tools only (not every tool, nor what comes from no tool)."""
        return self.tools != ["*"]


def _glob_any(value: str, patterns: list[str]) -> bool:
    if "*" in patterns:
        return True
    return any(fnmatch.fnmatchcase(value.casefold(), pattern.casefold()) for pattern in patterns)


class Exemplar(_Frozen):
    text: str
    violation: bool
    origin: Literal["source", "generated", "hard_negative"] = "source"


class LinearHead(_Frozen):
    """A logistic-regression head on sentence embeddings, trained offline; weights only, no pickles."""

    kind: Literal["linear"] = "linear"
    embedding: Literal["static-minilm", "minilm"]
    weights: list[float]
    bias: float
    trained_on: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    _vector: _Derived = PrivateAttr(default_factory=_Derived)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        # Converted once: a list of floats to an array costs more than the product, on every message.
        weights = self._vector.get(self.weights, lambda: np.asarray(self.weights, dtype=np.float32))
        result: np.ndarray = vectors @ weights + self.bias
        return result


class Layer(_Frozen):
    """A dense layer: weights as base64 of little-endian float16 (rows = inputs), biases as floats."""

    shape: tuple[int, int]
    weights: str
    bias: list[float]

    def matrix(self) -> np.ndarray:
        return np.frombuffer(base64.b64decode(self.weights), dtype="<f2").astype(np.float32).reshape(self.shape)

    @classmethod
    def of(cls, matrix: np.ndarray, bias: np.ndarray) -> Layer:
        data = base64.b64encode(np.asarray(matrix, dtype="<f2").tobytes()).decode()
        return cls(
            shape=(int(matrix.shape[0]), int(matrix.shape[1])), weights=data, bias=[round(float(b), 6) for b in bias]
        )


class MLPHead(_Frozen):
    """A small multilayer perceptron (ReLU, sigmoid output) on sentence embeddings; weights only."""

    kind: Literal["mlp"] = "mlp"
    embedding: Literal["static-minilm", "minilm"]
    layers: list[Layer] = Field(min_length=1)
    trained_on: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    _decoded: _Derived = PrivateAttr(default_factory=_Derived)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        # Decoded once: base64 → float32 costs milliseconds, and this runs on every message.
        decoded: list[tuple[np.ndarray, np.ndarray]] = self._decoded.get(
            self.layers, lambda: [(layer.matrix(), np.asarray(layer.bias, dtype=np.float32)) for layer in self.layers]
        )
        last = len(decoded) - 1
        hidden = vectors
        for index, (matrix, bias) in enumerate(decoded):
            hidden = hidden @ matrix  # a new array: the in-place steps below never touch the input
            hidden += bias
            if index < last:
                np.maximum(hidden, 0.0, out=hidden)
        result: np.ndarray = hidden[:, 0]
        return result


class MeanHead(_Frozen):
    """The mean probability of several heads: a linear and an MLP head together are steadier on text unlike
    their training data than either alone."""

    kind: Literal["mean"] = "mean"
    embedding: Literal["static-minilm", "minilm"]
    members: list[Annotated[LinearHead | MLPHead, Field(discriminator="kind")]] = Field(min_length=2)
    trained_on: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)

    _fused: _Derived = PrivateAttr(default_factory=_Derived)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        fused: list[tuple[np.ndarray, np.ndarray]] | None = self._fused.get(self.members, self._fuse)
        if fused is None:
            member_logits = np.stack([member.logits(vectors) for member in self.members], axis=1)
        else:
            # every member an MLP of the same depth: one matrix product per layer for all of them
            last = len(fused) - 1
            hidden = vectors
            for index, (matrix, bias) in enumerate(fused):
                hidden = hidden @ matrix
                hidden += bias
                if index < last:
                    np.maximum(hidden, 0.0, out=hidden)
            member_logits = hidden
        if member_logits.shape[0] == 1:
            # one chunk (most tool results): scalar arithmetic, not four array operations on one row
            mean = sum(sigmoid(float(x)) for x in member_logits[0]) / member_logits.shape[1]
            mean = min(max(mean, 1e-7), 1 - 1e-7)
            return np.array([math.log(mean / (1 - mean))])
        probability = np.mean(1.0 / (1.0 + np.exp(-member_logits)), axis=1)
        probability = np.clip(probability, 1e-7, 1 - 1e-7)
        result: np.ndarray = np.log(probability / (1 - probability))
        return result

    def _fuse(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """The members' layers side by side (the first layer's matrices joined, the later ones block-diagonal),
        so that the mean costs one matrix product per layer, not one per member and layer."""
        if not all(isinstance(member, MLPHead) for member in self.members):
            return None
        stacks = [[(layer.matrix(), np.asarray(layer.bias, dtype=np.float32)) for layer in member.layers]
                  for member in self.members if isinstance(member, MLPHead)]
        if len({len(stack) for stack in stacks}) != 1:
            return None
        fused: list[tuple[np.ndarray, np.ndarray]] = []
        for depth in range(len(stacks[0])):
            layers = [stack[depth] for stack in stacks]
            bias = np.concatenate([b for _, b in layers]).astype(np.float32)
            if depth == 0:
                matrix = np.concatenate([m for m, _ in layers], axis=1)
            else:
                matrix = np.zeros((sum(m.shape[0] for m, _ in layers), sum(m.shape[1] for m, _ in layers)), np.float32)
                row = column = 0
                for m, _ in layers:
                    matrix[row : row + m.shape[0], column : column + m.shape[1]] = m
                    row, column = row + m.shape[0], column + m.shape[1]
            fused.append((np.ascontiguousarray(matrix, dtype=np.float32), bias))
        return fused


class EncoderLayer(_Frozen):
    """One BERT encoder layer: self-attention (query, key and value as one matrix) and the feed-forward, each
    followed by a residual layer norm. Matrices as `Layer` (rows = inputs), norms as floats."""

    attention: Layer
    attention_output: Layer
    attention_norm: tuple[list[float], list[float]]  # weight, bias
    up: Layer
    down: Layer
    output_norm: tuple[list[float], list[float]]


class TunedHead(LinearHead):
    """A copy of MiniLM's last layers fine-tuned for one policy, and a linear head on its mean-pooled, normalised
    output: a text runs through MiniLM's first layers, then these (`MiniLMEmbedder.encode_tuned`), and `logits`
    (the linear head's) takes the vectors that come out."""

    kind: Literal["tuned"] = "tuned"  # type: ignore[assignment]
    embedding: Literal["minilm"]  # type: ignore[assignment]
    layers: list[EncoderLayer] = Field(min_length=1)


def sigmoid(x: float) -> float:
    """The logistic function of one number, without overflow for large negative `x`."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


Head = Annotated[LinearHead | MLPHead | MeanHead | TunedHead, Field(discriminator="kind")]


def untuned_screen(screen: Any) -> Any:
    """A screen as it may be: not a tuned head (a screen reads static vectors; only the head may be tuned)."""
    if isinstance(screen, TunedHead):
        raise ValueError("the screen is a tuned head; a screen runs on static embeddings, only 'head' may be tuned")
    return screen


class ClassifierSpec(_Frozen):
    embedding_model: Literal["minilm"] = "minilm"
    exemplars: list[Exemplar] = Field(default_factory=list)
    screen: Head | None = None  # fast first stage over every chunk
    head: Head | None = None  # second stage on the chunks the screen flags
    thresholds: Thresholds = Field(default_factory=Thresholds)
    thresholds_source: Literal["default", "front_matter", "tuned", "head"] = "default"
    chunk_chars: int = Field(default=400, ge=100, le=2000)

    _screen_reads_static_vectors = field_validator("screen")(untuned_screen)



class JudgeSpec(_Frozen):
    rubric: str
    criteria: list[str] = Field(default_factory=list)


class Mismatch(_Frozen):
    example: str
    line: int
    expected: Literal["violation", "allow"]
    got: Literal["violation", "allow", "unsure"]
    tier: str
    detail: str = ""


class Verification(_Frozen):
    """How the compiled policy scores on the source's own examples."""

    status: Literal["verified", "mismatch", "no_examples"]
    examples: int
    correct: int
    mismatches: list[Mismatch] = Field(default_factory=list)
    repaired_rules: list[str] = Field(default_factory=list)
    escalated_rules: list[str] = Field(default_factory=list)
    dropped_exemplars: int = 0


class Provenance(_Frozen):
    source: str
    source_sha256: str
    compiler: str  # "offline" or the model string
    prompt_version: int
    omitted: list[str] = Field(default_factory=list)


class CompiledPolicy(_Frozen):
    schema_version: Literal[1] = 1
    id: str
    title: str
    body: str
    action: Action
    severity: Literal["low", "medium", "high", "critical"] = "high"
    on_error: OnError
    scope: Scope
    rules: list[Rule] = Field(default_factory=list)
    # True when the rules alone decide the policy: if no rule fires, the subject is allowed and the
    # classifier and judge are skipped. Set only when the compiler's claim is confirmed by every example.
    rules_decide: bool = False
    detectors: list[str] = Field(default_factory=list)
    classifier: ClassifierSpec | None = None
    judge: JudgeSpec | None = None
    quality: Quality | None = None
    verification: Verification
    provenance: Provenance

    def digest(self) -> str:
        """A hash of everything that can change a decision; part of every judge cache key."""
        return hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode()).hexdigest()
