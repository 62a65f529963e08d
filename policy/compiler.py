"""English policy source → `CompiledPolicy`.

With an LLM (through `StructuredLLM`): scope, deterministic rules, generated paraphrases and hard
negatives, and a judge rubric; then verified against the source's own examples, with rule
conflicts fed back for repair and unrepairable rules demoted to "escalate to the judge".
Offline: what the front matter and examples give, with a list of what was left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from .classifier import EmbedderPair
from .compiled import (
    ClassifierSpec,
    CompiledPolicy,
    Exemplar,
    Head,
    JudgeSpec,
    Provenance,
    Scope,
    Verification,
    untuned_screen,
)
from .conditions import Condition, Rule, evaluate
from .detectors import DetectorRegistry
from .engine import Engine
from .errors import CompileError, LLMError
from .llm import StructuredLLM
from .source import Example, PolicySource, Thresholds
from .subject import Subject, SubjectKind
from .verify import RuleConflict, filter_exemplars, rule_conflicts, verify_policy

__all__ = ["PROMPT_VERSION", "DraftPolicy", "RuleRepair", "compile_policy", "render_example"]

PROMPT_VERSION = 1
T = TypeVar("T", bound=BaseModel)


class DraftExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = ""
    tool: str = ""
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class DraftRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    when: Condition
    effect: Literal["violate", "allow", "escalate"]


class DraftPolicy(BaseModel):
    """What the compiler asks the LLM for."""

    model_config = ConfigDict(extra="forbid")

    title: str
    applies_to: list[SubjectKind]
    tools: list[str] = Field(default_factory=lambda: ["*"])
    rules: list[DraftRule] = Field(default_factory=list)
    rules_are_complete: bool = False
    violations: list[DraftExample] = Field(default_factory=list, max_length=16)
    hard_negatives: list[DraftExample] = Field(default_factory=list, max_length=16)
    rubric: str
    criteria: list[str] = Field(default_factory=list)


class RuleRepair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[DraftRule]


_SYSTEM = """You compile a security policy written in plain English into a structured policy for an MCP gateway.
The gateway checks one "subject" at a time:
- kind: tool_call (an agent calling a tool: fields tool, server, arguments), tool_result (text a tool returned),
  tool_description (a tool's description), prompt, resource (a resource's text), sampling (a server asking the model).
Rule paths start at a subject field: kind, server, tool, method, text, arguments, structured, metadata; go down with
.name, [n] for a list item, * for any key or item, ** for any depth (e.g. "arguments.amount", "arguments.**").
A predicate is {"path": P, "op": OP, "value": V}. OP is one of: equals, glob, regex, contains, starts_with,
ends_with, in (V is a list), gt, gte, lt, lte (numbers; strings such as "$1,200" count as numbers), exists,
length_gt. String comparisons ignore case. Combine predicates with {"all": [...]}, {"any": [...]}, {"not": {...}}.
A rule is {"id", "description", "when": <condition>, "effect"}, effect is:
  "violate"  - the condition alone proves a violation;
  "allow"    - the condition alone proves the subject is fine (use rarely; never one that could let a violation pass);
  "escalate" - suspicious, let the judge decide.
Write rules only for what the English states precisely (a number limit, a path, a domain, a tool name). A rule that
contradicts the policy's own examples is wrong. Prefer no rule to a guessed one.
"violations": 3 to 6 new examples that violate the policy, worded differently from the given ones.
"hard_negatives": 3 to 6 examples that look similar but are allowed.
Keep every text short.
For a tool call give "tool" and "arguments"; for text give "text".
"rules_are_complete": true only if your violate rules catch EVERY violation of this policy exactly (for example a
numeric limit on one argument), so that a subject no rule matches is certainly allowed.
"rubric": the policy restated as instructions to a judge deciding one subject; "criteria": a short checklist."""


def render_example(example: Example) -> str:
    subject = example.subject
    if subject.kind is SubjectKind.TOOL_CALL:
        return f"tool call {subject.tool!r} with arguments {json.dumps(subject.arguments, ensure_ascii=False)}"
    return f"{subject.kind.value}: {subject.text!r}"


def _user_prompt(source: PolicySource) -> str:
    front = source.front
    lines = [
        f"Policy id: {source.id}",
        f"Action when violated: {front.action.value}",
        "Applies to: " + (", ".join(k.value for k in front.applies_to) if front.applies_to else "(infer it)"),
    ]
    if front.tools != ["*"]:
        lines.append(f"Tools: {', '.join(front.tools)}")
    lines += ["", "Policy text:", "<<<", source.body, ">>>"]
    for label, wanted in (("Examples that VIOLATE the policy:", True), ("Examples that are ALLOWED:", False)):
        chosen = [render_example(e) for e in source.examples if e.violation is wanted]
        if chosen:
            lines += ["", label, *(f"- {text}" for text in chosen)]
    return "\n".join(lines)


def _repair_prompt(rules: Sequence[DraftRule], conflicts: Sequence[RuleConflict]) -> str:
    listed = json.dumps([rule.model_dump(by_alias=True) for rule in rules], ensure_ascii=False)
    problems = "\n".join(f"- rule {c.rule_id} {c.problem}: {render_example(c.example)}" for c in conflicts)
    return (
        f"Your rules were:\n{listed}\n\nThey contradict the policy's own labelled examples:\n{problems}\n\n"
        "Return the corrected full list of rules. Fix or remove each rule named above; keep the others as they are."
    )


def compile_policy(
    source: PolicySource,
    *,
    llm: StructuredLLM | None,
    models: EmbedderPair | None,
    detectors: DetectorRegistry | None = None,
    timeout: float = 180.0,
    repair_rounds: int = 2,
) -> CompiledPolicy:
    """Compile one source. Without `llm`, an offline compile."""
    registry = detectors or DetectorRegistry()
    for name in source.front.detectors:
        if name not in registry.names():
            raise CompileError(
                f"{source.path}: unknown detector {name!r} in 'detectors:'; known: {', '.join(registry.names())}"
            )
    screen, head, head_thresholds, chunk_chars = _load_heads(source)
    hand_rules, hand_decide = load_rules(source)
    omitted: list[str] = []
    rules: list[Rule] = []
    rules_complete = False
    repaired: list[str] = []
    escalated: list[str] = []
    generated: list[Example] = []
    kinds = source.default_kinds
    tools = source.front.tools
    title = source.title
    rubric, criteria = source.body, []
    if llm is None:
        omitted = [
            "rules generated from the English (they need an LLM compile)",
            "generated paraphrases and hard negatives for the classifier",
            "a rewritten judge rubric (the judge reads the English body as written)",
        ]
    else:
        draft = _ask(
            llm,
            [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _user_prompt(source)}],
            DraftPolicy,
            timeout,
            source,
        )
        title = source.front.title or draft.title or title
        kinds = source.front.applies_to or draft.applies_to or kinds
        tools = source.front.tools if source.front.tools != ["*"] else (draft.tools or ["*"])
        rubric, criteria = draft.rubric, draft.criteria
        rules, repaired, escalated = _repair(llm, source, draft.rules, timeout, repair_rounds)
        rules_complete = draft.rules_are_complete
        generated = _generated_examples(draft, kinds)
    # Hand-written rules come first and are the author's word: one that contradicts the examples is an
    # error to fix, not something to repair silently.
    conflicts = rule_conflicts(hand_rules, source.examples)
    if conflicts:
        first = conflicts[0]
        raise CompileError(f"{source.path}: hand-written rule {first.rule_id!r} {first.problem} (line "
                           f"{first.example.line}); fix the rule in {source.front.rules} or the example")
    taken = {rule.id for rule in hand_rules}
    rules = hand_rules + [rule for rule in rules if rule.id not in taken]
    kept, dropped = filter_exemplars(generated, rules, source.examples, models, rules_complete=rules_complete)
    # The LLM's claim that its rules decide the policy is accepted only if the rules alone get every
    # source example and every kept generated example right.
    rules_decide = (
        (rules_complete or hand_decide)
        and bool(source.examples)
        and _rules_alone_correct(rules, [*source.examples, *kept])
    )
    exemplars = [Exemplar(text=e.subject.reading(), violation=e.violation, origin="source") for e in source.examples]
    exemplars += [
        Exemplar(
            text=e.subject.reading(), violation=e.violation, origin="generated" if e.violation else "hard_negative"
        )
        for e in kept
    ]
    exemplars = _unique(exemplars)
    classifier = None
    if head is not None or exemplars:
        thresholds, origin = _thresholds(source, head_thresholds)
        trained_units = {} if chunk_chars is None else {"chunk_chars": chunk_chars}
        classifier = ClassifierSpec(
            exemplars=exemplars, screen=screen, head=head, thresholds=thresholds, thresholds_source=origin,
            **trained_units,
        )
    judge = None if source.front.judge == "never" else JudgeSpec(rubric=rubric, criteria=criteria)
    policy = CompiledPolicy(
        id=source.id,
        title=title,
        body=source.body,
        action=source.front.action,
        severity=source.front.severity,
        on_error=source.on_error,
        scope=Scope(kinds=kinds, servers=source.front.servers, tools=tools),
        rules=rules,
        rules_decide=rules_decide,
        detectors=source.front.detectors,
        classifier=classifier,
        judge=judge,
        quality=source.front.quality,
        verification=Verification(status="no_examples", examples=0, correct=0),
        provenance=Provenance(
            source=Path(source.path).name,
            source_sha256=source.sha256,
            compiler="offline" if llm is None else llm.model,
            prompt_version=PROMPT_VERSION,
            omitted=omitted,
        ),
    )
    if classifier is not None and models is None and source.examples:
        raise CompileError(f"{source.path}: verifying the classifier needs the embedding model; none was given")
    verification = verify_policy(policy, source.examples, Engine([policy], models=models, detectors=registry))
    verification = verification.model_copy(
        update={"repaired_rules": repaired, "escalated_rules": escalated, "dropped_exemplars": dropped}
    )
    return policy.model_copy(update={"verification": verification})


def _ask(llm: StructuredLLM, messages: list[dict[str, str]], model: type[T], timeout: float, source: PolicySource) -> T:
    try:
        return llm.complete(messages, model, timeout=timeout, max_retries=2, max_tokens=2048).value
    except LLMError as exc:
        raise CompileError(f"{source.path}: compiling with {llm.model} failed: {exc}") from exc


def _repair(
    llm: StructuredLLM, source: PolicySource, drafts: list[DraftRule], timeout: float, rounds: int
) -> tuple[list[Rule], list[str], list[str]]:
    current = drafts
    repaired: set[str] = set()
    rules = _to_rules(current)
    conflicts = rule_conflicts(rules, source.examples)
    for _ in range(rounds):
        if not conflicts:
            break
        repaired.update(c.rule_id for c in conflicts)
        answer = _ask(
            llm,
            [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": _user_prompt(source)},
                {"role": "user", "content": _repair_prompt(current, conflicts)},
            ],
            RuleRepair,
            timeout,
            source,
        )
        current = answer.rules
        rules = _to_rules(current)
        conflicts = rule_conflicts(rules, source.examples)
    still_wrong = {c.rule_id for c in conflicts}
    # Rules the LLM could not repair are kept as hints for the judge, never as decisions.
    rules = [rule.model_copy(update={"effect": "escalate"}) if rule.id in still_wrong else rule for rule in rules]
    return rules, sorted(repaired - still_wrong), sorted(still_wrong)


def _rules_alone_correct(rules: Sequence[Rule], examples: Sequence[Example]) -> bool:
    violate = [rule for rule in rules if rule.effect == "violate"]
    if not violate:
        return False
    return all(any(evaluate(rule.when, e.subject)[0] for rule in violate) == e.violation for e in examples)


def _to_rules(drafts: Sequence[DraftRule]) -> list[Rule]:
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, draft in enumerate(drafts, start=1):
        slug = re.sub(r"[^a-z0-9_-]+", "-", draft.id.lower()).strip("-") or f"rule-{index}"
        while slug in seen:
            slug = f"{slug}-{index}"
        seen.add(slug)
        rules.append(Rule(id=slug, description=draft.description, when=draft.when, effect=draft.effect))
    return rules


def _generated_examples(draft: DraftPolicy, kinds: list[SubjectKind]) -> list[Example]:
    out: list[Example] = []
    text_kind = next((k for k in kinds if k is not SubjectKind.TOOL_CALL), kinds[0])
    for items, violation in ((draft.violations, True), (draft.hard_negatives, False)):
        for item in items:
            if item.tool or item.arguments:
                subject = Subject(kind=SubjectKind.TOOL_CALL, tool=item.tool, arguments=item.arguments)
            elif item.text.strip():
                subject = Subject(kind=text_kind, text=item.text.strip())
            else:
                continue
            out.append(Example(violation=violation, subject=subject))
    return out


def _unique(exemplars: list[Exemplar]) -> list[Exemplar]:
    seen: set[str] = set()
    out: list[Exemplar] = []
    for exemplar in exemplars:
        if exemplar.text not in seen:
            seen.add(exemplar.text)
            out.append(exemplar)
    return out


def _thresholds(
    source: PolicySource, head_thresholds: Thresholds | None
) -> tuple[Thresholds, Literal["default", "front_matter", "head"]]:
    if source.front.thresholds is not None:
        return source.front.thresholds, "front_matter"
    if head_thresholds is not None:
        return head_thresholds, "head"
    return Thresholds(), "default"


class _HeadFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    screen: Head | None = None
    head: Head
    thresholds: Thresholds | None = None
    chunk_chars: int | None = Field(default=None, ge=100, le=2000)  # the unit size the head was trained on

    _screen_reads_static_vectors = field_validator("screen")(untuned_screen)


def load_rules(source: PolicySource) -> tuple[list[Rule], bool]:
    """Hand-written rules, and whether their author says they decide the policy alone (`decide: true`)."""
    name = source.front.rules
    if not name:
        return [], False
    path = source.companion(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CompileError(f"{source.path}: the rules file {path} named in 'rules:' does not exist") from exc
    except yaml.YAMLError as exc:
        raise CompileError(f"{path}: not valid YAML ({exc})") from exc
    items = data.get("rules") if isinstance(data, dict) else data
    decide = bool(data.get("decide", False)) if isinstance(data, dict) else False
    if not isinstance(items, list):
        raise CompileError(f"{path}: expected a list of rules (or 'rules:' with a list)")
    rules: list[Rule] = []
    for index, item in enumerate(items, start=1):
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as exc:
            named = f" ({item['id']!r})" if isinstance(item, dict) and isinstance(item.get("id"), str) else ""
            raise CompileError(f"{path}: rule {index}{named} is invalid {_rule_error(exc)}") from exc
    return rules, decide


_UNION_BRANCHES = ("Predicate", "AllOf", "AnyOf", "NotOf")


def _rule_error(exc: ValidationError) -> str:
    """The error that says what is wrong with a rule, and where, in the rules file's own terms.

    A condition may be a predicate, `all`, `any` or `not`: pydantic reports why it is none of them, a
    'field required' for each shape it is not, before the one a validator raised (a regex that nests
    quantifiers, an operator given the wrong kind of value), which is the one its author needs."""
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "value_error"), None)
    if error is None:
        error = next((e for e in errors if e["type"] not in ("missing", "extra_forbidden")), errors[0])
    where = ".".join(
        str(part)
        for part in error["loc"]
        if not (isinstance(part, str) and (part.startswith("function-") or part in _UNION_BRANCHES))
    )
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"at {where!r}: {message}"


def _load_heads(source: PolicySource) -> tuple[Head | None, Head | None, Thresholds | None, int | None]:
    name = source.front.classifier
    if not name:
        return None, None, None, None
    path = source.companion(name)
    try:
        data = _HeadFile.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CompileError(f"{source.path}: the classifier file {path} named in 'classifier:' does not exist") from exc
    except ValidationError as exc:
        raise CompileError(f"{path}: not a valid classifier file ({exc.errors()[0]['msg']})") from exc
    return data.screen, data.head, data.thresholds, data.chunk_chars
