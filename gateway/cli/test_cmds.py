"""``mcp-gateway policy test`` (the eval harness) and ``mcp-gateway policy tune``."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal
from xml.sax.saxutils import escape, quoteattr

import typer

from policy.cases import Case, load_cases
from policy.cassette import CassetteCache, ReplayOnlyLLM
from policy.detectors import DetectorRegistry
from policy.engine import Engine
from policy.errors import ModelLoadError, PolicyError
from policy.evaluate import CaseResult, PolicyMetrics, evaluate_cases, score_results
from policy.judge import Judge
from policy.loader import builtin_policy_dir, load_policies
from policy.lockfile import lock_path, write_lock
from policy.subject import SubjectKind
from policy.tuning import tune_policy

from ..runtime import build_judge, build_models
from ..settings import Settings
from ._app import policy_app
from ._common import EXIT_FINDINGS, EXIT_RUNTIME, ConfigOption, cli_errors, emit_json, fail, say, settings_from

Format = Literal["text", "json", "junit"]


def _policy_paths(paths: list[Path] | None, builtin: bool) -> list[Path]:
    chosen = list(paths or [])
    if not chosen:
        chosen = [builtin_policy_dir()] + ([Path("policies")] if Path("policies").is_dir() else [])
    elif builtin:
        chosen.insert(0, builtin_policy_dir())
    return chosen


def _own_cases(loaded: list[Any]) -> list[Path]:
    """Each policy's own cases: `<id>.cases.yaml` (or `<file stem>.cases.yaml`) beside its source."""
    found: list[Path] = []
    for item in loaded:
        source = Path(item.source.path)
        for name in dict.fromkeys((item.policy.id, source.stem)):
            candidate = source.with_name(f"{name}.cases.yaml")
            if candidate.exists():
                found.append(candidate)
                break
    return found


def _distinct(paths: list[Path]) -> list[Path]:
    """`paths` without repeats (a policy's own case file also passed with --cases is read once)."""
    seen: set[Path] = set()
    out: list[Path] = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def _check_cases(cases: list[Case], policies: dict[str, Any]) -> None:
    """Refuse, before anything runs, a case that could not test what it says: an id used twice, a
    policy that is not loaded, or a kind of subject its policy never sees (it would pass as an allow)."""
    first: dict[str, Case] = {}
    for case in cases:
        if case.id in first:
            fail(
                f"{case.where}: case id {case.id!r} is also used at {first[case.id].where}; give every case its own id"
            )
        first[case.id] = case
        if case.kind is not SubjectKind.TOOL_CALL and not case.text.strip() and case.structured is None:
            fail(f"{case.where}: case {case.id!r} is a {case.kind.value} with no text; give it the 'text' to check")
        if case.policy is None:
            continue
        policy = policies.get(case.policy)
        if policy is None:
            fail(
                f"{case.where}: case {case.id!r} names policy {case.policy!r}, which is not loaded "
                f"(loaded: {', '.join(sorted(policies)) or 'none'}); fix its 'policy' or pass that policy's file"
            )
        kinds = policy.scope.kinds
        if kinds and case.kind not in kinds:
            fail(
                f"{case.where}: case {case.id!r} gives policy {case.policy!r} a {case.kind.value}, but the policy "
                f"applies only to {', '.join(k.value for k in kinds)}, so the case could only pass as an allow; "
                "change its kind or its policy"
            )


def _rate_option(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:  # also false for nan
        fail(f"{name} {value}: give a rate from 0 to 1, e.g. {name} 0.9")


def _judge(settings: Settings, no_judge: bool, record: Path | None, replay: Path | None) -> Judge | None:
    if no_judge:
        if record is not None or replay is not None:
            fail("--no-judge excludes --record and --replay (they record and replay the judge's answers)")
        return None
    if replay is not None:
        with cli_errors():
            cache = CassetteCache(replay, "replay")
        return Judge(
            ReplayOnlyLLM(_replay_model(settings.judge.model, cache)),
            cache,
            timeout_s=settings.judge.timeout_s,
            max_calls_per_minute=10**9,
        )
    judge = build_judge(settings)
    if judge is not None and record is not None:
        with cli_errors():
            judge.cache = CassetteCache(record, "record", model=judge.model)
    elif record is not None:
        fail("--record needs a judge model: pass --judge-model")
    return judge


def _replay_model(model: str | None, cache: CassetteCache) -> str:
    """The judge model a replay asks as: the answers are filed under the model that gave them."""
    recorded = sorted(cache.models)
    if model is None:
        if len(recorded) > 1:
            fail(
                f"the cassette {cache.path} holds answers of several judge models ({', '.join(recorded)}); "
                "pick one with --judge-model"
            )
        return recorded[0] if recorded else "cassette"
    if recorded and model not in recorded:
        fail(
            f"the cassette {cache.path} was recorded with --judge-model {' / '.join(recorded)}, not {model}; "
            "replay with that model, or record again with this one"
        )
    return model


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done != total):
            return
        self.last = now
        width = 30
        filled = int(width * done / max(total, 1))
        rate = done / max(now - self.started, 1e-6)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:5.1f} cases/s")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


@policy_app.command("test")
def test_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Policy files/dirs (default: built-ins and ./policies).")
    ] = None,
    cases: Annotated[list[Path] | None, typer.Option("--cases", help="YAML or JSONL case file; repeatable.")] = None,
    builtin: Annotated[bool, typer.Option("--builtin", help="Also load the built-in policies with PATHS.")] = False,
    output_format: Annotated[Format, typer.Option("--format", help="text, json or junit (on stdout).")] = "text",
    no_judge: Annotated[bool, typer.Option("--no-judge", help="Never call the judge.")] = False,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="litellm model for the judge.")] = None,
    judge_api_base: Annotated[str | None, typer.Option("--judge-api-base", help="Judge API base URL.")] = None,
    record: Annotated[Path | None, typer.Option("--record", help="Record judge answers to this cassette.")] = None,
    replay: Annotated[Path | None, typer.Option("--replay", help="Judge answers from this cassette only.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Cases decided in parallel.")] = 1,
    min_f1: Annotated[float | None, typer.Option("--min-f1", help="Fail when a policy's F1 is lower.")] = None,
    max_fpr: Annotated[float | None, typer.Option("--max-fpr", help="Fail when a policy's FPR is higher.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only failing cases and the summary.")] = False,
    split: Annotated[str | None, typer.Option("--split", help="Only cases of this split (train, dev, test).")] = None,
    config: Path | None = ConfigOption,
) -> None:
    """Run labelled cases through the policies; per-policy precision, recall, F1, FPR, tiers, latency, judge cost.

    Exit 1 when a hand-written case fails or a metric misses its threshold (front matter `quality:` or
    --min-f1/--max-fpr; a metric no case can measure misses it), 2 on bad input, 3 when the judge failed
    (on_error decided) or a replayed question is not in the cassette."""
    if record and replay:
        fail("--record and --replay exclude each other")
    _rate_option("--min-f1", min_f1)
    _rate_option("--max-fpr", max_fpr)
    settings = settings_from(config, judge={"model": judge_model, "api_base": judge_api_base})
    with cli_errors():
        policy_paths = _policy_paths(paths, builtin)
        models = build_models(settings)
        registry = DetectorRegistry()
        loaded = load_policies(policy_paths, models=models, detectors=registry)
        for item in loaded:
            if item.warning:
                say(f"warning: {item.warning}")
        if not loaded:
            fail(f"no policies found in {', '.join(map(str, policy_paths))}; pass policy files (.md) or directories")
        case_files = _distinct([*(cases or []), *_own_cases(loaded)])
        all_cases: list[Case] = []
        for path in case_files:
            found = load_cases(path)
            if not found:
                fail(f"{path} holds no cases; write at least one, or leave the file out")
            all_cases += found
    if split:
        if split not in ("train", "dev", "test"):
            fail(f"--split {split!r}: use train, dev or test")
        all_cases = [case for case in all_cases if case.split in (split, None)]
    if not all_cases:
        fail("no cases: pass --cases FILE or add <policy>.cases.yaml beside a policy")
    _check_cases(all_cases, {item.policy.id: item.policy for item in loaded})
    judge = _judge(settings, no_judge, record, replay)
    replay_llm = judge.llm if judge is not None and isinstance(judge.llm, ReplayOnlyLLM) else None
    with cli_errors():
        engine = Engine([item.policy for item in loaded], models=models, detectors=registry, judge=judge)
        engine.warm()  # models and detectors load before the first case, not inside its latency
        results = evaluate_cases(engine, all_cases, workers=workers, progress=_Progress(sys.stderr.isatty()))
    metrics = score_results(results)
    thresholds = {item.policy.id: item.policy.quality for item in loaded}
    problems = _threshold_problems(metrics, thresholds, min_f1, max_fpr)
    failed_hand = [r for r in results if not r.passed and r.case.hand_written]
    if output_format == "json":
        emit_json(_json_report(results, metrics, problems))
    elif output_format == "junit":
        sys.stdout.write(_junit(results))
    _text_report(results, metrics, problems, quiet=quiet or output_format != "text")
    if replay_llm is not None and replay_llm.misses:
        fail(
            f"{replay_llm.misses} judge question(s) were not in the cassette {replay} (asked as judge model "
            f"{replay_llm.model!r}); record it again with --record (the policies, the cases or the model changed "
            "since), or replay with the --judge-model it was recorded with",
            EXIT_RUNTIME,
        )
    broken = [r for r in results if r.failed_tier is not None]
    if judge is not None and broken:
        # The judge (or a model) failed and each policy's on_error decided instead: these figures do not
        # measure the policies, and a --record cassette lacks those answers.
        first = broken[0]
        fail(
            f"{len(broken)} case(s) were decided by on_error because a tier failed, first {first.case.id!r}: "
            f"{first.failed_tier.reason if first.failed_tier else ''}; check the judge (mcp-gateway doctor) "
            "or pass --no-judge",
            EXIT_RUNTIME,
        )
    if failed_hand or problems:
        raise typer.Exit(EXIT_FINDINGS)


def _threshold_problems(
    metrics: dict[str, PolicyMetrics], quality: dict[str, Any], min_f1: float | None, max_fpr: float | None
) -> list[str]:
    """Each threshold a policy misses, including one its cases cannot measure (no case to compute it from)."""
    problems: list[str] = []
    for policy, m in metrics.items():
        declared = quality.get(policy)
        wanted = (
            ("f1", "F1", min_f1 if min_f1 is not None else getattr(declared, "min_f1", None), "below", "violation"),
            (
                "fpr",
                "false-positive rate",
                max_fpr if max_fpr is not None else getattr(declared, "max_fpr", None),
                "above",
                "allowed",
            ),
            ("recall", "recall", getattr(declared, "min_recall", None), "below", "violation"),
        )
        for metric, label, bound, side, needed in wanted:
            if bound is None:
                continue
            if not m.defined(metric):
                problems.append(
                    f"{policy}: {label} cannot be measured (no {needed} case); add some or drop the threshold"
                )
                continue
            value = getattr(m, metric)
            if (value < bound) if side == "below" else (value > bound):
                problems.append(f"{policy}: {label} {value:.3f} is {side} {bound}")
    return problems


def _shown(m: PolicyMetrics, metric: str, width: int) -> str:
    return f"{getattr(m, metric):>{width}.3f}" if m.defined(metric) else f"{'n/a':>{width}}"


def _text_report(
    results: list[CaseResult], metrics: dict[str, PolicyMetrics], problems: list[str], *, quiet: bool
) -> None:
    for result in results:
        if result.passed and quiet:
            continue
        if result.passed:
            say(f"PASS {result.case.id}")
        else:
            say(
                f"FAIL {result.case.id}: expected {result.case.expect}, got {result.got} "
                f"({result.tier}: {result.reason[:160]})"
            )
    say()
    say(
        f"{'policy':<22}{'cases':>7}{'tp':>6}{'fp':>6}{'tn':>6}{'fn':>6}{'prec':>7}{'recall':>8}{'f1':>7}"
        f"{'fpr':>7}{'p50 ms':>9}{'p95 ms':>9}  tiers"
    )
    for policy, m in sorted(metrics.items()):
        tiers = ", ".join(f"{tier} {count}" for tier, count in m.tiers.most_common())
        judge = f"; judge calls {m.judge_calls}, cache hits {m.cache_hits}" if m.judge_calls or m.cache_hits else ""
        if m.judge_cost_usd is not None:
            judge += f", judge cost ${m.judge_cost_usd:.6f}"
        say(
            f"{policy:<22}{m.tp + m.fp + m.tn + m.fn:>7}{m.tp:>6}{m.fp:>6}{m.tn:>6}{m.fn:>6}{_shown(m, 'precision', 7)}"
            f"{_shown(m, 'recall', 8)}{_shown(m, 'f1', 7)}{_shown(m, 'fpr', 7)}{m.percentile(50):>9.2f}"
            f"{m.percentile(95):>9.2f}  {tiers}{judge}"
        )
    failed = sum(not r.passed for r in results)
    say(
        f"\n{len(results) - failed} passed, {failed} failed"
        + (f"; {len(problems)} threshold(s) missed" if problems else "")
    )
    for problem in problems:
        say(f"THRESHOLD {problem}")


def _json_report(results: list[CaseResult], metrics: dict[str, PolicyMetrics], problems: list[str]) -> dict[str, Any]:
    return {
        "policies": {policy: m.as_dict() for policy, m in sorted(metrics.items())},
        "cases": [
            {
                "id": r.case.id,
                "policy": r.case.policy,
                "source": r.case.source,
                "split": r.case.split,
                "tags": r.case.tags,
                "expected": r.case.expect,
                "got": r.got,
                "tier": r.tier,
                "score": r.score,
                "latency_ms": round(r.latency_ms, 3),
                "reason": r.reason[:300],
            }
            for r in results
        ],
        "threshold_problems": problems,
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
    }


# XML 1.0 cannot hold these characters at all, escaped or not
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _junit(results: list[CaseResult]) -> str:
    by_policy: dict[str, list[CaseResult]] = {}
    for result in results:
        by_policy.setdefault(result.policy, []).append(result)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>"]
    for policy, items in sorted(by_policy.items()):
        failures = sum(not r.passed for r in items)
        lines.append(f'  <testsuite name={quoteattr(policy)} tests="{len(items)}" failures="{failures}">')
        for r in items:
            name = quoteattr(_xml_text(r.case.id))
            attrs = f'classname={quoteattr(_xml_text(policy))} name={name} time="{r.latency_ms / 1000:.4f}"'
            if r.passed:
                lines.append(f"    <testcase {attrs}/>")
            else:
                message = _xml_text(f"expected {r.case.expect}, got {r.got} ({r.tier})")
                lines.append(
                    f"    <testcase {attrs}><failure message={quoteattr(message)}>"
                    f"{escape(_xml_text(r.reason[:500]))}</failure></testcase>"
                )
        lines.append("  </testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"


@policy_app.command("tune")
def tune_cmd(
    policy_file: Annotated[Path, typer.Argument(help="The policy source (.md) whose lock file gets the thresholds.")],
    cases: Annotated[list[Path], typer.Option("--cases", help="Labelled dev cases (YAML or JSONL); repeatable.")],
    target_fpr: Annotated[float, typer.Option("--target-fpr", help="False-positive rate to calibrate to.")] = 0.01,
    split: Annotated[str | None, typer.Option("--split", help="Only cases of this split (default dev).")] = "dev",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, do not write the lock.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON report on stdout.")] = False,
    config: Path | None = ConfigOption,
) -> None:
    """Calibrate a policy's classifier thresholds on labelled dev cases and write them into its lock file."""
    if not 0.0 <= target_fpr < 1.0:  # also false for nan
        fail(f"--target-fpr {target_fpr}: give a false-positive rate from 0 up to (not including) 1, e.g. 0.01")
    if policy_file.is_dir() or policy_file.suffix != ".md":
        fail(f"{policy_file}: tune one policy at a time; pass its source file (<policy>.md), not a directory")
    if split is not None and split not in ("train", "dev", "test"):
        fail(f"--split {split!r}: use train, dev or test")
    settings = settings_from(config)
    with cli_errors():
        models = build_models(settings)
        [item] = load_policies([policy_file], models=models, strict=True)
        dev = [c for path in cases for c in load_cases(path) if split is None or c.split in (split, None)]
        try:
            tuned, report = tune_policy(item.policy, dev, models, target_fpr=target_fpr)
        except PolicyError as exc:  # too few cases, or nothing to tune: the input, not the machine
            if isinstance(exc, ModelLoadError):
                raise
            fail(str(exc))
    say(f"{report.policy}: {report.positives} violation / {report.negatives} allowed dev cases")
    say(
        f"  before: allow_below={report.before.allow_below} violate_above={report.before.violate_above} "
        f"decide_at={report.before.decide_at}"
    )
    say(
        f"  after:  allow_below={report.after.allow_below:.4f} violate_above={report.after.violate_above:.4f} "
        f"decide_at={report.after.decide_at}"
    )
    say(f"  at decide_at on dev: FPR {report.dev_fpr:.4f}, recall {report.dev_recall:.4f}, F1 {report.dev_f1:.4f}")
    if as_json:
        emit_json(
            {
                "policy": report.policy,
                "before": report.before.model_dump(),
                "after": report.after.model_dump(),
                "dev": {"fpr": report.dev_fpr, "recall": report.dev_recall, "f1": report.dev_f1},
            }
        )
    if not dry_run:
        write_lock(tuned, lock_path(policy_file))
        say(f"  wrote {lock_path(policy_file)}")
