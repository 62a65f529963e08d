from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from policy.compiler import DraftPolicy, RuleRepair, compile_policy
from policy.engine import Engine
from policy.errors import CompileError, LLMOutputError
from policy.lockfile import LockStatus, dumps, lock_path, lock_status, read_lock, write_lock
from policy.source import parse_source
from policy.subject import Subject, SubjectKind
from policy.testing import FakeLLM, UnscriptedCallError
from policy.verdict import Outcome, Tier

from .helpers import fake_models

GOLDEN = Path(__file__).parent / "golden"

TRANSFERS = """---
applies_to: [tool_call]
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

WRONG_RULE = {
    "id": "big",
    "description": "amount over 1000",
    "when": {"path": "arguments.amount", "op": "gt", "value": 1000},
    "effect": "allow",
}
RIGHT_RULE = {**WRONG_RULE, "effect": "violate", "description": "more than 1,000 dollars"}


def draft(
    rules: list[dict[str, Any]],
    violations: list[dict[str, Any]] | None = None,
    negatives: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "title": "No large transfers",
        "applies_to": ["tool_call"],
        "tools": ["transfer*"],
        "rules": rules,
        "rules_are_complete": True,
        "violations": violations or [{"tool": "transfer", "arguments": {"amount": 25000, "to": "acct-3"}}],
        "hard_negatives": negatives or [{"tool": "transfer", "arguments": {"amount": 500, "to": "acct-3"}}],
        "rubric": "Block any single transfer of more than 1,000 dollars.",
        "criteria": ["amount > 1000"],
    }


def source() -> Any:
    return parse_source(TRANSFERS, "policies/no-large-transfers.md")


def test_a_wrong_rule_from_a_small_model_is_repaired_from_the_examples() -> None:
    llm = (
        FakeLLM()
        .script(DraftPolicy, "1,000 dollars", draft([WRONG_RULE]))
        .script(RuleRepair, "allows an example that is a VIOLATION", {"rules": [RIGHT_RULE]})
    )
    policy = compile_policy(source(), llm=llm, models=fake_models())
    assert [(r.id, r.effect) for r in policy.rules] == [("big", "violate")]
    assert policy.verification.repaired_rules == ["big"]
    assert policy.verification.status == "verified"
    assert policy.verification.correct == 4
    assert policy.rules_decide is True
    assert policy.provenance.compiler == "fake/scripted"
    assert policy.scope.tools == ["transfer*"]
    repair_prompt = llm.calls[1][1][-1]["content"]
    assert '"amount": 5000' in repair_prompt


def test_a_rule_that_cannot_be_repaired_is_demoted_to_escalate() -> None:
    llm = (
        FakeLLM()
        .script(DraftPolicy, "1,000 dollars", draft([WRONG_RULE]))
        .script(RuleRepair, "VIOLATION", {"rules": [WRONG_RULE]})
    )
    policy = compile_policy(source(), llm=llm, models=fake_models(), repair_rounds=2)
    assert [(r.id, r.effect) for r in policy.rules] == [("big", "escalate")]
    assert policy.verification.escalated_rules == ["big"]
    assert policy.rules_decide is False
    assert len(llm.calls) == 3


def test_generated_examples_that_contradict_the_rules_are_dropped() -> None:
    contradicting = [{"tool": "transfer", "arguments": {"amount": 50, "to": "x"}}]  # "violation" under 1,000
    llm = FakeLLM().script(DraftPolicy, "1,000", draft([RIGHT_RULE], violations=contradicting))
    policy = compile_policy(source(), llm=llm, models=fake_models())
    assert policy.classifier is not None
    texts = [e.text for e in policy.classifier.exemplars if e.origin == "generated"]
    assert texts == []
    assert policy.verification.dropped_exemplars == 1


def test_the_compiled_policy_decides_new_subjects_correctly() -> None:
    llm = FakeLLM().script(DraftPolicy, "1,000", draft([RIGHT_RULE]))
    policy = compile_policy(source(), llm=llm, models=fake_models())
    engine = Engine([policy], models=fake_models())
    big = Subject(kind=SubjectKind.TOOL_CALL, tool="transfer", arguments={"amount": "$7,500", "to": "acct-5"})
    [verdict] = engine.check(big)
    assert (verdict.outcome, verdict.tier) == (Outcome.VIOLATION, Tier.RULES)
    assert engine.check(Subject(kind=SubjectKind.TOOL_CALL, tool="list_accounts")) == []


def test_an_offline_compile_says_what_it_left_out_and_still_classifies() -> None:
    policy = compile_policy(source(), llm=None, models=fake_models())
    assert policy.rules == []
    assert policy.provenance.compiler == "offline"
    assert any("rules" in item for item in policy.provenance.omitted)
    assert policy.classifier is not None
    assert {e.origin for e in policy.classifier.exemplars} == {"source"}
    assert policy.judge is not None and "1,000 dollars" in policy.judge.rubric


def test_llm_failure_is_a_compile_error_naming_the_file() -> None:
    llm = FakeLLM().script(DraftPolicy, "", LLMOutputError("not JSON after 2 retries"))
    with pytest.raises(CompileError, match=r"policies/no-large-transfers.md: compiling with fake/scripted failed"):
        compile_policy(source(), llm=llm, models=fake_models())


def test_the_fake_llm_refuses_unscripted_questions() -> None:
    with pytest.raises(UnscriptedCallError, match="DraftPolicy"):
        compile_policy(source(), llm=FakeLLM(), models=fake_models())


def test_lock_files_are_canonical_and_match_the_golden_file(tmp_path: Path) -> None:
    llm = (
        FakeLLM()
        .script(DraftPolicy, "1,000 dollars", draft([WRONG_RULE]))
        .script(RuleRepair, "VIOLATION", {"rules": [RIGHT_RULE]})
    )
    policy = compile_policy(source(), llm=llm, models=fake_models())
    golden = GOLDEN / "no-large-transfers.lock.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(dumps(policy), encoding="utf-8")
    assert dumps(policy) == golden.read_text(encoding="utf-8")
    path = tmp_path / "x.lock.json"
    write_lock(policy, path)
    assert read_lock(path) == policy
    assert json.loads(path.read_text())["schema_version"] == 1


def test_lock_status_tracks_the_source(tmp_path: Path) -> None:
    path = tmp_path / "no-large-transfers.md"
    path.write_text(TRANSFERS, encoding="utf-8")
    from policy.source import load_source

    src = load_source(path)
    assert lock_status(src) is LockStatus.MISSING
    write_lock(compile_policy(src, llm=None, models=fake_models()), lock_path(path))
    assert lock_status(src) is LockStatus.FRESH
    path.write_text(TRANSFERS.replace("1,000", "2,000"), encoding="utf-8")
    assert lock_status(load_source(path)) is LockStatus.STALE
    lock_path(path).write_text("{not json", encoding="utf-8")
    assert lock_status(load_source(path)) is LockStatus.INVALID


def test_editing_a_rules_file_the_policy_names_makes_its_lock_stale(tmp_path: Path) -> None:
    from policy.source import load_source

    rules = tmp_path / "p.rules.yaml"
    rules.write_text("rules: []\n", encoding="utf-8")
    path = tmp_path / "p.md"
    path.write_text("---\nrules: p.rules.yaml\napplies_to: [tool_call]\n---\nNo transfers.\n", encoding="utf-8")
    src = load_source(path)
    write_lock(compile_policy(src, llm=None, models=fake_models()), lock_path(path))
    assert lock_status(load_source(path)) is LockStatus.FRESH
    rules.write_text(
        "rules:\n  - {id: big, when: {path: arguments.amount, op: gt, value: 10}, effect: violate}\n",
        encoding="utf-8",
    )
    assert lock_status(load_source(path)) is LockStatus.STALE


def test_hand_written_rules_are_compiled_first_and_must_agree_with_the_examples(tmp_path: Path) -> None:
    (tmp_path / "p.rules.yaml").write_text(
        "decide: true\nrules:\n  - id: over\n    description: over the limit\n"
        "    when: {path: arguments.amount, op: gt, value: 1000}\n    effect: violate\n", encoding="utf-8")
    source_text = TRANSFERS.replace("applies_to: [tool_call]", "applies_to: [tool_call]\nrules: p.rules.yaml")
    path = tmp_path / "p.md"
    path.write_text(source_text, encoding="utf-8")
    from policy.source import load_source

    policy = compile_policy(load_source(path), llm=None, models=fake_models())
    assert [rule.id for rule in policy.rules] == ["over"]
    assert policy.rules_decide is True  # the author's claim, confirmed by every example
    assert policy.verification.correct == policy.verification.examples
    (tmp_path / "p.rules.yaml").write_text(
        "- id: wrong\n  description: flags everything\n  when: {path: tool, op: equals, value: transfer}\n"
        "  effect: violate\n", encoding="utf-8")
    with pytest.raises(CompileError, match=r"hand-written rule 'wrong' marks an ALLOWED example"):
        compile_policy(load_source(path), llm=None, models=fake_models())


def test_an_mlp_head_round_trips_through_the_lock_and_scores_like_its_layers() -> None:
    import numpy as np

    from policy.compiled import ClassifierSpec, Layer, MLPHead

    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(4, 1)).astype(np.float32)
    head = MLPHead(embedding="minilm", layers=[Layer.of(first, np.zeros(4)), Layer.of(second, np.array([0.5]))])
    spec = ClassifierSpec.model_validate_json(ClassifierSpec(head=head).model_dump_json())
    vectors = rng.normal(size=(3, 8)).astype(np.float32)
    expected = np.maximum(vectors @ first.astype(np.float16).astype(np.float32), 0) @ second.astype(
        np.float16).astype(np.float32) + 0.5
    assert spec.head is not None
    assert np.allclose(spec.head.logits(vectors), expected[:, 0], atol=1e-3)


def test_a_head_file_names_the_unit_size_its_head_was_trained_on_and_the_lock_keeps_it(tmp_path: Path) -> None:
    from policy.source import load_source

    source = "---\napplies_to: [tool_result]\nclassifier: p.head.json\njudge: never\n---\n# Odd\n\nNothing odd.\n"
    (tmp_path / "p.md").write_text(source, encoding="utf-8")
    head = {"head": {"kind": "linear", "embedding": "minilm", "weights": [0.0] * 384, "bias": 0.0}}
    for chunk_chars, expected in ((200, 200), (None, 400)):
        written = head if chunk_chars is None else {**head, "chunk_chars": chunk_chars}
        (tmp_path / "p.head.json").write_text(json.dumps(written), encoding="utf-8")
        policy = compile_policy(load_source(tmp_path / "p.md"), llm=None, models=fake_models())
        assert policy.classifier is not None and policy.classifier.chunk_chars == expected
    (tmp_path / "p.head.json").write_text(json.dumps({**head, "chunk_chars": 50}), encoding="utf-8")
    with pytest.raises(CompileError, match=r"p.head.json: not a valid classifier file"):
        compile_policy(load_source(tmp_path / "p.md"), llm=None, models=fake_models())


def test_a_bad_rule_deep_in_a_condition_is_named_with_its_own_problem_and_place(tmp_path: Path) -> None:
    from policy.compiler import load_rules
    from policy.source import load_source

    (tmp_path / "p.md").write_text("---\nrules: p.rules.yaml\n---\nNo shouting.\n", encoding="utf-8")
    rules = tmp_path / "p.rules.yaml"
    nested = (
        "rules:\n  - id: shout\n    description: d\n    effect: violate\n    when:\n      all:\n"
        "        - {path: kind, op: in, value: [tool_result]}\n        - {path: text, op: regex, value: '(a+)+b'}\n"
    )
    rules.write_text(nested, encoding="utf-8")
    with pytest.raises(CompileError) as caught:
        load_rules(load_source(tmp_path / "p.md"))
    message = str(caught.value)
    assert "rule 1 ('shout') is invalid at 'when.all.1': regex '(a+)+b' nests quantifiers" in message, message
    assert "nests quantifiers" in message and "Field required" not in message and "function-after" not in message

    rules.write_text(nested.replace("op: in, value: [tool_result]", "op: gt, value: many"), encoding="utf-8")
    with pytest.raises(CompileError) as caught:
        load_rules(load_source(tmp_path / "p.md"))
    assert "needs a number as value" in str(caught.value) and "'when.all.0'" in str(caught.value), caught.value
