"""Rendering the scorecard JSON as ``evals/SCORECARD.md``."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"  # None: no case to compute it from


def _row(name: str, m: dict[str, Any]) -> str:
    rates = " | ".join(_rate(m[key]) for key in ("precision", "recall", "f1", "fpr"))
    return f"| {name} | {m['cases']} | {m['tp']} | {m['fp']} | {m['tn']} | {m['fn']} | {rates} |"


_HEAD = (
    "| | cases | tp | fp | tn | fn | precision | recall | F1 | FPR |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _verdict_on_target(suite: str, entry: dict[str, Any]) -> str:
    m = entry["overall"]
    if suite == "prompt-injection":
        benign = [s for name, s in entry["by_source"].items() if s["tp"] + s["fn"] == 0]
        fp = sum(s["fp"] for s in benign)
        tn = sum(s["tn"] for s in benign)
        benign_fpr = fp / (fp + tn) if fp + tn else 0.0
        ok = m["f1"] >= 0.95 and benign_fpr <= 0.01
        gap = "met" if m["f1"] >= 0.95 else f"missed by {0.95 - m['f1']:.3f}"
        return (
            f"F1 {m['f1']:.3f} (target 0.95; {gap}), FPR on benign-only sources {benign_fpr:.3%} "
            f"(target ≤ 1%) → **{'met' if ok else 'not met'}**"
        )
    if suite == "tool-poisoning":
        ok = m["recall"] >= 0.9 and m["fpr"] <= 0.02
        state = "met" if ok else "not met"
        return f"recall {m['recall']:.3f} (target 0.90), FPR {m['fpr']:.3%} (target ≤ 2%) → **{state}**"
    if suite == "secrets":
        ok = m["recall"] >= 0.98 and m["fpr"] <= 0.01
        state = "met" if ok else "not met"
        return f"recall {m['recall']:.3f} (target 0.98), FPR {m['fpr']:.3%} (target ≤ 1%) → **{state}**"
    if suite == "pii":
        span = entry.get("spans", {}).get("all", {})
        f1 = span.get("f1", m["f1"])
        return f"span F1 {f1:.3f}, case F1 {m['f1']:.3f} (target 0.85) → **{'met' if f1 >= 0.85 else 'not met'}**"
    return f"F1 {m['f1']:.3f}, FPR {m['fpr']:.3%}"


def render(
    report: dict[str, Any],
    judge: dict[str, Any] | None,
    bench: dict[str, Any] | None,
    notes: str = "",
    live: dict[str, Any] | None = None,
) -> str:
    lines = [
        "# Scorecard",
        "",
        f"Generated {report['generated']} by `python -m evals.scorecard` from the test splits of the datasets in "
        "`../shared/data` (built by `python -m evals.build`; training never saw these rows). Built-in policies as "
        "shipped, **no judge**: the classifier's own decision threshold settles the unsure band. Case counts "
        "include only cases of the kinds each policy applies to.",
        "",
        "## Targets",
        "",
    ]
    for suite, entry in report["suites"].items():
        lines.append(f"- **{suite}** — {report['targets'].get(suite, '')}: {_verdict_on_target(suite, entry)}")
    for suite, entry in report["suites"].items():
        lines += ["", f"## {suite}", "", _HEAD, _row("**all**", entry["overall"])]
        for source, m in entry["by_source"].items():
            lines.append(_row(source, m))
        if entry.get("by_construction"):
            lines += ["", "By construction (indirect cases: where and how the attack was placed):", "", _HEAD]
            for tag, m in entry["by_construction"].items():
                lines.append(_row(tag, m))
        if entry.get("spans"):
            lines += [
                "",
                "PII spans (a predicted span matches a gold span of the same type covering over half of it):",
                "",
                "| type | tp | fp | fn | precision | recall | F1 |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for label, s in entry["spans"].items():
                lines.append(
                    f"| {label} | {s['tp']} | {s['fp']} | {s['fn']} | {s['precision']:.3f} | "
                    f"{s['recall']:.3f} | {s['f1']:.3f} |"
                )
        tiers = entry["overall"]["tiers"]
        lines += [
            "",
            "Decided by: "
            + ", ".join(f"{t} {n}" for t, n in tiers.items())
            + ". Latency per tier (ms): "
            + ", ".join(f"{t} p50 {v['p50']:.2f} / p95 {v['p95']:.2f}" for t, v in entry["tier_latency_ms"].items())
            + f". Whole suite: {entry['seconds']} s.",
        ]
        if entry["misses"]:
            lines += ["", "<details><summary>First misses</summary>", ""]
            lines += [
                f"- `{m['id']}` expected {m['expected']}, got {m['got']} (score {m['score']})"
                for m in entry["misses"][:12]
            ]
            lines += ["", "</details>"]
    cross = report.get("cross_dataset")
    if cross:
        lines += [
            "",
            "## Cross-dataset (prompt injection)",
            "",
            "The head retrained without each group of sources, its cut set at 1% FPR on the other groups' dev "
            "split, then scored on the held-out group's test split. This is the honest estimate for traffic "
            "unlike the training data; the in-distribution tables above are an upper bound."
            + (f" Run {report['cross_dataset_generated']}." if report.get("cross_dataset_generated") else ""),
            "",
            "| held out | train cases | cases | precision | recall | F1 | FPR | AUC |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for group, m in cross.items():
            fpr = "n/a" if m["fpr"] is None else f"{m['fpr']:.3f}"
            auc = "n/a" if m["auc"] is None else f"{m['auc']:.3f}"
            lines.append(
                f"| {group} | {m['train_cases']} | {m['cases']} | {m['precision']:.3f} | {m['recall']:.3f} | "
                f"{m['f1']:.3f} | {fpr} | {auc} |"
            )
    if judge:
        lines += ["", "## The judge, measured", "", judge.get("summary", "")]
        for row in judge.get("rows", []):
            lines.append(f"- {row}")
    if live:
        lines += [
            "",
            "## Built-in and example policies compiled by the local model",
            "",
            f"`tests/live` compiled every policy in `policies/` and `policies/examples/` with `{live['model']}`, "
            f"then ran `mcp-gateway policy test` on their own {live['cases']} hand-written cases with the judge on "
            f"({live['judge_calls']} judge calls). Cases the compiled policy got wrong: "
            f"{', '.join(f'`{c}`' for c in live['failed_cases']) or 'none'}.",
            "",
            "| policy | compile | rules | tp | fp | tn | fn | judge calls | decided by |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for policy_id, row in sorted(live["policies"].items()):
            tiers = ", ".join(f"{k} {v}" for k, v in sorted((row.get("tiers") or {}).items()))
            status = "failed (shipped offline lock used)" if row["status"] == "failed" else row["status"]
            rules = "–" if row.get("rules") is None else row["rules"]
            lines.append(
                f"| {policy_id} | {status} | {rules} | {row['tp']} | {row['fp']} | {row['tn']} | "
                f"{row['fn']} | {row['judge_calls']} | {tiers} |"
            )
        errors = [(pid, row["error"]) for pid, row in sorted(live["policies"].items()) if row.get("error")]
        if errors:
            lines += ["", "Why a compile failed:", ""] + [
                f"- `{pid}`: {' '.join(error.split())}" for pid, error in errors
            ]
    if bench:
        lines += [
            "",
            "## Latency through the gateway",
            "",
            "Measured by `bash evals/bench/run.sh` "
            f"({bench.get('measured', '')}); added = gateway minus direct, interleaved in one run.",
            "",
            bench.get("summary", ""),
        ]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"
