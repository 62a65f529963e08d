"""The embedding classifier tier.

Two kinds of compiled classifier, both scoring in [0, 1] and both chunk-aware:

* trained heads (built-in detectors): a logistic-regression `screen` on static embeddings runs
  over every chunk; the `head` on transformer embeddings runs only on chunks the screen flags.
* exemplars (any English policy): nearness to violation exemplars against nearness to allowed
  exemplars, on transformer embeddings.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .chunking import Chunk, segment
from .compiled import ClassifierSpec, Exemplar, LinearHead, MeanHead, MLPHead, TunedHead, sigmoid
from .embeddings import Embedder, TunedEmbedder
from .errors import ModelLoadError
from .quick import slow_step

__all__ = ["ClassifierResult", "EmbedderPair", "PolicyClassifier", "exemplar_score"]

MAX_HEAD_CHUNKS = 6  # transformer passes per subject, whatever its size
SCREEN_DEFAULT = 0.2
# Scores of texts up to this long are remembered (by digest, per classifier: a policy's heads and exemplars
# are part of the key by construction), the last MEMO_SIZE of them: servers repeat short results
# ("OK", a status line, an echo), and scoring one costs the screen, the head and the nearest exemplar.
MEMO_TEXT_CHARS = 2000
MEMO_SIZE = 1024


@dataclass(frozen=True)
class EmbedderPair:
    """The transformer and the fast static embedder, in the same vector space."""

    minilm: Embedder
    static: Embedder


@dataclass(frozen=True)
class ClassifierResult:
    score: float
    screened_out: bool  # the fast screen found nothing worth a closer look in any chunk
    chunk: Chunk | None
    suspicious: tuple[Chunk, ...] = ()
    nearest_exemplar: str | None = None
    nearest_similarity: float | None = None
    stage: str = "head"
    chunks: int = 0


@dataclass
class PolicyClassifier:
    spec: ClassifierSpec
    models: EmbedderPair
    _exemplar_vectors: np.ndarray | None = field(default=None, init=False)
    _exemplar_static: np.ndarray | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _memo: OrderedDict[bytes, ClassifierResult] = field(default_factory=OrderedDict, init=False)

    def warm(self) -> None:
        """Embed the exemplars (and decode a tuned head's layers) now, so the first subject does not pay for it."""
        self._vectors()
        if isinstance(self.spec.head, TunedHead):
            self._tuned_embedder().tuned_layers(self.spec.head)

    def _tuned_embedder(self) -> TunedEmbedder:
        embedder = self.models.minilm
        if not isinstance(embedder, TunedEmbedder):
            name = type(embedder).__name__
            raise ModelLoadError(f"a tuned head needs an embedder that runs tuned layers; {name} does not")
        return embedder

    def _encode_tuned(self, texts: list[str], head: TunedHead) -> np.ndarray:
        return self._tuned_embedder().encode_tuned(texts, head)

    def _vectors(self) -> np.ndarray:
        if self._exemplar_vectors is None:
            slow_step("embedding the exemplars")  # `warm` does it before the first message
        with self._lock:
            if self._exemplar_vectors is None:
                texts = [exemplar.text for exemplar in self.spec.exemplars]
                if not texts:
                    self._exemplar_vectors = np.zeros((0, 1))
                elif isinstance(self.spec.head, TunedHead):  # compared with the tuned vectors of a text
                    self._exemplar_vectors = self._encode_tuned(texts, self.spec.head)
                else:
                    self._exemplar_vectors = self.models.minilm.encode(texts)
            return self._exemplar_vectors

    def _static_vectors(self) -> np.ndarray:
        with self._lock:
            if self._exemplar_static is None:
                texts = [exemplar.text for exemplar in self.spec.exemplars]
                self._exemplar_static = self.models.static.encode(texts) if texts else np.zeros((0, 1))
            return self._exemplar_static

    def score(self, text: str) -> ClassifierResult:
        if len(text) > MEMO_TEXT_CHARS:
            return self._score(text)
        key = hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=16).digest()
        with self._lock:
            known = self._memo.get(key)
            if known is not None:
                self._memo.move_to_end(key)
                return known
        result = self._score(text)  # deterministic: the same text always scores the same
        with self._lock:
            self._memo[key] = result
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return result

    def _score(self, text: str) -> ClassifierResult:
        chunks = segment(text, max_chars=self.spec.chunk_chars)
        if not chunks:
            return ClassifierResult(score=0.0, screened_out=True, chunk=None, stage="empty")
        if self.spec.head is not None:
            return self._score_heads(chunks)
        return self._score_exemplars(chunks)

    def _score_heads(self, chunks: list[Chunk]) -> ClassifierResult:
        assert self.spec.head is not None
        candidates = chunks
        screen_scores: np.ndarray | None = None
        if self.spec.screen is not None:
            screen_scores = _apply(self.spec.screen, self.models.static.encode([c.text for c in chunks]))
            cut = self.spec.screen.metrics.get("pass_threshold", SCREEN_DEFAULT)
            order = _ranked(screen_scores)
            flagged = [i for i in order if screen_scores[i] >= cut][:MAX_HEAD_CHUNKS]
            if not flagged:
                top = order[0]
                return ClassifierResult(
                    score=float(screen_scores[top]) * self.spec.thresholds.allow_below,
                    screened_out=True,
                    chunk=chunks[top],
                    stage="screen",
                    chunks=len(chunks),
                )
            candidates = [chunks[i] for i in flagged]
        elif len(chunks) > MAX_HEAD_CHUNKS:
            candidates = _spread(chunks, MAX_HEAD_CHUNKS)
        texts = [c.text for c in candidates]
        if isinstance(self.spec.head, TunedHead):
            # the head, and the trace's nearest exemplar, read the tuned copy's vectors (the text runs through
            # MiniLM's shared layers and the tuned ones only: no more than a plain MiniLM pass)
            vectors = self._encode_tuned(texts, self.spec.head)
        else:
            vectors = self.models.minilm.encode(texts)
        head_scores = _apply(self.spec.head, vectors)
        order = _ranked(head_scores)
        best = order[0]
        nearest, similarity = self._nearest(vectors[best])
        return ClassifierResult(
            score=float(head_scores[best]),
            screened_out=False,
            chunk=candidates[best],
            suspicious=tuple(candidates[i] for i in order[:3]),
            nearest_exemplar=nearest,
            nearest_similarity=similarity,
            stage="head",
            chunks=len(chunks),
        )

    def _score_exemplars(self, chunks: list[Chunk]) -> ClassifierResult:
        vectors = self._vectors()
        exemplars = self.spec.exemplars
        if not exemplars:
            return ClassifierResult(score=0.5, screened_out=False, chunk=chunks[0], stage="no-exemplars")
        positive = np.array([e.violation for e in exemplars])
        candidates = chunks
        if len(chunks) > MAX_HEAD_CHUNKS and positive.any():
            # Rank windows by static similarity to any violation exemplar; look closely at the top ones.
            sims = self.models.static.encode([c.text for c in chunks]) @ self._static_vectors()[positive].T
            order = np.argsort(-sims.max(axis=1))[:MAX_HEAD_CHUNKS]
            candidates = [chunks[int(i)] for i in order]
        sims = self.models.minilm.encode([c.text for c in candidates]) @ vectors.T
        scores = [exemplar_score(row, positive) for row in sims]
        best = int(np.argmax(scores))
        nearest_index = int(np.argmax(sims[best]))
        order = np.argsort(-np.asarray(scores))
        return ClassifierResult(
            score=float(scores[best]),
            screened_out=False,
            chunk=candidates[best],
            suspicious=tuple(candidates[int(i)] for i in order[:3]),
            nearest_exemplar=exemplars[nearest_index].text,
            nearest_similarity=float(sims[best][nearest_index]),
            stage="exemplars",
            chunks=len(chunks),
        )

    def _nearest(self, vector: np.ndarray) -> tuple[str | None, float | None]:
        """The exemplar nearest to a text's MiniLM vector, and how near (for the trace)."""
        if not self.spec.exemplars:
            return None, None
        sims = self._vectors() @ vector
        index = int(np.argmax(sims))
        return self.spec.exemplars[index].text, float(sims[index])


def exemplar_score(similarities: np.ndarray, positive: np.ndarray) -> float:
    """Score one text from its cosine similarities to each exemplar.

    High when the text is near a violation exemplar and nearer to it than to any allowed one;
    near zero when it resembles no violation at all.
    """
    pos = float(similarities[positive].max()) if positive.any() else 0.0
    neg = float(similarities[~positive].max()) if (~positive).any() else 0.0
    relevance = min(1.0, max(0.0, (pos - 0.2) / 0.35))
    if not (~positive).any():
        return relevance
    margin = 0.5 + 0.5 * math.tanh(8.0 * (pos - neg))
    return relevance * margin


def _apply(head: LinearHead | MLPHead | MeanHead | TunedHead, vectors: np.ndarray) -> np.ndarray:
    logits = head.logits(vectors)
    if logits.shape == (1,):
        # one chunk (most tool results): a scalar sigmoid, not three array operations
        return np.array([sigmoid(float(logits[0]))])
    result: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
    return result


def _ranked(scores: np.ndarray) -> list[int]:
    """Indices from the highest score down (one score, the common case, without a sort)."""
    if len(scores) == 1:
        return [0]
    return [int(i) for i in np.argsort(-scores)]


def _spread(chunks: list[Chunk], count: int) -> list[Chunk]:
    step = len(chunks) / count
    return [chunks[int(i * step)] for i in range(count)]


def exemplar_texts(exemplars: list[Exemplar]) -> list[str]:
    return [exemplar.text for exemplar in exemplars]
