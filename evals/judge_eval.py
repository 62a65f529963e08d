"""Measuring the real judge: ``python -m evals.judge_eval --model openai/qwen-judge --api-base URL``.

Writes ``evals/results/judge-live.json`` (read by the scorecard) and a cassette of every answer, so
the same questions replay offline (``mcp-gateway policy test --replay``). Four figures:

* judge accuracy on dev cases from the band where the classifier is unsure (the only cases the
  cascade sends it), next to the classifier's own accuracy on the same cases;
* latency per judge call;
* judge calls per 1,000 benign events: how many benign test cases land in the unsure band;
* the cache hit rate when a recorded session is replayed (a session lists the same tools and reads
  the same results more than once, as agents do).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from policy.cache import DiskVerdictCache
from policy.classifier import EmbedderPair, PolicyClassifier
from policy.embeddings import MiniLMEmbedder, StaticEmbedder
from policy.errors import PolicyError
from policy.judge import Judge
from policy.llm import LiteLLMClient
from policy.loader import builtin_policy_dir, load_policies

from .train import suite_cases

logger = logging.getLogger("evals.judge_eval")
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "evals" / ".work"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="openai/qwen-judge")
    parser.add_argument("--api-base", default="http://127.0.0.1:18080/v1")
    parser.add_argument("--policy", default="prompt-injection")
    parser.add_argument("--cases", type=int, default=24, help="unsure-band dev cases to judge")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    minilm = MiniLMEmbedder(threads=1)
    models = EmbedderPair(minilm=minilm, static=StaticEmbedder(minilm))
    [item] = [
        i for i in load_policies([builtin_policy_dir()], models=models, strict=True) if i.policy.id == args.policy
    ]
    policy = item.policy
    assert policy.classifier is not None
    classifier = PolicyClassifier(policy.classifier, models)
    thresholds = policy.classifier.thresholds
    cases_dir = WORK / "cases"

    def band(cases: list[Any]) -> tuple[list[Any], list[float]]:
        picked, scores = [], []
        for case in cases:
            if case.kind not in policy.scope.kinds:
                continue
            score = classifier.score(case.subject().reading()).score
            if thresholds.allow_below <= score < thresholds.violate_above:
                picked.append(case)
                scores.append(score)
        return picked, scores

    dev = suite_cases(args.policy, cases_dir, "dev")
    random.Random(7).shuffle(dev)
    unsure, unsure_scores = band(dev[:1500])
    sample = list(zip(unsure, unsure_scores, strict=True))[: args.cases]
    cache_dir = WORK / "judge-cache"
    judge = Judge(
        LiteLLMClient(args.model, api_base=args.api_base),
        DiskVerdictCache(cache_dir),
        timeout_s=args.timeout,
        max_calls_per_minute=10_000,
    )
    rows = []
    for case, score in sample:
        started = time.perf_counter()
        try:
            outcome = judge.judge(policy, case.subject(), None)
            rows.append(
                {
                    "id": case.id,
                    "expected": case.expect,
                    "judge": "violation" if outcome.violates else "allow",
                    "classifier": "violation" if score >= thresholds.decision else "allow",
                    "latency_ms": round(outcome.latency_ms),
                    "cache_hit": outcome.cache_hit,
                }
            )
        except PolicyError as exc:
            rows.append(
                {
                    "id": case.id,
                    "expected": case.expect,
                    "judge": "error",
                    "error": str(exc)[:200],
                    "classifier": "violation" if score >= thresholds.decision else "allow",
                    "latency_ms": round((time.perf_counter() - started) * 1000),
                }
            )
        logger.info("%d/%d %s", len(rows), len(sample), rows[-1])
    answered = [r for r in rows if r["judge"] != "error"]
    judge_right = sum(r["judge"] == r["expected"] for r in answered)
    classifier_right = sum(r["classifier"] == r["expected"] for r in rows)
    latencies = [r["latency_ms"] for r in answered if not r.get("cache_hit")]
    benign = [c for c in suite_cases(args.policy, cases_dir, "test") if c.expect == "allow"][:1000]
    benign_unsure, _ = band(benign)
    per_thousand = 1000 * len(benign_unsure) / max(len([c for c in benign if c.kind in policy.scope.kinds]), 1)
    # Replay: the same session twice (an agent re-reads what it read); the second pass is all cache.
    calls_before = judge.stats["calls"]
    hits_before = judge.stats["cache_hits"]
    for case, _ in sample:
        try:
            judge.judge(policy, case.subject(), None)
        except PolicyError:
            continue
    replay_hits = judge.stats["cache_hits"] - hits_before
    replay_calls = judge.stats["calls"] - calls_before
    result = {
        "model": args.model,
        "policy": args.policy,
        "measured": time.strftime("%Y-%m-%d"),
        "unsure_band": [thresholds.allow_below, thresholds.violate_above],
        "cases": len(rows),
        "answered": len(answered),
        "judge_accuracy": round(judge_right / max(len(answered), 1), 3),
        "classifier_accuracy_same_cases": round(classifier_right / max(len(rows), 1), 3),
        "latency_ms": {
            "p50": float(np.percentile(latencies, 50)) if latencies else None,
            "p95": float(np.percentile(latencies, 95)) if latencies else None,
        },
        "judge_calls_per_1000_benign_events": round(per_thousand, 1),
        "replay_cache_hit_rate": round(replay_hits / max(replay_hits + replay_calls, 1), 3),
        "rows": rows,
    }
    summary = (
        f"Judge `{args.model}` (Qwen2.5-Coder-1.5B Q4_K_M on llama.cpp, one CPU thread, shared machine) on "
        f"{len(rows)} `{args.policy}` dev cases from the band the classifier is unsure of "
        f"({thresholds.allow_below:.3f}–{thresholds.violate_above:.3f}): judge accuracy "
        f"{result['judge_accuracy']:.3f} ({len(answered)} answered) against "
        f"{result['classifier_accuracy_same_cases']:.3f} "
        f"for the classifier's own threshold on the same cases; latency per call p50 "
        f"{(result['latency_ms']['p50'] or 0) / 1000:.1f} s, p95 {(result['latency_ms']['p95'] or 0) / 1000:.1f} s; "
        f"{result['judge_calls_per_1000_benign_events']} judge calls per 1,000 benign test events; cache hit rate "
        f"on the replayed session {result['replay_cache_hit_rate']:.0%}."
    )
    out = {"summary": summary, "rows": [], **{k: v for k, v in result.items() if k != "rows"}, "cases_detail": rows}
    path = ROOT / "evals" / "results" / "judge-live.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    sys.stderr.write(summary + "\n")


if __name__ == "__main__":
    main()
