"""Errors raised by the policy engine.

Every message says what happened, where, and what to do next.

    PolicyError
    ├── PolicySourceError      a policies/*.md file cannot be parsed (carries path and line)
    ├── CompiledPolicyError    a lock file is missing, stale, corrupt or of another schema version
    ├── RuleError              a rule in the condition language is invalid (bad path, unsafe regex)
    ├── CompileError           the compiler could not produce a valid compiled policy
    ├── LLMError               the LLM behind the compiler or judge failed
    │   ├── LLMUnavailableError   it could not be reached, or timed out
    │   └── LLMOutputError        it answered, but not with valid structured output
    ├── JudgeBudgetError       the judge's call budget is exhausted
    ├── ModelLoadError         a local model (embeddings, Presidio) could not be loaded
    └── SubjectError           a subject given to the engine is malformed
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CompileError",
    "CompiledPolicyError",
    "JudgeBudgetError",
    "LLMError",
    "LLMOutputError",
    "LLMUnavailableError",
    "ModelLoadError",
    "PolicyError",
    "PolicySourceError",
    "RuleError",
    "SubjectError",
]


class PolicyError(Exception):
    """Base of every error the policy engine raises."""


class PolicySourceError(PolicyError):
    """A policy source file is malformed."""

    def __init__(self, path: Path | str, line: int | None, problem: str, fix: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        self.fix = fix
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}. {fix}")


class CompiledPolicyError(PolicyError):
    """A compiled policy (lock file) cannot be used."""


class RuleError(PolicyError):
    """A rule in the condition language is invalid."""


class CompileError(PolicyError):
    """Compilation failed."""


class LLMError(PolicyError):
    """The LLM failed."""


class LLMUnavailableError(LLMError):
    """The LLM could not be reached or did not answer in time."""


class LLMOutputError(LLMError):
    """The LLM answered with output that does not validate."""


class JudgeBudgetError(PolicyError):
    """The judge's call budget is exhausted."""


class ModelLoadError(PolicyError):
    """A local model could not be loaded."""


class SubjectError(PolicyError):
    """A subject is malformed."""
