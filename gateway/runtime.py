"""Assembling the policy engine from settings: policies, models, detectors and the judge."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from policy.cache import DiskVerdictCache
from policy.classifier import EmbedderPair
from policy.compiler import load_rules
from policy.detectors import DetectorRegistry
from policy.embeddings import MiniLMEmbedder, StaticEmbedder
from policy.engine import Engine
from policy.errors import CompileError
from policy.judge import Judge
from policy.llm import LiteLLMClient
from policy.loader import LoadedPolicy, builtin_policy_dir, load_policies
from policy.source import discover_sources, load_source

from .errors import ConfigError
from .settings import Settings

__all__ = ["Runtime", "build_judge", "build_models", "build_runtime", "check_policy_files", "policy_paths"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    engine: Engine
    loaded: tuple[LoadedPolicy, ...]
    judge: Judge | None

    @property
    def warnings(self) -> list[str]:
        return [item.warning for item in self.loaded if item.warning]


def build_models(settings: Settings) -> EmbedderPair:
    minilm = MiniLMEmbedder(threads=settings.embed_threads)
    return EmbedderPair(minilm=minilm, static=StaticEmbedder(minilm, cache_dir=settings.cache_dir))


def build_judge(settings: Settings) -> Judge | None:
    judge = settings.judge
    if not judge.model:
        return None
    llm = LiteLLMClient(
        judge.model,
        api_base=judge.api_base,
        api_key=judge.api_key.get_secret_value() if judge.api_key else None,
        mode=judge.mode,
    )
    cache = DiskVerdictCache(settings.cache_dir / "judge")
    return Judge(llm, cache, timeout_s=judge.timeout_s, max_calls_per_minute=judge.max_calls_per_minute)


def policy_paths(settings: Settings, extra: Sequence[Path] = ()) -> list[Path]:
    paths = [builtin_policy_dir()] if settings.builtin_policies else []
    paths += [*settings.policies, *extra]
    if not paths:
        raise ConfigError(
            "no policies to enforce: built-in policies are off and no --policies were given; "
            "pass --policies DIR or drop --no-builtin"
        )
    return paths


def check_policy_files(settings: Settings, extra: Sequence[Path] = ()) -> None:
    """Stop before serving on a policy setup that cannot work: no policies at all (a folder without
    any), a path that does not exist, a policy file or its rules file that does not parse. Each error
    names the file (and line) and what to do. Locks and models load afterwards, in the background,
    where a failure refuses guarded messages."""
    paths = policy_paths(settings, extra)
    sources = discover_sources(paths)
    if not sources:
        raise ConfigError(
            f"no policies to enforce: {', '.join(str(p) for p in paths)} holds no policy file (*.md); "
            "write one there, point --policies at a folder that has them, or drop --no-builtin"
        )
    ids: list[str] = []
    for path in sources:
        try:
            source = load_source(path)
            load_rules(source)
        except CompileError as exc:  # a rules file that does not parse: the setup's mistake, as the policy's
            raise ConfigError(str(exc)) from exc
        ids.append(source.id)
    _check_disable(settings, ids)


def _check_disable(settings: Settings, ids: Sequence[str]) -> None:
    unknown = set(settings.disable) - set(ids)
    if unknown:
        raise ConfigError(
            f"'disable' names unknown policies: {', '.join(sorted(unknown))}; the policies loaded are "
            f"{', '.join(sorted(ids))}"
        )
    if not set(ids) - set(settings.disable):  # a gateway that guards nothing must not look like one that does
        raise ConfigError(
            "no policies to enforce: every policy is disabled (the 'disable' setting, or Lasso plugins that "
            "choose none, such as -p xetrack alone); enable one, or drop -p to get every built-in policy"
        )


def build_runtime(
    settings: Settings,
    *,
    extra_policies: Sequence[Path] = (),
    models: EmbedderPair | None = None,
    detectors: DetectorRegistry | None = None,
    with_judge: bool = True,
) -> Runtime:
    models = models or build_models(settings)
    registry = detectors or DetectorRegistry()
    loaded = load_policies(policy_paths(settings, extra_policies), models=models, detectors=registry)
    if not loaded:
        raise ConfigError("no policies to enforce: the policy folders hold no policy file (*.md)")
    _check_disable(settings, [item.policy.id for item in loaded])
    active = [item for item in loaded if item.policy.id not in settings.disable]
    judge = build_judge(settings) if with_judge else None
    engine = Engine([item.policy for item in active], models=models, detectors=registry, judge=judge)
    return Runtime(engine=engine, loaded=tuple(active), judge=judge)
