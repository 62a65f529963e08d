"""``mcp-gateway policy compile | check | explain``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from policy.compiler import compile_policy
from policy.detectors import DetectorRegistry
from policy.errors import CompileError, LLMUnavailableError, PolicyError
from policy.llm import LiteLLMClient
from policy.loader import discover_sources
from policy.lockfile import LockStatus, lock_path, lock_status, read_lock, write_lock
from policy.source import load_source
from policy.subject import Subject

from ..runtime import build_models, build_runtime
from ._app import policy_app
from ._common import (
    EXIT_FINDINGS,
    EXIT_RUNTIME,
    EXIT_USAGE,
    ConfigOption,
    cli_errors,
    emit_json,
    fail,
    say,
    settings_from,
)
from .render import explain_verdict, summarise_policy

PathsArg = Annotated[list[Path] | None, typer.Argument(help="Policy files or directories (default: ./policies).")]
PoliciesOpt = Annotated[
    list[Path] | None, typer.Option("--policies", help="Extra policy file or directory; repeatable.")
]
JudgeModelOpt = Annotated[str | None, typer.Option("--judge-model", help="litellm model for the judge.")]
JudgeBaseOpt = Annotated[str | None, typer.Option("--judge-api-base", help="API base URL of the judge model.")]


def _default_paths(paths: list[Path] | None) -> list[Path]:
    if paths:
        return paths
    if Path("policies").is_dir():
        return [Path("policies")]
    fail("no policy paths given and there is no ./policies directory; pass files or directories")


@policy_app.command("compile")
def compile_cmd(
    paths: PathsArg = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="litellm model string for the compiler.")] = None,
    api_base: Annotated[str | None, typer.Option("--api-base", help="API base URL (local servers).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No LLM: build from front matter and examples.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Only report stale or missing locks (exit 1); offline.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Recompile even when the lock is fresh.")] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait for each LLM answer (raise it for a slow local model)."),
    ] = 180.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    config: Path | None = ConfigOption,
) -> None:
    """Compile English policies into reviewable lock files (<name>.lock.json beside each source)."""
    settings = settings_from(config)
    with cli_errors():
        sources = [load_source(path) for path in discover_sources(_default_paths(paths))]
    if not sources:
        fail("no policy files (*.md) found in the given paths")
    if check:
        stale = [(source, lock_status(source)) for source in sources]
        bad = [(s, status) for s, status in stale if status is not LockStatus.FRESH]
        for source, status in stale:
            say(f"{status.value:<8} {source.path}")
        if as_json:
            emit_json({"policies": [{"path": s.path, "id": s.id, "status": st.value} for s, st in stale]})
        if bad:
            say(f"{len(bad)} lock file(s) out of date: run 'mcp-gateway policy compile'")
            raise typer.Exit(EXIT_FINDINGS)
        return
    model = model or settings.judge.model
    if not offline and not model:
        fail("no compiler model: pass --model (e.g. ollama_chat/qwen2.5-coder:1.5b) or --offline")
    llm = (
        None
        if offline
        else LiteLLMClient(str(model), api_base=api_base or settings.judge.api_base, mode=settings.judge.mode)
    )
    registry = DetectorRegistry()
    models = build_models(settings)
    results: list[dict[str, Any]] = []
    mismatched = 0
    failed: list[str] = []
    for source in sources:
        target = lock_path(source.path)
        status = lock_status(source)
        if not force and status is LockStatus.FRESH:
            say(f"unchanged {source.id} ({target})")
            results.append({"id": source.id, "lock": str(target), "status": "unchanged"})
            continue
        say(f"compiling {source.id} with {'no LLM (offline)' if llm is None else llm.model} …")
        with cli_errors():
            try:
                policy = compile_policy(source, llm=llm, models=models, detectors=registry, timeout=timeout)
            except CompileError as exc:
                if isinstance(exc.__cause__, LLMUnavailableError):
                    raise  # a model that is down or too slow fails every policy alike: stop here
                # One policy that cannot be compiled does not stop the others; its old lock stays untouched.
                failed.append(source.id)
                say(f"error: {exc}")
                results.append({"id": source.id, "lock": str(target), "status": "failed", "error": str(exc)})
                continue
        if status is LockStatus.INVALID and target.is_file():
            # a hand edit gone wrong may hold compiled rules or tuned thresholds: keep it, do not drop it
            kept = target.with_name(target.name + ".invalid")
            kept.write_bytes(target.read_bytes())
            say(f"          the invalid lock it replaces was kept as {kept}")
        tuned = _tuned_thresholds(target) if status is not LockStatus.INVALID else None
        write_lock(policy, target)
        say(f"compiled  {source.id}: {summarise_policy(policy)} → {target}")
        if tuned is not None and policy.classifier is not None:
            say(
                f"WARNING   {source.id}: the lock held thresholds tuned with 'policy tune' ({tuned}); the new "
                f"classifier has its own ({policy.classifier.thresholds_source}). Tune it again on your dev cases: "
                f"mcp-gateway policy tune {source.path} --cases FILE"
            )
        for item in policy.provenance.omitted:
            say(f"          left out: {item}")
        for rule in policy.verification.escalated_rules:
            say(
                f"          rule {rule} contradicted the examples and could not be repaired: it now only "
                "escalates to the judge"
            )
        if policy.verification.status == "mismatch":
            mismatched += 1
            say(f"WARNING   {source.id} contradicts its own examples; review {target}:")
            for mismatch in policy.verification.mismatches:
                say(
                    f"          line {mismatch.line}: expected {mismatch.expected}, got {mismatch.got} "
                    f"({mismatch.tier}): {mismatch.example[:100]}"
                )
        results.append(
            {
                "id": source.id,
                "lock": str(target),
                "status": policy.verification.status,
                "verification": policy.verification.model_dump(mode="json"),
            }
        )
    if as_json:
        emit_json({"policies": results})
    if failed:
        say(
            f"{len(failed)} policy file(s) failed to compile ({', '.join(failed)}); their lock files were not "
            "written (an earlier lock stays in use). Fix what the errors above name, or compile with a larger model."
        )
        raise typer.Exit(EXIT_RUNTIME)
    if mismatched:
        raise typer.Exit(EXIT_FINDINGS)


def _read_subjects(event: Path | None) -> list[Subject]:
    try:
        raw = event.read_text(encoding="utf-8") if event else sys.stdin.read()
    except OSError as exc:
        fail(f"{event}: cannot read the event file ({exc.strerror})")
    if not raw.strip():
        fail("no subject given: pipe a JSON subject on stdin or pass --event FILE")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = event or "stdin"
        fail(f"{where}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})")
    items = data if isinstance(data, list) else [data]
    subjects = []
    for index, item in enumerate(items):
        try:
            subjects.append(Subject.model_validate(item))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"]) or "(root)"
            fail(
                f"subject {index}: field {field!r}: {error['msg']}. A subject looks like "
                '{"kind": "tool_call", "tool": "send_email", "arguments": {"to": "x@y.z"}}'
            )
    return subjects


def _run_check(
    event: Path | None,
    policies: list[Path] | None,
    only: list[str] | None,
    no_builtin: bool,
    judge_model: str | None,
    judge_api_base: str | None,
    no_judge: bool,
    config: Path | None,
) -> tuple[list[Subject], list[list[Any]]]:
    subjects = _read_subjects(event)
    settings = settings_from(
        config, judge={"model": judge_model, "api_base": judge_api_base}, builtin_policies=False if no_builtin else None
    )
    with cli_errors():
        runtime = build_runtime(settings, extra_policies=policies or [], with_judge=not no_judge)
        for warning in runtime.warnings:
            say(f"warning: {warning}")
        engine = runtime.engine
        if only:
            known = {p.id for p in engine.policies}
            missing = sorted(set(only) - known)
            if missing:
                fail(
                    f"--only names unknown policies: {', '.join(missing)}; known: {', '.join(sorted(known))}",
                    EXIT_USAGE,
                )
            engine.policies = [p for p in engine.policies if p.id in only]
        verdicts = [engine.check(subject) for subject in subjects]
    return subjects, verdicts


EventOpt = Annotated[Path | None, typer.Option("--event", help="Subject JSON file (default: stdin).")]
OnlyOpt = Annotated[list[str] | None, typer.Option("--only", help="Check only this policy id; repeatable.")]
NoBuiltinOpt = Annotated[bool, typer.Option("--no-builtin", help="Skip the built-in policies.")]
NoJudgeOpt = Annotated[bool, typer.Option("--no-judge", help="Never call the judge.")]


@policy_app.command("check")
def check_cmd(
    event: EventOpt = None,
    policies: PoliciesOpt = None,
    only: OnlyOpt = None,
    no_builtin: NoBuiltinOpt = False,
    judge_model: JudgeModelOpt = None,
    judge_api_base: JudgeBaseOpt = None,
    no_judge: NoJudgeOpt = False,
    fail_on_violation: Annotated[
        bool, typer.Option("--fail-on-violation", help="Exit 1 if any policy is violated.")
    ] = False,
    config: Path | None = ConfigOption,
) -> None:
    """Judge a subject (JSON on stdin or --event) against the policies; verdicts as JSON on stdout."""
    subjects, verdicts = _run_check(event, policies, only, no_builtin, judge_model, judge_api_base, no_judge, config)
    out = [
        {"subject": s.model_dump(mode="json"), "verdicts": [v.model_dump(mode="json") for v in vs]}
        for s, vs in zip(subjects, verdicts, strict=True)
    ]
    emit_json(out[0] if len(out) == 1 else out)
    if fail_on_violation and any(v.violated for vs in verdicts for v in vs):
        raise typer.Exit(EXIT_FINDINGS)


@policy_app.command("explain")
def explain_cmd(
    event: EventOpt = None,
    policies: PoliciesOpt = None,
    only: OnlyOpt = None,
    no_builtin: NoBuiltinOpt = False,
    judge_model: JudgeModelOpt = None,
    judge_api_base: JudgeBaseOpt = None,
    no_judge: NoJudgeOpt = False,
    reveal: Annotated[bool, typer.Option("--reveal", help="Show masked evidence in clear.")] = False,
    config: Path | None = ConfigOption,
) -> None:
    """The same as `check`, as a readable trace: which tier decided, scores, evidence, rationale."""
    subjects, verdicts = _run_check(event, policies, only, no_builtin, judge_model, judge_api_base, no_judge, config)
    for subject, subject_verdicts in zip(subjects, verdicts, strict=True):
        label = f"{subject.kind.value} {subject.tool}".strip()
        # The trace is what this command is for, so it goes to stdout (pipe it into a pager or a file).
        say(f"subject: {label}" + (f" on {subject.server}" if subject.server else ""), err=False)
        if not subject_verdicts:
            say("  no policy applies to this subject", err=False)
        for verdict in subject_verdicts:
            say(explain_verdict(verdict, subject, reveal=reveal), err=False)
        say(err=False)


def _tuned_thresholds(lock: Path) -> str | None:
    """The thresholds 'policy tune' wrote into `lock`, as text, or None (none tuned, or no readable lock)."""
    try:
        previous = read_lock(lock)
    except (OSError, PolicyError):
        return None
    classifier = previous.classifier
    if classifier is None or classifier.thresholds_source != "tuned":
        return None
    t = classifier.thresholds
    return f"allow_below={t.allow_below}, violate_above={t.violate_above}, decide_at={t.decide_at}"
