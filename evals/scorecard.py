"""The scorecard: ``python -m evals.scorecard`` → ``evals/SCORECARD.md`` and ``evals/runs/scorecard.json``.

Everything is measured on the test splits built by ``python -m evals.build`` (training never sees
them), with the built-in policies as shipped and no judge: per policy and per source,
precision/recall/F1/FPR, which tier decided, latency per tier; span-level F1 for PII; and
cross-dataset figures for the injection head (trained without a source group, tested on it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policy.cases import Case, load_cases
from policy.classifier import EmbedderPair
from policy.detectors import DetectorRegistry
from policy.embeddings import MiniLMEmbedder, StaticEmbedder
from policy.engine import Engine
from policy.evaluate import CaseResult, PolicyMetrics, evaluate_cases, score_results
from policy.loader import builtin_policy_dir, load_policies

from .cross import cross_dataset
from .report import render

logger = logging.getLogger("evals.scorecard")

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "evals" / ".work"
SUITES = ("prompt-injection", "tool-poisoning", "content-safety", "secrets", "pii")
TARGETS = {
    "prompt-injection": "F1 ≥ 0.95 with FPR ≤ 1% on benign tool results and tool descriptions",
    "tool-poisoning": "recall ≥ 0.9 at ≤ 2% false positives on real tool descriptions",
    "secrets": "recall ≥ 0.98 with ≤ 1% false positives on look-alikes",
    "pii": "F1 ≥ 0.85 on the synthetic PII set",
    "content-safety": "no numeric target; over-blocking of safe prompts (XSTest) reported",
}


def suite_cases(suite: str, split: str, cases_dir: Path) -> list[Case]:
    out: list[Case] = []
    for path in sorted((cases_dir / suite).glob(f"*.{split}.jsonl")):
        out.extend(load_cases(path, hand_written=False))
    return out


def _metrics_dict(metrics: PolicyMetrics) -> dict[str, Any]:
    return metrics.as_dict()


def by_source(results: Sequence[CaseResult]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        groups[result.case.source or "?"].append(result)
    return {
        source: _metrics_dict(next(iter(score_results(items).values()))) for source, items in sorted(groups.items())
    }


def by_tag(results: Sequence[CaseResult], prefixes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        for tag in result.case.tags:
            if tag.startswith(prefixes):
                groups[tag].append(result)
    return {
        tag: _metrics_dict(next(iter(score_results(items).values())))
        for tag, items in sorted(groups.items())
        if len(items) >= 10
    }


def tier_latency(results: Sequence[CaseResult]) -> dict[str, dict[str, float]]:
    per_tier: dict[str, list[float]] = defaultdict(list)
    for result in results:
        for verdict in result.verdicts:
            for step in verdict.trace:
                per_tier[step.tier.value].append(step.latency_ms)
    return {
        tier: {
            "n": len(values),
            "p50": round(float(np.percentile(values, 50)), 3),
            "p95": round(float(np.percentile(values, 95)), 3),
        }
        for tier, values in sorted(per_tier.items())
    }


def pii_spans(cases: Sequence[Case], cases_dir: Path, registry: DetectorRegistry) -> dict[str, Any]:
    gold_path = cases_dir / "pii" / "test.spans.jsonl"
    gold = {}
    for line in gold_path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            record = json.loads(line)
            gold[record["id"]] = [(s, e, str(label).lower()) for s, e, label in record["spans"]]
    detector = registry.get("pii")
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        if case.id not in gold:
            continue
        predicted = [(span.start, span.end, _canonical(span.label)) for span in detector.scan("text", case.text)]
        expected = [(s, e, _canonical(label)) for s, e, label in gold[case.id]]
        matched_pred: set[int] = set()
        for s, e, label in expected:
            hit = next(
                (
                    i
                    for i, (ps, pe, pl) in enumerate(predicted)
                    if i not in matched_pred and pl == label and min(e, pe) - max(s, ps) > 0.5 * (e - s)
                ),
                None,
            )
            if hit is None:
                counts[label]["fn"] += 1
            else:
                matched_pred.add(hit)
                counts[label]["tp"] += 1
        for i, (_, _, label) in enumerate(predicted):
            if i not in matched_pred:
                counts[label]["fp"] += 1
    table = {}
    totals: Counter[str] = Counter()
    for label, c in sorted(counts.items()):
        totals.update(c)
        table[label] = _prf(c)
    table["all"] = _prf(totals)
    return table


_CANONICAL = {
    "email_address": "email",
    "email": "email",
    "phone_number": "phone",
    "phone": "phone",
    "credit_card": "credit-card",
    "credit-card": "credit-card",
    "us_ssn": "us-ssn",
    "us-ssn": "us-ssn",
    "iban_code": "iban",
    "iban": "iban",
    "ip_address": "ip-address",
    "ip-address": "ip-address",
    "person": "person",
}


def _canonical(label: str) -> str:
    key = label.lower()
    return _CANONICAL.get(key, _CANONICAL.get(key.replace("-", "_"), key))


def _prf(c: Counter[str]) -> dict[str, Any]:
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def run(cases_dir: Path, out_dir: Path, workers: int, suites: Sequence[str], cross: bool) -> dict[str, Any]:
    minilm = MiniLMEmbedder(threads=2)
    models = EmbedderPair(minilm=minilm, static=StaticEmbedder(minilm))
    registry = DetectorRegistry()
    loaded = load_policies([builtin_policy_dir()], models=models, detectors=registry, strict=True)
    engine = Engine([item.policy for item in loaded], models=models, detectors=registry)
    engine.warm()
    report: dict[str, Any] = {"generated": time.strftime("%Y-%m-%d"), "suites": {}, "targets": TARGETS}
    per_case: list[dict[str, Any]] = []
    for suite in suites:
        policy = next(p for p in engine.policies if p.id == suite)
        cases = suite_cases(suite, "test", cases_dir)
        in_scope = [c for c in cases if c.kind in policy.scope.kinds]
        logger.info(
            "%s: %d test cases (%d outside the policy's kinds, not counted)",
            suite,
            len(cases),
            len(cases) - len(in_scope),
        )
        started = time.perf_counter()
        results = evaluate_cases(engine, in_scope, workers=workers)
        overall = score_results(results)[suite]
        entry: dict[str, Any] = {
            "cases": len(in_scope),
            "excluded_out_of_scope": len(cases) - len(in_scope),
            "overall": overall.as_dict(),
            "by_source": by_source(results),
            "by_construction": by_tag(results, ("wrapper:", "style:", "lang:", "carrier:", "hard-negative")),
            "tier_latency_ms": tier_latency(results),
            "seconds": round(time.perf_counter() - started, 1),
            # ids only: the rows themselves stay in ../shared/data
            "misses": [
                {"id": r.case.id, "expected": r.case.expect, "got": r.got, "score": r.score}
                for r in results
                if not r.passed
            ][:25],
        }
        if suite == "pii":
            entry["spans"] = pii_spans(in_scope, cases_dir, registry)
        report["suites"][suite] = entry
        per_case.extend(
            {
                "suite": suite,
                "id": r.case.id,
                "source": r.case.source,
                "tags": r.case.tags,
                "expected": r.case.expect,
                "got": r.got,
                "score": r.score,
                "tier": r.tier,
                "latency_ms": round(r.latency_ms, 3),
            }
            for r in results
        )
        logger.info("%s: %s", suite, {k: overall.as_dict()[k] for k in ("precision", "recall", "f1", "fpr")})
    last = ROOT / "evals" / "results" / "test-run.json"
    previous = json.loads(last.read_text(encoding="utf-8")) if last.exists() else None
    if previous is not None and set(suites) != set(SUITES):
        # a run of some suites keeps the others from the last run, in the usual order
        kept = {name: entry for name, entry in previous["report"]["suites"].items() if name not in suites}
        report["suites"] = {name: report["suites"].get(name) or kept[name] for name in SUITES
                            if name in report["suites"] or name in kept}
        per_case = [row for row in previous["cases"] if row["suite"] not in suites] + per_case
    if cross:
        report["cross_dataset"] = cross_dataset(cases_dir, models, WORK / "embeddings")
        report["cross_dataset_generated"] = report["generated"]
    # --no-cross keeps the last run's table (it depends on the training data and the heads only)
    elif previous is not None and previous["report"].get("cross_dataset"):
        report["cross_dataset"] = previous["report"]["cross_dataset"]
        report["cross_dataset_generated"] = previous["report"].get(
            "cross_dataset_generated", previous["report"]["generated"]
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scorecard.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    # The run the notebook reads: scores and labels per case id, no dataset text.
    results_dir = ROOT / "evals" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "test-run.json").write_text(
        json.dumps({"report": report, "cases": per_case}) + "\n", encoding="utf-8"
    )
    write_markdown(report)
    return report


def write_markdown(report: dict[str, Any]) -> None:
    live = ROOT / "evals" / "results" / "judge-live.json"
    judge = json.loads(live.read_text(encoding="utf-8")) if live.exists() else None
    bench = ROOT / "evals" / "bench" / "results.json"
    bench_data = json.loads(bench.read_text(encoding="utf-8")) if bench.exists() else None
    live_path = ROOT / "evals" / "results" / "live-policies.json"
    live = json.loads(live_path.read_text(encoding="utf-8")) if live_path.exists() else None
    notes_path = ROOT / "evals" / "scorecard-notes.md"
    notes = notes_path.read_text(encoding="utf-8") if notes_path.exists() else ""
    (ROOT / "evals" / "SCORECARD.md").write_text(render(report, judge, bench_data, notes, live), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=WORK / "cases")
    parser.add_argument("--out", type=Path, default=ROOT / "evals" / "runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--suite", action="append", choices=SUITES,
                        help="run only this suite (repeatable); the others are kept from the last run")
    parser.add_argument("--no-cross", action="store_true",
                        help="skip the cross-dataset retraining and keep the last run's table")
    parser.add_argument("--render-only", action="store_true", help="rewrite SCORECARD.md from the last run")
    args = parser.parse_args(argv)
    if args.render_only:
        write_markdown(json.loads((ROOT / "evals" / "results" / "test-run.json").read_text())["report"])
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    if not (args.cases / "manifest.json").exists():
        from .datasets import build_all

        build_all(args.cases)
    run(args.cases, args.out, args.workers, args.suite or SUITES, not args.no_cross)


if __name__ == "__main__":
    main()
