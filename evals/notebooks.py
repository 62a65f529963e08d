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
        key = ("t" if c["got"] == c["expected"] else "f") + ("p" if c["got"] == "violation" else "n")
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
    path.parent.mkdir(parents=True, exist_ok=True)  # also the kernel's working directory
    NotebookClient(notebook, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, str(path))
    sys.stderr.write(f"wrote {path}\n")


POLICY_SOURCE = """---
applies_to: [tool_call]
tools: ["transfer*"]
---
# No large transfers

Never move more than 1,000 dollars in one transfer.

## Violations
- transfer {"amount": 5000, "to": "acct-9"}
- transfer {"amount": 1001, "to": "acct-2"}

## Allowed
- transfer {"amount": 999, "to": "acct-9"}
- transfer {"amount": 20, "to": "acct-1"}
"""

AUTHORING = [
    ("markdown", """# Authoring a policy

A policy is plain English in a Markdown file, with examples. This notebook writes one, compiles it,
looks at what the compiler produced and why, and checks subjects against it, with the real local
embedding model and no network.

The first compile has no LLM (`--offline`): it keeps the English as the judge's rubric and turns the
examples into classifier exemplars. Then the same source is compiled with a *scripted* LLM that
makes the mistake a real small model made here (Qwen2.5-Coder-1.5B wrote `amount > 1000 → allow`),
to show how verification catches and repairs it."""),
    ("code", f"""import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from gateway.runtime import build_models
from gateway.settings import load_settings
from policy.compiler import DraftPolicy, RuleRepair, compile_policy
from policy.engine import Engine
from policy.source import load_source
from policy.subject import Subject, SubjectKind
from policy.testing import FakeLLM

work = Path(tempfile.mkdtemp())
source_path = work / "no-large-transfers.md"
source_path.write_text({POLICY_SOURCE!r})
source = load_source(source_path)
print(source.id, "|", source.front.applies_to, "|", len(source.examples), "examples")"""),
    ("code", """models = build_models(load_settings())
offline = compile_policy(source, llm=None, models=models)
print("left out:", *offline.provenance.omitted, sep="\\n  ")
print("verification:", offline.verification.status, f"{offline.verification.correct}/{offline.verification.examples}")
for m in offline.verification.mismatches:
    print(f"  line {m.line}: expected {m.expected}, got {m.got} ({m.tier})")"""),
    ("markdown", """Similarity alone cannot tell 999 from 1,001 dollars: to an embedding model the exemplars look
alike. The heat map shows it, and it is why numeric limits belong in rules."""),
    ("code", """exemplars = offline.classifier.exemplars
vectors = models.minilm.encode([e.text for e in exemplars])
sims = vectors @ vectors.T
labels = [("V " if e.violation else "A ") + e.text.split("amount: ", 1)[1].split("\\n", 1)[0] for e in exemplars]
fig, ax = plt.subplots(figsize=(5, 4))
im = ax.imshow(sims, vmin=0.5, vmax=1, cmap="viridis")
ax.set_xticks(range(len(labels)), labels, rotation=45)
ax.set_yticks(range(len(labels)), labels)
fig.colorbar(im)
ax.set_title("cosine similarity of exemplars (V violation, A allowed)")
plt.tight_layout()"""),
    ("markdown", """## A compile with an LLM, verified

The scripted LLM first returns the wrong rule. The compiler checks it against the source's own
examples, sends the contradiction back, gets a corrected rule and, because the rules alone now decide
every example, records that the policy is decided by its rules."""),
    ("code", """wrong = {"id": "big", "description": "amount over 1000",
         "when": {"path": "arguments.amount", "op": "gt", "value": 1000}, "effect": "allow"}
draft = {"title": "No large transfers", "applies_to": ["tool_call"], "tools": ["transfer*"], "rules": [wrong],
         "rules_are_complete": True,
         "violations": [{"tool": "transfer", "arguments": {"amount": 25000, "to": "acct-3"}}],
         "hard_negatives": [{"tool": "transfer", "arguments": {"amount": 500, "to": "acct-3"}}],
         "rubric": "Block any single transfer of more than 1,000 dollars.", "criteria": ["amount > 1000"]}
fixed = {**wrong, "effect": "violate", "description": "more than 1,000 dollars"}
llm = FakeLLM().script(DraftPolicy, "1,000 dollars", draft).script(RuleRepair, "VIOLATION", {"rules": [fixed]})
compiled = compile_policy(source, llm=llm, models=models)
print("repaired:", compiled.verification.repaired_rules, "| rules decide:", compiled.rules_decide)
print("verification:", compiled.verification.status, f"{compiled.verification.correct}/{compiled.verification.examples}")
print("\\nwhat was sent back to the LLM:\\n")
print(llm.calls[1][1][-1]["content"][:700])"""),
    ("markdown", "## Checking subjects, with their traces"),
    ("code", """engine = Engine([compiled], models=models)
for amount in (50, 999, "1,000.01", "$7,500"):
    subject = Subject(kind=SubjectKind.TOOL_CALL, tool="transfer", arguments={"amount": amount, "to": "acct-4"})
    [verdict] = engine.check(subject)
    steps = ", ".join(f"{s.tier.value}:{s.result}" for s in verdict.trace)
    print(f"{str(amount):>9} -> {verdict.effective_action:<6} by {verdict.tier.value:<6} ({verdict.reason}) [{steps}]")"""),
]

AUDIT = [
    ("markdown", """# Audit analysis

The gateway writes one row per policy decision to a SQLite audit log. This notebook runs a short
session through the gateway in front of the bundled demo server (a real MCP client, real
subprocesses, the built-in policies), then reads the log: what was decided, by which tier, how fast,
and what the masked excerpts look like."""),
    ("code", """import json
import sqlite3
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from gateway.demo import run_demo

work = Path(tempfile.mkdtemp())
# The notebook's kernel already runs an event loop; the demo starts its own in a worker thread.
with ThreadPoolExecutor(1) as pool:
    report = pool.submit(run_demo, work).result()
db = sqlite3.connect(work / "audit.db")
db.row_factory = sqlite3.Row
rows = [dict(r) for r in db.execute("SELECT * FROM decisions ORDER BY id")]
print(len(rows), "decisions;", Counter(r["applied"] for r in rows))"""),
    ("code", """policies = sorted({r["policy"] for r in rows})
outcomes = ["allow", "mask", "block", "warn", "audit"]
counts = np.array([[sum(1 for r in rows if r["policy"] == p and r["applied"] == o) for o in outcomes] for p in policies])
fig, ax = plt.subplots(figsize=(7, 3))
left = np.zeros(len(policies))
for j, outcome in enumerate(outcomes):
    ax.barh(policies, counts[:, j], left=left, label=outcome)
    left += counts[:, j]
ax.set_xlabel("decisions")
ax.legend(fontsize=8)
plt.tight_layout()"""),
    ("code", """latency = {}
for r in rows:
    for step in json.loads(r["trace"]):
        latency.setdefault(step["tier"], []).append(max(step["latency_ms"], 1e-3))
fig, ax = plt.subplots(figsize=(7, 3))
ax.boxplot(list(latency.values()), tick_labels=list(latency.keys()), orientation="horizontal")
ax.set_xscale("log")
ax.set_xlabel("ms per tier (log)")
plt.tight_layout()
for tier, values in latency.items():
    print(f"{tier:11} n={len(values):3}  p50 {np.percentile(values, 50):8.3f} ms")"""),
    ("markdown", "Excerpts are masked with every span any policy found, then scanned again for secrets: no raw secret is stored."),
    ("code", """for r in rows:
    if r["applied"] != "allow":
        print(f"{r['tool']:15} {r['policy']:17} {r['applied']:6} {r['excerpt'][:110]!r}")"""),
]

NOTEBOOKS = {"reading-a-scorecard": SCORECARD, "authoring-a-policy": AUTHORING, "audit-analysis": AUDIT}


def main() -> None:
    for name in sys.argv[1:] or list(NOTEBOOKS):
        build(NOTEBOOKS[name], ROOT / "notebooks" / f"{name}.ipynb")


if __name__ == "__main__":
    main()
