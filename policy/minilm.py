"""all-MiniLM-L6-v2 run directly on torch: the BERT encoder, mean pooling and normalisation.

The model folder is a sentence-transformers model (a BERT transformer, mean pooling, a Normalize
step). Loading it through sentence-transformers imports transformers as well, some 5.5 s of a
gateway's start on two cores before the first tool list can be screened; torch alone takes about
1.2 s. The encoder is small and fixed (embeddings, then per layer self-attention and a GELU
feed-forward, each followed by a residual layer norm), so it is written out here on torch's own
functions, the kernels transformers calls, reading the weights from ``model.safetensors`` and the
word pieces from ``tokenizer.json`` with the `tokenizers` library. The vectors are those
sentence-transformers gives (the tests compare them); only that architecture is accepted, and a
folder with another one is refused with a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError

__all__ = ["MiniLM"]

BATCH = 32  # texts per forward pass; sorted by length first, so little of a batch is padding


class MiniLM:
    """A mean-pooled, normalised BERT sentence encoder read from a sentence-transformers folder."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self._torch = torch
        try:
            config = _json(model_dir / "config.json")
            max_tokens = int(_json(model_dir / "sentence_bert_config.json").get("max_seq_length", 512))
            pooling = _json(model_dir / "1_Pooling" / "config.json")
            modules = [str(m.get("type", "")) for m in _json(model_dir / "modules.json")]
            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            weights = load_file(str(model_dir / "model.safetensors"))
        except Exception as exc:  # missing files, broken JSON, a damaged weights file: each library its own type
            raise ModelLoadError(f"cannot read the embedding model at {model_dir}: {exc}") from exc
        modes = [key for key, on in pooling.items() if key.startswith("pooling_mode_") and on]
        supported = (
            config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and modes == ["pooling_mode_mean_tokens"]
            and [m.rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
        )
        if not supported:
            raise ModelLoadError(
                f"the embedding model at {model_dir} is not a mean-pooled, normalised BERT model with GELU "
                "(as all-MiniLM-L6-v2 is); only that architecture can be loaded"
            )
        try:
            self.max_tokens = min(max_tokens, int(config["max_position_embeddings"]))
            self.hidden = int(config["hidden_size"])
            self.heads = int(config["num_attention_heads"])
            self.eps = float(config["layer_norm_eps"])
            self._embeddings = (
                weights["embeddings.word_embeddings.weight"],
                weights["embeddings.position_embeddings.weight"],
                weights["embeddings.token_type_embeddings.weight"][0],
                weights["embeddings.LayerNorm.weight"],
                weights["embeddings.LayerNorm.bias"],
            )
            self._layers = [_layer(weights, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))]
            self.intermediate = int(config["intermediate_size"])
        except KeyError as exc:
            raise ModelLoadError(f"the embedding model at {model_dir} has no {exc} in its config or weights") from exc
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"the embedding model at {model_dir} has a config value of the wrong kind: {exc}"
            ) from exc
        if self.heads < 1 or self.hidden % self.heads:
            raise ModelLoadError(
                f"the embedding model at {model_dir} has {self.hidden} hidden units, which its "
                f"{self.heads} attention heads do not divide"
            )
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()
        try:  # weights whose shapes disagree with the config fail here, not on the first message
            self.encode(["ready"])
        except RuntimeError as exc:
            raise ModelLoadError(f"the embedding model at {model_dir} does not run: {exc}") from exc

    @property
    def layers(self) -> list[tuple[Any, ...]]:
        """The encoder layers' weights (as `_layer` groups them), read-only by convention."""
        return self._layers

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (float32, shape (len(texts), hidden))."""
        return self.encode_tuned(texts, ())

    def encode_tuned(self, texts: Sequence[str], tuned: Sequence[tuple[Any, ...]]) -> np.ndarray:
        """The unit vectors of a copy of the model whose last ``len(tuned)`` layers are `tuned` (tuples shaped as
        `_layer` makes them); with none, the model's own."""
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if len(tuned) > len(self._layers):
            raise ValueError(f"{len(tuned)} tuned layers for a model of {len(self._layers)}")
        layers = [*self._layers[: len(self._layers) - len(tuned)], *tuned]
        with self._torch.inference_mode():
            for batch, tokens, mask in self.batches(texts, BATCH):
                vectors = self._pool(self.states(tokens, mask, layers), mask)
                for row, index in enumerate(batch):
                    out[index] = vectors[row]
        return out

    def batches(self, texts: Sequence[str], size: int) -> Iterator[tuple[list[int], Any, Any]]:
        """(indices into `texts`, token ids, attention mask) per batch of `size` texts, sorted by length first so
        that little of a batch is padding."""
        torch = self._torch
        if not texts:
            return
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            width = max(len(ids[i]) for i in batch)
            tokens = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                tokens[row, : len(ids[index])] = torch.tensor(ids[index], dtype=torch.long)
                mask[row, : len(ids[index])] = 1
            yield batch, tokens, mask

    def _pool(self, states: Any, mask: Any) -> np.ndarray:
        weight = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-9)
        vectors: np.ndarray = self._torch.nn.functional.normalize(pooled, dim=1).numpy()
        return vectors

    def states(self, tokens: Any, mask: Any, layers: Sequence[tuple[Any, ...]] | None = None) -> Any:
        """The hidden states after `layers` (all of the model's by default) for a batch of token ids (padding
        marked 0 in `mask`)."""
        functional = self._torch.nn.functional
        word, position, token_type, norm_w, norm_b = self._embeddings
        x = functional.embedding(tokens, word) + position[: tokens.shape[1]] + token_type
        x = functional.layer_norm(x, (self.hidden,), norm_w, norm_b, self.eps)
        return self.run_layers(x, mask, self._layers if layers is None else layers)

    def run_layers(self, x: Any, mask: Any, layers: Sequence[tuple[Any, ...]]) -> Any:
        """Hidden states `x` through encoder `layers`."""
        torch = self._torch
        functional = torch.nn.functional
        batch, width = mask.shape
        # padding keys get the lowest score, so attention gives them no weight (a batch without padding, one
        # text always, needs no mask: attention runs a faster kernel without one)
        bias = None if bool(mask.all()) else (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        size = self.hidden // self.heads
        for qkv_w, qkv_b, out_w, out_b, n1_w, n1_b, up_w, up_b, down_w, down_b, n2_w, n2_b in layers:
            q, k, v = functional.linear(x, qkv_w, qkv_b).split(self.hidden, dim=-1)
            q, k, v = (t.view(batch, width, self.heads, size).transpose(1, 2) for t in (q, k, v))
            context = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            context = context.transpose(1, 2).reshape(batch, width, self.hidden)
            x = functional.layer_norm(
                x + functional.linear(context, out_w, out_b), (self.hidden,), n1_w, n1_b, self.eps
            )
            up = functional.gelu(functional.linear(x, up_w, up_b))
            x = functional.layer_norm(x + functional.linear(up, down_w, down_b), (self.hidden,), n2_w, n2_b, self.eps)
        return x


def _layer(weights: dict[str, Any], prefix: str) -> tuple[Any, ...]:
    import torch

    attention = prefix + "attention."
    return (
        torch.cat([weights[f"{attention}self.{name}.weight"] for name in ("query", "key", "value")]),
        torch.cat([weights[f"{attention}self.{name}.bias"] for name in ("query", "key", "value")]),
        weights[attention + "output.dense.weight"],
        weights[attention + "output.dense.bias"],
        weights[attention + "output.LayerNorm.weight"],
        weights[attention + "output.LayerNorm.bias"],
        weights[prefix + "intermediate.dense.weight"],
        weights[prefix + "intermediate.dense.bias"],
        weights[prefix + "output.dense.weight"],
        weights[prefix + "output.dense.bias"],
        weights[prefix + "output.LayerNorm.weight"],
        weights[prefix + "output.LayerNorm.bias"],
    )


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
