"""Builders shared by the policy tests."""

from __future__ import annotations

from policy.classifier import EmbedderPair
from policy.testing import HashEmbedder


def fake_models() -> EmbedderPair:
    return EmbedderPair(minilm=HashEmbedder(name="minilm"), static=HashEmbedder(name="static"))
