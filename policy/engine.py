"""The runtime engine: every policy in scope, each decided by the cheapest tier that is sure.

    detectors and rules (microseconds) ─▶ embedding classifier (milliseconds) ─▶ LLM judge (cached)

A tier that fails hands the decision to the policy's ``on_error`` (block by default for block
and mask policies: a broken tier must not become an allow). Every verdict carries its trace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .chunking import context
from .classifier import ClassifierResult, EmbedderPair, PolicyClassifier
from .compiled import ClassifierSpec, CompiledPolicy
from .conditions import Rule, evaluate, prerequisite, subject_view
from .detectors import DetectorRegistry
from .errors import JudgeBudgetError, LLMError, ModelLoadError, PolicyError
from .judge import Judge
from .memo import PerObject
from .safe_regex import casefolded
from .subject import Subject, SubjectKind
from .verdict import Action, Outcome, Span, Tier, TierStep, Verdict

__all__ = ["Engine", "everywhere", "occurrences", "values_of"]

_EFFECT_ORDER = ("violate", "allow", "escalate")
SCOPE_MEMO = 4096  # (kind, server, tool) combinations whose policies in scope are remembered

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    """What the tiers have found so far for one policy and one subject."""

    policy: CompiledPolicy
    started: float = field(default_factory=time.perf_counter)
    trace: list[TierStep] = field(default_factory=list)

    def step(self, tier: Tier, result: str, detail: str = "", score: float | None = None, since: float = 0.0) -> None:
        latency = (time.perf_counter() - since) * 1000 if since else 0.0
        self.trace.append(TierStep(tier=tier, result=result, detail=detail, score=score, latency_ms=latency))

    def found(self, tier: Tier, detail: str, reason: str, spans: Sequence[Span], since: float) -> Verdict:
        """A sure violation (a detector's finding or a rule's match), with its trace step and evidence."""
        self.step(tier, "violation", detail, since=since)
        return self.verdict(Outcome.VIOLATION, tier, reason, evidence=tuple(spans), score=1.0)

    def verdict(self, outcome: Outcome, tier: Tier, reason: str, **extra: object) -> Verdict:
        action = extra.pop("action", self.policy.action)
        return Verdict(
            policy=self.policy.id,
            outcome=outcome,
            action=action,
            tier=tier,
            reason=reason,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            trace=tuple(self.trace),
            **extra,  # type: ignore[arg-type]
        )


PROPAGATE_MIN_CHARS = 6  # a found value this long is masked wherever else it appears in the subject
PROPAGATE_BUDGET = 200_000_000  # characters scanned to find values inside other strings (str.find: ~0.1 s)


def everywhere(spans: list[Span], strings: list[tuple[str, str]]) -> list[Span]:
    """`spans`, plus every other place in the subject where the value one of them covers appears.

    A detector may find a value in one place only (a key names it as a password there, and not in
    the text that repeats it); what is masked in one place must not be readable in another."""
    found = values_of(spans, strings)
    return spans + occurrences(found, strings, {(span.field, span.start, span.end) for span in spans})


def values_of(spans: Sequence[Span], strings: list[tuple[str, str]]) -> dict[str, Span]:
    """The text each span covers (at least PROPAGATE_MIN_CHARS of it), with the first span that found it."""
    texts = dict(strings)
    found: dict[str, Span] = {}
    for span in spans:
        value = texts.get(span.field, "")[span.start : span.end]
        if len(value.strip()) >= PROPAGATE_MIN_CHARS:
            found.setdefault(value, span)
    return found


def occurrences(found: dict[str, Span], strings: list[tuple[str, str]], have: set[tuple[str, int, int]]) -> list[Span]:
    """Spans for each place in `strings` where a value of `found` appears, labelled like the span that found it.

    Every string equal to a value is matched; values are also looked for inside every string, longest
    first, as many as PROPAGATE_BUDGET allows (all of them, unless a huge message holds thousands)."""
    if not found:
        return []
    out: list[Span] = []

    def add(path: str, start: int, end: int, origin: Span) -> None:
        if (path, start, end) not in have:
            have.add((path, start, end))
            out.append(Span(field=path, start=start, end=end, label=origin.label, score=origin.score))

    total = sum(len(text) for _, text in strings) or 1
    searched = sorted(found, key=len, reverse=True)[: max(64, PROPAGATE_BUDGET // total)]
    for path, text in strings:
        whole = found.get(text)
        if whole is not None:
            add(path, 0, len(text), whole)
        for value in searched:
            if len(value) >= len(text):
                continue  # only equal strings can hold it, and those were matched above
            start = text.find(value)
            while start != -1:
                add(path, start, start + len(value), found[value])
                start = text.find(value, start + len(value))
    return out


class Engine:
    """Decides subjects against compiled policies. Thread-safe; models load on first use or `warm()`."""

    def __init__(
        self,
        policies: Sequence[CompiledPolicy],
        *,
        models: EmbedderPair | None = None,
        detectors: DetectorRegistry | None = None,
        judge: Judge | None = None,
    ) -> None:
        ids = [policy.id for policy in policies]
        duplicates = sorted({pid for pid in ids if ids.count(pid) > 1})
        if duplicates:
            raise PolicyError(
                f"two policies share the id(s) {', '.join(duplicates)}; give each policy file a unique 'id:'"
            )
        self._policies = list(policies)
        self.models = models
        self.detectors = detectors or DetectorRegistry()
        self.judge = judge
        self._classifiers: dict[str, PolicyClassifier] = {}
        # keyed by id(); the policy is kept beside its plan, so a new object at a reused address is not taken for it
        self._plans: PerObject[CompiledPolicy, list[tuple[Rule, tuple[str, frozenset[str]] | None]]] = PerObject()
        self._lock = threading.Lock()
        self._scopes: dict[tuple[SubjectKind, str, str], list[CompiledPolicy]] = {}

    @property
    def policies(self) -> list[CompiledPolicy]:
        return self._policies

    @policies.setter
    def policies(self, policies: Sequence[CompiledPolicy]) -> None:
        self._policies = list(policies)
        self._scopes.clear()
        self._plans.clear()
        with self._lock:
            # a classifier is kept per policy id, with what it remembered: a policy of the same id may now
            # carry other exemplars, heads or thresholds
            self._classifiers.clear()

    def warm(self) -> None:
        """Load every detector and model the policies need, embed their exemplars, and work out the digests the
        judge's cache keys need (a policy with a tuned head is a JSON of some 14 MB to hash)."""
        for policy in self.policies:
            if self.judge is not None and policy.judge is not None:
                self.judge.warm(policy)
            for name in policy.detectors:
                detector = self.detectors.get(name)
                warm = getattr(detector, "warm", None)
                if callable(warm):
                    warm()
            if policy.classifier is not None and self.models is not None:
                self._classifier(policy).warm()
                for embedder in (self.models.minilm, self.models.static):
                    embedder.encode(["warm up"])

    def in_scope(self, subject: Subject) -> list[CompiledPolicy]:
        key = (subject.kind, subject.server, subject.tool)
        policies = self._scopes.get(key)
        if policies is None:
            policies = [policy for policy in self._policies if policy.scope.matches(subject)]
            if len(self._scopes) >= SCOPE_MEMO:
                self._scopes.clear()
            self._scopes[key] = policies
        return list(policies)

    def check(
        self,
        subject: Subject,
        policies: Sequence[CompiledPolicy] | None = None,
        strings: list[tuple[str, str]] | None = None,
    ) -> list[Verdict]:
        """A verdict from every policy whose scope covers the subject (or from `policies`, already scoped).
        `strings` may carry `subject.strings()`, already listed."""
        scoped = self.in_scope(subject) if policies is None else policies
        if strings is None and len(scoped) > 1:
            # every policy's detectors read the same strings: walk the subject for them once
            strings = list(subject.strings())
        return [self.check_policy(policy, subject, strings=strings) for policy in scoped]

    def check_policy(
        self,
        policy: CompiledPolicy,
        subject: Subject,
        *,
        classifier: PolicyClassifier | None = None,
        use_judge: bool = True,
        strings: list[tuple[str, str]] | None = None,
    ) -> Verdict:
        """One policy's verdict. `strings` may carry `subject.strings()`, already listed."""
        run = _Run(policy)
        try:
            verdict = self._deterministic(run, subject, strings)
            if verdict is not None:
                return verdict
            escalated = any(step.result == "escalate" for step in run.trace)
            result = self._classify(run, subject, classifier)
            if result is not None and not escalated:
                sure = self._classifier_verdict(run, result)
                if sure is not None:
                    return sure
            if use_judge and self.judge is not None and policy.judge is not None:
                return self._judge(run, subject, result)
            return self._without_judge(run, result, escalated)
        except (LLMError, JudgeBudgetError, ModelLoadError, PolicyError) as exc:
            run.step(Tier.ON_ERROR, "error", str(exc))
            return self._on_error(run, exc)

    def _deterministic(self, run: _Run, subject: Subject, strings: list[tuple[str, str]] | None) -> Verdict | None:
        policy = run.policy
        if policy.detectors:
            since = time.perf_counter()
            spans: list[Span] = []
            if strings is None:
                strings = list(subject.strings())
            for name in policy.detectors:
                detector = self.detectors.get(name)
                # A string met again under another path of the same context (a result's structuredContent
                # repeating its text) is scanned once; its findings are placed at each path.
                context = getattr(detector, "field_context", None)
                scanned: dict[tuple[str, str], list[Span]] = {}
                for path, text in strings:
                    key = (path if context is None else context(path), text)
                    if key in scanned:
                        spans.extend(span.model_copy(update={"field": path}) for span in scanned[key])
                    else:
                        scanned[key] = detector.scan(path, text)
                        spans.extend(scanned[key])
            if spans:
                spans = everywhere(spans, strings)
                labels = ", ".join(sorted({span.label for span in spans}))
                return run.found(Tier.DETECTOR, f"found {labels}", f"found {len(spans)} × {labels}", spans, since)
            run.step(Tier.DETECTOR, "allow", "nothing found", since=since)
        if not policy.rules:
            return None
        since = time.perf_counter()
        view = subject_view(subject)
        for rule, gate in self._rule_plan(policy):
            if gate is not None:
                value = view[gate[0]]
                if isinstance(value, str):
                    haystack = casefolded(value)
                    if not any(word in haystack for word in gate[1]):
                        continue
            held, spans = evaluate(rule.when, subject, view)
            if not held:
                continue
            if rule.effect == "violate":
                reason = f"rule {rule.id}: {rule.description}"
                return run.found(Tier.RULES, reason, reason, spans, since)
            if rule.effect == "allow":
                run.step(Tier.RULES, "allow", f"rule {rule.id}: {rule.description}", since=since)
                return run.verdict(Outcome.ALLOW, Tier.RULES, f"rule {rule.id}: {rule.description}", score=0.0)
            run.step(Tier.RULES, "escalate", f"rule {rule.id} needs the judge: {rule.description}", since=since)
            return None
        if policy.rules_decide:
            run.step(Tier.RULES, "allow", "no rule matched; the rules decide this policy", since=since)
            return run.verdict(
                Outcome.ALLOW, Tier.RULES, "no rule matched, and the rules decide this policy", score=0.0
            )
        run.step(Tier.RULES, "unsure", "no rule matched", since=since)
        return None

    def _rule_plan(self, policy: CompiledPolicy) -> list[tuple[Rule, tuple[str, frozenset[str]] | None]]:
        """A policy's rules in the order they are tried (every violate rule, then allow, then escalate),
        each with its `prerequisite`, worked out once per policy."""
        return self._plans.get(policy, _rule_plan)

    def _classifier(self, policy: CompiledPolicy, spec: ClassifierSpec | None = None) -> PolicyClassifier:
        if self.models is None:
            raise ModelLoadError(f"policy {policy.id!r} has a classifier but the engine was built without models")
        if spec is not None:
            return PolicyClassifier(spec, self.models)
        with self._lock:
            classifier = self._classifiers.get(policy.id)
            if classifier is None:
                assert policy.classifier is not None
                classifier = PolicyClassifier(policy.classifier, self.models)
                self._classifiers[policy.id] = classifier
            return classifier

    def _classify(self, run: _Run, subject: Subject, override: PolicyClassifier | None) -> ClassifierResult | None:
        if run.policy.classifier is None and override is None:
            return None
        since = time.perf_counter()
        classifier = override or self._classifier(run.policy)
        result = classifier.score(subject.reading())
        run.step(
            Tier.CLASSIFIER,
            "scored",
            f"{result.stage} over {result.chunks} chunk(s)" + (" (screened out)" if result.screened_out else ""),
            score=round(result.score, 4),
            since=since,
        )
        return result

    def _classifier_verdict(self, run: _Run, result: ClassifierResult) -> Verdict | None:
        assert run.policy.classifier is not None or result is not None
        thresholds = run.policy.classifier.thresholds if run.policy.classifier else None
        if thresholds is None:
            return None
        extra = _classifier_extra(result)
        if result.screened_out or result.score < thresholds.allow_below:
            run.trace[-1] = _relabel(run.trace[-1], "allow")
            return run.verdict(
                Outcome.ALLOW,
                Tier.CLASSIFIER,
                f"classifier score {result.score:.2f} is below {thresholds.allow_below}",
                **extra,
            )
        if result.score >= thresholds.violate_above:
            run.trace[-1] = _relabel(run.trace[-1], "violation")
            return run.verdict(
                Outcome.VIOLATION,
                Tier.CLASSIFIER,
                f"classifier score {result.score:.2f} is at or above {thresholds.violate_above}",
                **extra,
            )
        run.trace[-1] = _relabel(run.trace[-1], "unsure")
        return None

    def _judge(self, run: _Run, subject: Subject, result: ClassifierResult | None) -> Verdict:
        assert self.judge is not None
        since = time.perf_counter()
        excerpts = None
        if result is not None and result.chunks > 1:
            reading = subject.reading()
            excerpts = [context(reading, chunk) for chunk in result.suspicious]
        outcome = self.judge.judge(run.policy, subject, excerpts)
        decided = Outcome.VIOLATION if outcome.violates else Outcome.ALLOW
        run.step(
            Tier.JUDGE,
            decided.value,
            outcome.rationale[:200] + (" (cached)" if outcome.cache_hit else ""),
            score=outcome.confidence,
            since=since,
        )
        extra = _classifier_extra(result) if result is not None else {}
        extra.pop("score", None)
        return run.verdict(
            decided,
            Tier.JUDGE,
            f"judge: {outcome.rationale}" if outcome.rationale else "judge decided",
            score=outcome.confidence,
            judge_rationale=outcome.rationale,
            judge_model=outcome.model,
            judge_cost_usd=outcome.cost_usd,
            cache_hit=outcome.cache_hit,
            **extra,
        )

    def _without_judge(self, run: _Run, result: ClassifierResult | None, escalated: bool) -> Verdict:
        policy = run.policy
        if result is not None and policy.classifier is not None:
            cut = policy.classifier.thresholds.decision
            decided = Outcome.VIOLATION if result.score >= cut else Outcome.ALLOW
            run.step(Tier.THRESHOLD, decided.value, f"no judge: decided at {cut:.2f}")
            return run.verdict(
                decided,
                Tier.THRESHOLD,
                f"classifier score {result.score:.2f} {'>=' if decided is Outcome.VIOLATION else '<'} {cut:.2f} "
                "(no judge configured)",
                **_classifier_extra(result),
            )
        if escalated or (
            policy.judge is not None and policy.classifier is None and not policy.rules and not policy.detectors
        ):
            # The policy needs the judge and there is none: that is a tier failure, not an allow.
            run.step(Tier.ON_ERROR, "error", "this policy needs the LLM judge and none is configured")
            return self._on_error(run, PolicyError("this policy needs the LLM judge and none is configured"))
        return run.verdict(Outcome.ALLOW, Tier.DEFAULT, "no detector, rule or classifier found a violation")

    def _on_error(self, run: _Run, exc: Exception) -> Verdict:
        mode = run.policy.on_error
        reason = f"{type(exc).__name__}: {exc} — on_error={mode}"
        if mode == "allow":
            return run.verdict(Outcome.ALLOW, Tier.ON_ERROR, reason)
        action = Action.WARN if mode == "warn" else Action.BLOCK
        return run.verdict(Outcome.VIOLATION, Tier.ON_ERROR, reason, action=action)


def _rule_plan(policy: CompiledPolicy) -> list[tuple[Rule, tuple[str, frozenset[str]] | None]]:
    ordered = [rule for effect in _EFFECT_ORDER for rule in policy.rules if rule.effect == effect]
    return [(rule, prerequisite(rule.when)) for rule in ordered]


def _relabel(step: TierStep, result: str) -> TierStep:
    # a plain constructor: cheaper than model_copy, and this runs on every classified message
    return TierStep(tier=step.tier, result=result, detail=step.detail, score=step.score, latency_ms=step.latency_ms)


def _classifier_extra(result: ClassifierResult) -> dict[str, object]:
    evidence: tuple[Span, ...] = ()
    if result.chunk is not None and not result.screened_out:
        evidence = (
            Span(
                field="reading",
                start=result.chunk.start,
                end=result.chunk.end,
                label="classifier-chunk",
                score=round(result.score, 4),
            ),
        )
    return {
        "score": round(result.score, 4),
        "nearest_exemplar": result.nearest_exemplar,
        "nearest_similarity": None if result.nearest_similarity is None else round(result.nearest_similarity, 4),
        "evidence": evidence,
    }
