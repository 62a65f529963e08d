"""MiniLM's word-piece ids for plain ASCII text, in Python.

The static screen needs only token ids. The `tokenizers` library computes far more (offsets,
masks, alignment through normalisation) and costs about 3 µs a token here; for the text most
tool results are made of (printable ASCII), the same ids follow from three simple steps:

1. lower-case;
2. split on whitespace, and cut every ASCII punctuation or symbol character out as its own word;
3. split each word greedily into the longest pieces in the vocabulary (later pieces carry the
   continuation prefix); a word that cannot be split, or is longer than the limit, is unknown.

Anything else (non-ASCII, control characters, the tokenizer's own special tokens written in the
text, or a tokenizer configured differently) returns None, and the caller asks `tokenizers`. The
tests check the ids against `tokenizers` on hand-picked and random text.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["AsciiWordPiece"]

_OUTSIDE = re.compile(r"[^\t\n\r\x20-\x7e]")  # anything but printable ASCII, tab and line breaks
_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9\t\n\r ]")  # after lower-casing: runs of letters/digits, or one symbol
_CACHE_WORDS = 200_000


class AsciiWordPiece:
    """Word-piece ids for printable-ASCII text; `ids` gives None where it cannot be sure."""

    def __init__(self, vocab: dict[str, int], unknown: int, prefix: str, max_word_chars: int, specials: list[str]):
        self._vocab = vocab
        self._unknown = (unknown,)
        self._prefix = prefix
        self._max_word_chars = max_word_chars
        self._specials = [s for s in specials if s]
        self._words: dict[str, tuple[int, ...]] = {}

    @classmethod
    def of(cls, tokenizer: Any) -> AsciiWordPiece | None:
        """For a `tokenizers.Tokenizer` set up as BERT's uncased word-piece, else None."""
        config = json.loads(tokenizer.to_str())
        normalizer = config.get("normalizer") or {}
        model = config.get("model") or {}
        if config.get("truncation") or config.get("padding"):
            return None  # its own ids would be cut or padded; this gives them whole
        if not (
            normalizer.get("type") == "BertNormalizer"
            and normalizer.get("lowercase") is True
            and normalizer.get("clean_text") is True
            and (config.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
            and model.get("type") == "WordPiece"
        ):
            return None
        vocab: dict[str, int] = tokenizer.get_vocab()
        unknown = vocab.get(model.get("unk_token", ""))
        if unknown is None:
            return None
        specials = [added["content"] for added in config.get("added_tokens") or []]
        prefix = model.get("continuing_subword_prefix", "##")
        return cls(vocab, unknown, prefix, int(model.get("max_input_chars_per_word", 100)), specials)

    def ids(self, text: str) -> list[int] | None:
        if not text.isascii() or _OUTSIDE.search(text) or any(s in text for s in self._specials):
            return None
        out: list[int] = []
        words = self._words
        for word in _WORDS.findall(text.lower()):
            pieces = words.get(word)
            if pieces is None:
                pieces = self._pieces(word)
                if len(words) >= _CACHE_WORDS:
                    words.clear()
                words[word] = pieces
            out.extend(pieces)
        return out

    def _pieces(self, word: str) -> tuple[int, ...]:
        if len(word) > self._max_word_chars:
            return self._unknown
        found: list[int] = []
        start, size = 0, len(word)
        while start < size:
            end = size
            piece = None
            while start < end:
                piece = self._vocab.get(word[start:end] if start == 0 else self._prefix + word[start:end])
                if piece is not None:
                    break
                end -= 1
            if piece is None:
                return self._unknown
            found.append(piece)
            start = end
        return tuple(found)
