"""The eval harness behind ``mcp-gateway policy test``: run labelled cases, score every policy.

A case names the policy it tests (or none: "any policy"). Its outcome is the engine's decision
for that policy (or for all policies in scope). Metrics are per policy: confusion counts,
precision, recall, F1, false-positive rate, which tier decided how often, judge calls, cache
hits, latency percentiles and judge cost where known.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from .cases import Case
from .engine import Engine
from .errors import PolicyError
from .verdict import Tier, Verdict

__all__ = ["CaseResult", "PolicyMetrics", "evaluate_cases", "score_results"]

ANY_POLICY = "*"


@dataclass(frozen=True)
class CaseResult:
    case: Case
    got: Literal["violation", "allow"]
    tier: str
    reason: str
    latency_ms: float
    verdicts: tuple[Verdict, ...]
    judge_called: bool = False
    cache_hit: bool = False

    @property
    def passed(self) -> bool:
        return self.got == self.case.expect

    @property
    def policy(self) -> str:
        return self.case.policy or ANY_POLICY

    @property
    def score(self) -> float | None:
        scores = [v.score for v in self.verdicts if v.score is not None]
        return max(scores) if scores else None

    @property
    def judge_cost_usd(self) -> float | None:
        """What the judge's calls for this case cost, where litellm knows the price (None: unknown or none)."""
        costs = [v.judge_cost_usd for v in self.verdicts if v.judge_cost_usd is not None]
        return sum(costs) if costs else None

    @property
    def failed_tier(self) -> Verdict | None:
        """The first verdict the policy's on_error gave because a tier (the judge, a model) failed."""
        return next((v for v in self.verdicts if v.tier is Tier.ON_ERROR), None)


@dataclass
class PolicyMetrics:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    judge_calls: int = 0
    cache_hits: int = 0
    judge_cost_usd: float | None = None  # summed over the calls whose price litellm knows
    latencies: list[float] = field(default_factory=list)

    # The four rates read 0.0 where they are undefined (no case to divide by); `as_dict` and the
    # reports say "undefined" instead (None), and a threshold on an undefined rate is not met.

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        # 2TP / (2TP + FP + FN): the harmonic mean of precision and recall, defined wherever either side is
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fp + self.fn else 0.0

    def defined(self, metric: str) -> bool:
        """Whether `metric` (precision, recall, f1, fpr) has cases to be computed from."""
        denominators = {
            "precision": self.tp + self.fp,
            "recall": self.tp + self.fn,
            "f1": self.tp + self.fp + self.fn,
            "fpr": self.fp + self.tn,
        }
        return denominators[metric] > 0

    def _rate(self, metric: str) -> float | None:
        return round(getattr(self, metric), 4) if self.defined(metric) else None

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[index]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "cases": self.tp + self.fp + self.tn + self.fn,
            "precision": self._rate("precision"),
            "recall": self._rate("recall"),
            "f1": self._rate("f1"),
            "fpr": self._rate("fpr"),
            "tiers": dict(self.tiers),
            "judge_calls": self.judge_calls,
            "cache_hits": self.cache_hits,
            "judge_cost_usd": None if self.judge_cost_usd is None else round(self.judge_cost_usd, 6),
            "latency_ms": {"p50": round(self.percentile(50), 3), "p95": round(self.percentile(95), 3)},
        }


def _decide(engine: Engine, case: Case) -> CaseResult:
    subject = case.subject()
    started = time.perf_counter()
    if case.policy is not None:
        policy = next((p for p in engine.policies if p.id == case.policy), None)
        if policy is None:
            raise PolicyError(
                f"case {case.id!r} names policy {case.policy!r}, which is not loaded; "
                f"loaded: {', '.join(p.id for p in engine.policies)}"
            )
        verdicts = [engine.check_policy(policy, subject)] if policy.scope.matches(subject) else []
    else:
        verdicts = engine.check(subject)
    latency = (time.perf_counter() - started) * 1000
    violated = [v for v in verdicts if v.violated]
    deciding = violated[0] if violated else (verdicts[0] if verdicts else None)
    tier = deciding.tier.value if deciding else "scope"
    reason = deciding.reason if deciding else "no policy in scope"
    return CaseResult(
        case=case,
        got="violation" if violated else "allow",
        tier=tier,
        reason=reason,
        latency_ms=latency,
        verdicts=tuple(verdicts),
        judge_called=any(v.tier is Tier.JUDGE and not v.cache_hit for v in verdicts),
        cache_hit=any(v.cache_hit for v in verdicts),
    )


def evaluate_cases(
    engine: Engine,
    cases: Sequence[Case],
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[CaseResult]:
    results: list[CaseResult] = []
    if workers <= 1:
        for index, case in enumerate(cases, start=1):
            results.append(_decide(engine, case))
            if progress:
                progress(index, len(cases))
        return results
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, result in enumerate(pool.map(lambda c: _decide(engine, c), cases), start=1):
            results.append(result)
            if progress:
                progress(index, len(cases))
    return results


def score_results(results: Sequence[CaseResult]) -> dict[str, PolicyMetrics]:
    metrics: dict[str, PolicyMetrics] = {}
    for result in results:
        entry = metrics.setdefault(result.policy, PolicyMetrics())
        positive = result.case.expect == "violation"
        predicted = result.got == "violation"
        if positive and predicted:
            entry.tp += 1
        elif positive:
            entry.fn += 1
        elif predicted:
            entry.fp += 1
        else:
            entry.tn += 1
        entry.tiers[result.tier] += 1
        entry.judge_calls += int(result.judge_called)
        entry.cache_hits += int(result.cache_hit)
        cost = result.judge_cost_usd
        if cost is not None:
            entry.judge_cost_usd = (entry.judge_cost_usd or 0.0) + cost
        entry.latencies.append(result.latency_ms)
    return metrics
