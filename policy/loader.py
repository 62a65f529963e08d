"""Finding policy files and turning them into compiled policies for the runtime.

A fresh lock file is used as-is. A policy whose lock is missing or stale is still enforced:
it is compiled offline in memory (front matter, examples, English body for the judge) and a
warning says to run ``mcp-gateway policy compile``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .classifier import EmbedderPair
from .compiled import CompiledPolicy
from .compiler import compile_policy
from .detectors import DetectorRegistry
from .errors import CompiledPolicyError
from .lockfile import LockStatus, lock_path, lock_status, read_lock
from .source import PolicySource, builtin_policy_dir, discover_sources, load_source

__all__ = ["LoadedPolicy", "builtin_policy_dir", "discover_sources", "load_policies"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedPolicy:
    policy: CompiledPolicy
    source: PolicySource
    status: LockStatus
    warning: str | None = None


def load_policies(
    paths: Sequence[Path],
    *,
    models: EmbedderPair | None,
    detectors: DetectorRegistry | None = None,
    strict: bool = False,
) -> list[LoadedPolicy]:
    """Load every policy under `paths`; with `strict`, a missing or stale lock is an error."""
    loaded: list[LoadedPolicy] = []
    for path in discover_sources(paths):
        source = load_source(path)
        status = lock_status(source)
        if status is LockStatus.FRESH:
            loaded.append(LoadedPolicy(read_lock(lock_path(path)), source, status))
            continue
        advice = f"run 'mcp-gateway policy compile {path}'"
        if strict:
            raise CompiledPolicyError(f"{path}: the compiled policy is {status.value}; {advice}")
        if status is LockStatus.INVALID:
            read_lock(lock_path(path))  # raises with the precise reason
        warning = (
            f"{path}: compiled policy is {status.value}; enforcing an offline compile "
            f"(no deterministic rules or generated exemplars) until you {advice}"
        )
        logger.warning("%s", warning)
        policy = compile_policy(source, llm=None, models=models, detectors=detectors)
        loaded.append(LoadedPolicy(policy, source, status, warning))
    return loaded
