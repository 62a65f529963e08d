"""Builders shared by the policy tests."""

from __future__ import annotations

from policy.classifier import EmbedderPair
from policy.compiled import CompiledPolicy, Provenance, Scope, Verification
from policy.subject import SubjectKind
from policy.testing import HashEmbedder
from policy.verdict import Action


def fake_models() -> EmbedderPair:
    return EmbedderPair(minilm=HashEmbedder(name="minilm"), static=HashEmbedder(name="static"))


def make_policy(**overrides: object) -> CompiledPolicy:
    """A compiled policy as a compile would write it; a tool-result block policy unless `overrides` say else."""
    fields: dict[str, object] = {
        "id": "no-recipes",
        "title": "No recipes",
        "body": "Tool results must not contain cooking recipes.",
        "action": Action.BLOCK,
        "on_error": "block",
        "scope": Scope(kinds=[SubjectKind.TOOL_RESULT]),
        "verification": Verification(status="no_examples", examples=0, correct=0),
        "provenance": Provenance(source="no-recipes.md", source_sha256="0" * 64, compiler="offline", prompt_version=1),
    }
    fields.update(overrides)
    return CompiledPolicy(**fields)  # type: ignore[arg-type]
