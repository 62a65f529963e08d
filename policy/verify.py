"""Compilation is verified, never trusted.

A small model writes plausible but wrong rules (``amount gt 1000 → allow``). Every compiled
policy is checked against the source's own labelled examples: rules that contradict an example
are found here, generated exemplars that contradict the source are dropped, and the whole
cascade (without the judge) is scored on the examples, leaving each example's own exemplar out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .classifier import EmbedderPair, PolicyClassifier
from .compiled import CompiledPolicy, Mismatch, Verification
from .conditions import Rule, evaluate
from .engine import Engine
from .source import Example
from .verdict import Outcome, Tier

__all__ = ["RuleConflict", "filter_exemplars", "rule_conflicts", "verify_policy"]

NEAR_DUPLICATE = 0.95


@dataclass(frozen=True)
class RuleConflict:
    rule_id: str
    example: Example
    problem: str


def rule_conflicts(rules: Sequence[Rule], examples: Sequence[Example]) -> list[RuleConflict]:
    """Every (rule, example) pair where the rule's effect contradicts the example's label."""
    conflicts: list[RuleConflict] = []
    for rule in rules:
        for example in examples:
            held, _ = evaluate(rule.when, example.subject)
            if not held:
                continue
            if rule.effect == "violate" and not example.violation:
                conflicts.append(RuleConflict(rule.id, example, "marks an ALLOWED example as a violation"))
            elif rule.effect == "allow" and example.violation:
                conflicts.append(RuleConflict(rule.id, example, "allows an example that is a VIOLATION"))
    return conflicts


def filter_exemplars(
    generated: Sequence[Example],
    rules: Sequence[Rule],
    examples: Sequence[Example],
    models: EmbedderPair | None,
    *,
    rules_complete: bool = False,
) -> tuple[list[Example], int]:
    """Drop generated examples that contradict the rules or sit nearer the opposite label's source examples.

    The source's own examples are ground truth; what the LLM generated is not. When the rules are
    claimed complete, a generated "violation" that no violate rule catches contradicts them too.
    """
    kept: list[Example] = []
    for candidate in generated:
        fired = [rule for rule in rules if rule.effect != "escalate" and evaluate(rule.when, candidate.subject)[0]]
        contradicted = any((rule.effect == "violate") != candidate.violation for rule in fired)
        if rules_complete and candidate.violation and not any(rule.effect == "violate" for rule in fired):
            contradicted = True
        if not contradicted:
            kept.append(candidate)
    labels = np.array([example.violation for example in examples])
    if models is not None and kept and labels.any() and (~labels).any():
        # A generated text that is a near-duplicate of a source example with the opposite label would
        # teach the classifier the opposite of the source; hard negatives that merely resemble
        # violations are the point of hard negatives and are kept.
        source_vectors = models.minilm.encode([example.subject.reading() for example in examples])
        sims = models.minilm.encode([e.subject.reading() for e in kept]) @ source_vectors.T
        kept = [
            candidate
            for candidate, row in zip(kept, sims, strict=True)
            if not (
                row[labels != candidate.violation].max() >= NEAR_DUPLICATE
                and row[labels != candidate.violation].max() > row[labels == candidate.violation].max()
            )
        ]
    return kept, len(generated) - len(kept)


def verify_policy(policy: CompiledPolicy, examples: Sequence[Example], engine: Engine) -> Verification:
    """Score the cascade (no judge) on the examples; each example's own exemplar is left out."""
    if not examples:
        return Verification(status="no_examples", examples=0, correct=0)
    mismatches: list[Mismatch] = []
    correct = 0
    contradicted = False
    for example in examples:
        classifier = None
        if policy.classifier is not None and engine.models is not None and policy.classifier.exemplars:
            reading = example.subject.reading()
            spec = policy.classifier.model_copy(
                update={"exemplars": [e for e in policy.classifier.exemplars if e.text != reading]}
            )
            classifier = PolicyClassifier(spec, engine.models)
        verdict = engine.check_policy(policy, example.subject, classifier=classifier, use_judge=False)
        expected = "violation" if example.violation else "allow"
        unsure = verdict.tier is Tier.ON_ERROR
        got = "unsure" if unsure else verdict.outcome.value
        if got == expected:
            correct += 1
            continue
        if not unsure:
            contradicted = True
        mismatches.append(
            Mismatch(
                example=example.raw or example.subject.reading(),
                line=example.line,
                expected=expected,
                got="unsure" if unsure else ("violation" if verdict.outcome is Outcome.VIOLATION else "allow"),
                tier=verdict.tier.value,
                detail=verdict.reason[:300],
            )
        )
    status = "mismatch" if contradicted else "verified"
    return Verification(status=status, examples=len(examples), correct=correct, mismatches=mismatches)
