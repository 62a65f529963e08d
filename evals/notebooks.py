"""Build and execute the notebooks in ``notebooks/`` so they are committed with their outputs.

    python -m evals.notebooks            # needs the notebooks extra: pip install -e '.[notebooks]'
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent

SCORECARD = [
    ("markdown", """# Reading a scorecard

This notebook reads a JSON run of the built-in policies on the test splits (`evals/results/test-run.json`,
written by `python -m evals.scorecard`; it holds case ids, labels, scores and deciding tiers, not dataset
text) and plots, per policy: how scores of violations and allowed cases are distributed, ROC and
precision-recall curves, and the confusion matrix at the shipped decision threshold.

The same JSON shape comes out of `mcp-gateway policy test --format json` for your own policies and cases."""),
    ("code", """import json
from collections import Counter, defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

root = Path.cwd() if (Path.cwd() / "evals").exists() else Path.cwd().parent
run = json.loads((root / "evals" / "results" / "test-run.json").read_text())
cases = run["cases"]
by_suite = defaultdict(list)
for case in cases:
    by_suite[case["suite"]].append(case)
for suite, items in by_suite.items():
    labels = Counter(c["expected"] for c in items)
    print(f"{suite:18} {len(items):6} cases  violation {labels['violation']:5}  allow {labels['allow']:5}")"""),
    ("markdown", """## Score distributions

For the classifier policies a good detector puts violations near 1 and allowed cases near 0, with
little overlap. Cases settled by a detector or a rule carry score 1 (found) or none; those without a
score are left out here."""),
    ("code", """scored = {s: [c for c in items if c["score"] is not None] for s, items in by_suite.items()}
suites = [s for s in ("prompt-injection", "tool-poisoning", "content-safety") if scored.get(s)]
fig, axes = plt.subplots(1, len(suites), figsize=(5 * len(suites), 3.5))
for ax, suite in zip(np.atleast_1d(axes), suites):
    for label, colour in (("allow", "tab:blue"), ("violation", "tab:red")):
        values = [c["score"] for c in scored[suite] if c["expected"] == label]
        ax.hist(values, bins=40, range=(0, 1), alpha=0.6, color=colour, label=f"{label} ({len(values)})")
    ax.set_yscale("log")
    ax.set_title(suite)
    ax.set_xlabel("classifier score")
    ax.legend()
plt.tight_layout()"""),
    ("markdown", "## ROC and precision-recall curves"),
    ("code", """def curves(items):
    scores = np.array([c["score"] for c in items])
    labels = np.array([c["expected"] == "violation" for c in items])
    order = np.argsort(-scores)
    scores, labels = scores[order], labels[order]
    tp = np.cumsum(labels)
    fp = np.cumsum(~labels)
    tpr = tp / max(labels.sum(), 1)
    fpr = fp / max((~labels).sum(), 1)
    precision = tp / np.maximum(tp + fp, 1)
    auc = np.trapezoid(np.concatenate([[0], tpr]), np.concatenate([[0], fpr]))
    return fpr, tpr, precision, auc

fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4))
for suite in suites:
    fpr, tpr, precision, auc = curves(scored[suite])
    roc.plot(fpr, tpr, label=f"{suite} (AUC {auc:.3f})")
    pr.plot(tpr, precision, label=suite)
roc.plot([0, 1], [0, 1], "k:", lw=0.8)
roc.set_xscale("symlog", linthresh=0.01)
roc.set_xlabel("false-positive rate (log above 1%)")
roc.set_ylabel("recall")
roc.axvline(0.01, color="grey", lw=0.8, ls="--")
roc.legend(loc="lower right")
pr.set_xlabel("recall")
pr.set_ylabel("precision")
pr.legend(loc="lower left")
plt.tight_layout()"""),
    ("markdown", """## Confusion matrices at the shipped threshold

`got` is what the policy decided (classifier bands, and without a judge the decision threshold for
the unsure band)."""),
    ("code", """names = [s for s in ("prompt-injection", "tool-poisoning", "content-safety", "secrets", "pii") if by_suite.get(s)]
fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2))
for ax, suite in zip(np.atleast_1d(axes), names):
    grid = np.zeros((2, 2), dtype=int)
    for c in by_suite[suite]:
        grid[int(c["expected"] == "violation"), int(c["got"] == "violation")] += 1
    ax.imshow(grid, cmap="Blues")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, str(value), ha="center", va="center", color="black")
    ax.set_xticks([0, 1], ["allow", "violation"])
    ax.set_yticks([0, 1], ["allow", "violation"])
    ax.set_xlabel("got")
    ax.set_ylabel("expected")
    tp, fn, fp = grid[1, 1], grid[1, 0], grid[0, 1]
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    ax.set_title(f"{suite}\\nF1 {f1:.3f}")
plt.tight_layout()"""),
    ("markdown", """## Where the misses come from

F1 and false-positive rate per source of the test split: the sources a policy does worst on are where
new training data, exemplars or a judge would help most."""),
    ("code", """def per_source(items):
    stats = defaultdict(Counter)
    for c in items:
        key = ("t" if c["expected"] == "violation" else "f") + ("p" if c["got"] == "violation" else "n")
        stats[c["source"]][key] += 1
    return stats

for suite in ("prompt-injection", "content-safety"):
    stats = per_source(by_suite.get(suite, []))
    print(f"\\n{suite}")
    for source, s in sorted(stats.items(), key=lambda kv: -sum(kv[1].values())):
        pos, neg = s["tp"] + s["fn"], s["fp"] + s["tn"]
        recall = f"{s['tp'] / pos:.3f}" if pos else "  -  "
        fpr = f"{s['fp'] / neg:.3f}" if neg else "  -  "
        print(f"  {source:28} n={pos + neg:5}  recall {recall}  fpr {fpr}")"""),
    ("markdown", "## Which tier decided, and how fast"),
    ("code", """fig, ax = plt.subplots(figsize=(7, 3))
tiers = sorted({c["tier"] for c in cases})
bottom = np.zeros(len(names))
for tier in tiers:
    counts = np.array([sum(c["tier"] == tier for c in by_suite[s]) for s in names])
    ax.bar(names, counts, bottom=bottom, label=tier)
    bottom += counts
ax.set_ylabel("cases")
ax.legend(fontsize=8)
plt.xticks(rotation=20)
plt.tight_layout()
for suite in names:
    lat = np.array([c["latency_ms"] for c in by_suite[suite]])
    print(f"{suite:18} latency per case: p50 {np.percentile(lat, 50):7.2f} ms   p95 {np.percentile(lat, 95):7.2f} ms")"""),
]


def build(cells: list[tuple[str, str]], path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell(source) if kind == "markdown" else
                      nbformat.v4.new_code_cell(source) for kind, source in cells]
    NotebookClient(notebook, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    sys.stderr.write(f"wrote {path}\n")


def main() -> None:
    build(SCORECARD, ROOT / "notebooks" / "reading-a-scorecard.ipynb")


if __name__ == "__main__":
    main()
