"""Calibrating a policy's classifier thresholds on a labelled dev set (``mcp-gateway policy tune``).

* ``violate_above``: the lowest score at which the dev false-positive rate stays within the target;
* ``allow_below``: the score under which almost no violation falls (the judge's band starts here);
* ``decide_at``: the single cut used without a judge: best F1 whose false-positive rate meets the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cases import Case
from .classifier import EmbedderPair, PolicyClassifier
from .compiled import CompiledPolicy
from .errors import PolicyError
from .source import Thresholds

__all__ = ["TuneReport", "classifier_scores", "tune_policy"]


@dataclass(frozen=True)
class TuneReport:
    policy: str
    before: Thresholds
    after: Thresholds
    positives: int
    negatives: int
    dev_fpr: float
    dev_recall: float
    dev_f1: float


def classifier_scores(policy: CompiledPolicy, cases: Sequence[Case], models: EmbedderPair) -> np.ndarray:
    if policy.classifier is None:
        raise PolicyError(f"policy {policy.id!r} has no classifier to tune")
    classifier = PolicyClassifier(policy.classifier, models)
    return np.array([classifier.score(case.subject().reading()).score for case in cases], dtype=np.float64)


def _metrics(scores: np.ndarray, labels: np.ndarray, cut: float) -> tuple[float, float, float]:
    predicted = scores >= cut
    tp = float(np.sum(predicted & labels))
    fp = float(np.sum(predicted & ~labels))
    fn = float(np.sum(~predicted & labels))
    tn = float(np.sum(~predicted & ~labels))
    fpr = fp / (fp + tn) if fp + tn else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return fpr, recall, f1


def _why_none(policy: CompiledPolicy, cases: Sequence[Case]) -> str:
    if not cases:
        return " (no case was given, or none is of the split asked for)"
    kinds = ", ".join(kind.value for kind in policy.scope.kinds) or "none"
    return f" (none of the {len(cases)} cases given is of its kinds: {kinds}, and for it or for any policy)"


def tune_policy(
    policy: CompiledPolicy,
    cases: Sequence[Case],
    models: EmbedderPair,
    *,
    target_fpr: float = 0.01,
    recall_floor: float = 0.99,
) -> tuple[CompiledPolicy, TuneReport]:
    if policy.classifier is None:
        raise PolicyError(
            f"policy {policy.id!r} has no classifier to tune (its rules, detectors or judge decide); "
            "tune a policy whose lock file has a classifier"
        )
    relevant = [
        case
        for case in cases
        if case.policy in (None, policy.id) and policy.scope.kinds and case.kind in policy.scope.kinds
    ]
    labels = np.array([case.expect == "violation" for case in relevant], dtype=bool)
    if labels.sum() < 5 or (~labels).sum() < 5:
        raise PolicyError(
            f"tuning {policy.id!r} needs at least 5 violation and 5 allowed dev cases of its kinds; "
            f"got {int(labels.sum())} and {int((~labels).sum())}" + ("" if relevant else _why_none(policy, cases))
        )
    scores = classifier_scores(policy, relevant, models)
    negatives, positives = np.sort(scores[~labels]), np.sort(scores[labels])
    allowed_fp = int(np.floor(target_fpr * len(negatives)))
    # The smallest cut that lets at most `allowed_fp` benign scores reach it.
    violate_above = float(negatives[-(allowed_fp + 1)]) + 1e-6 if allowed_fp < len(negatives) else 0.0
    violate_above = min(max(violate_above, 0.0), 1.0)
    missed = int(np.floor((1 - recall_floor) * len(positives)))
    allow_below = min(float(positives[missed]), violate_above)
    candidates = sorted(set(np.round(scores, 6).tolist()) | {violate_above})
    best_cut, best = violate_above, (-1.0, 0.0, 0.0)
    for cut in candidates:
        fpr, recall, f1 = _metrics(scores, labels, cut)
        if fpr <= target_fpr and f1 > best[0]:
            best_cut, best = float(cut), (f1, recall, fpr)
    after = Thresholds(
        allow_below=round(allow_below, 6),
        violate_above=round(violate_above, 6),
        decide_at=round(min(max(best_cut, allow_below), violate_above), 6),
    )
    fpr, recall, f1 = _metrics(scores, labels, after.decision)
    tuned = policy.model_copy(
        update={"classifier": policy.classifier.model_copy(update={"thresholds": after, "thresholds_source": "tuned"})}
    )
    report = TuneReport(
        policy.id, policy.classifier.thresholds, after, int(labels.sum()), int((~labels).sum()), fpr, recall, f1
    )
    return tuned, report
