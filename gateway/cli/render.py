"""Turning verdicts and reports into text for people (the JSON forms are the models' own dumps)."""

from __future__ import annotations

from policy.compiled import CompiledPolicy
from policy.subject import Subject
from policy.verdict import Verdict

__all__ = ["excerpt", "explain_verdict", "summarise_policy"]


def excerpt(text: str, start: int, end: int, width: int = 60) -> str:
    left = max(0, start - width)
    right = min(len(text), end + width)
    return (
        ("…" if left else "")
        + text[left:start]
        + "⟦"
        + text[start:end]
        + "⟧"
        + text[end:right]
        + ("…" if right < len(text) else "")
    )


def _field_text(subject: Subject, field: str) -> str | None:
    if field == "reading":
        return subject.reading()
    return dict(subject.strings()).get(field)


def explain_verdict(verdict: Verdict, subject: Subject, *, reveal: bool = False) -> str:
    """A readable trace. Evidence of masking policies is shown masked unless `reveal` is set."""
    mark = "VIOLATION" if verdict.violated else "allow"
    lines = [
        f"{verdict.policy}: {mark} → {verdict.effective_action}  (decided by {verdict.tier.value}, "
        f"{verdict.latency_ms:.1f} ms{', cached' if verdict.cache_hit else ''})",
        f"  reason: {verdict.reason}",
    ]
    if verdict.score is not None:
        lines.append(f"  score: {verdict.score:.3f}")
    if verdict.nearest_exemplar:
        similarity = f" (similarity {verdict.nearest_similarity:.2f})" if verdict.nearest_similarity is not None else ""
        lines.append(f"  nearest exemplar{similarity}: {verdict.nearest_exemplar[:160]!r}")
    if verdict.judge_rationale:
        lines.append(f"  judge ({verdict.judge_model}): {verdict.judge_rationale}")
    for span in verdict.evidence[:8]:
        text = _field_text(subject, span.field)
        if text is None:
            lines.append(f"  evidence: {span.label} in {span.field}")
            continue
        shown = text[span.start : span.end]
        if not reveal and verdict.action.value == "mask":
            shown = f"[{span.label}, {len(shown)} chars]"
            lines.append(f"  evidence: {span.label} in {span.field}[{span.start}:{span.end}] {shown}")
        else:
            lines.append(f"  evidence: {span.label} in {span.field}: {excerpt(text, span.start, span.end)!r}")
    if len(verdict.evidence) > 8:
        lines.append(f"  … and {len(verdict.evidence) - 8} more evidence spans")
    lines.append("  trace:")
    for step in verdict.trace:
        score = f" score={step.score:.3f}" if step.score is not None else ""
        lines.append(f"    {step.tier.value:<10} {step.result:<9}{score} {step.latency_ms:7.2f} ms  {step.detail}")
    return "\n".join(lines)


def summarise_policy(policy: CompiledPolicy) -> str:
    verification = policy.verification
    exemplars = len(policy.classifier.exemplars) if policy.classifier else 0
    parts = [
        f"{len(policy.rules)} rule(s)" + (" that decide alone" if policy.rules_decide else ""),
        f"{len(policy.detectors)} detector(s)" if policy.detectors else "",
        f"{exemplars} exemplar(s)" if exemplars else "",
        "trained head" if policy.classifier and policy.classifier.head else "",
        "judge rubric" if policy.judge else "",
    ]
    checked = (
        f"examples {verification.correct}/{verification.examples} ({verification.status})"
        if verification.examples
        else "no examples to verify against"
    )
    return f"{', '.join(p for p in parts if p)}; {checked}"
