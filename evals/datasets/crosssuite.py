"""Texts of one suite that are benign for another: configuration files and sentences full of personal
data are not prompt injection, however much they look like nothing the injection data contains.

Without them an injection head never sees an env dump or a customer record during training, and
flags them at random. They keep their split (a secrets file in test stays in test)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .base import Case, Source, SubjectKind

__all__ = ["SOURCES", "cross_suite_cases"]

CONFIGS = Source(
    "benign-configs",
    "prompt-injection",
    "MIT / Apache-2.0 (credsweeper, detect-secrets)",
    "the secrets suite",
    commercial=True,
    note="secrets-suite texts, benign for injection",
)
PERSONAL = Source(
    "benign-personal",
    "prompt-injection",
    "MIT (presidio-research synthetic data)",
    "the pii suite",
    commercial=True,
    note="pii-suite texts, benign for injection",
)
SOURCES = (CONFIGS, PERSONAL)
_FROM = {"secrets": CONFIGS, "pii": PERSONAL}


def cross_suite_cases(by_suite: Mapping[str, list[Case]]) -> Iterator[Case]:
    for suite, source in _FROM.items():
        for case in by_suite.get(suite, []):
            if not case.text.strip() or case.split is None:
                continue
            yield Case(
                id=f"{source.name}:{case.id}",
                policy="prompt-injection",
                kind=SubjectKind.TOOL_RESULT,
                expect="allow",
                text=case.text,
                source=source.name,
                split=case.split,
                tags=["cross-suite", f"from:{case.source}"],
            )
