"""The real-LLM path, opt-in: a local model served on loopback (see DEVELOPERS.md, "Live tests").

    bash evals/local-llm/setup.sh && bash evals/local-llm/serve.sh &
    MCP_GATEWAY_LIVE_API_BASE=http://127.0.0.1:18080/v1 MCP_GATEWAY_LIVE_OLLAMA_BASE=http://127.0.0.1:18081 \
        .venv/bin/pytest -m live tests/live -v

With MCP_GATEWAY_LIVE_RESULTS=evals/results/live-policies.json, the compile-and-test run of the
built-in and example policies is also written there for the scorecard.

These assert what must hold whatever the model's quality: valid structured output, a verified or
repaired compile that never contradicts its own examples, judge answers that pass the integrity
check. How often a 1.5B model is right is measured by the scorecard, not asserted here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policy.cache import MemoryVerdictCache
from policy.classifier import EmbedderPair
from policy.compiler import compile_policy
from policy.judge import Judge, canary_check
from policy.llm import LiteLLMClient
from policy.source import parse_source
from policy.testing import HashEmbedder
from policy.verify import rule_conflicts

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.timeout(1800)]

API_BASE = os.environ.get("MCP_GATEWAY_LIVE_API_BASE")
OLLAMA_BASE = os.environ.get("MCP_GATEWAY_LIVE_OLLAMA_BASE")
MODEL = os.environ.get("MCP_GATEWAY_LIVE_MODEL", "qwen-judge")
needs_server = pytest.mark.skipif(
    not API_BASE, reason="set MCP_GATEWAY_LIVE_API_BASE to a local OpenAI-compatible server"
)

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


@needs_server
def test_a_real_model_compiles_a_policy_that_never_contradicts_its_examples() -> None:
    source = parse_source(TRANSFERS, "no-large-transfers.md")
    llm = LiteLLMClient(f"openai/{MODEL}", api_base=API_BASE)
    models = EmbedderPair(minilm=HashEmbedder(name="minilm"), static=HashEmbedder(name="static"))
    policy = compile_policy(source, llm=llm, models=models, timeout=600)
    decisive = [rule for rule in policy.rules if rule.effect != "escalate"]
    assert rule_conflicts(decisive, source.examples) == []
    assert policy.provenance.compiler == f"openai/{MODEL}"
    assert policy.judge is not None and policy.judge.rubric.strip()
    sys.stderr.write(
        f"\nlive compile: {len(policy.rules)} rules ({[r.effect for r in policy.rules]}), "
        f"repaired {policy.verification.repaired_rules}, escalated {policy.verification.escalated_rules}, "
        f"examples {policy.verification.correct}/{policy.verification.examples}\n"
    )


@needs_server
def test_the_judge_answers_canaries_with_valid_verdicts_over_the_openai_api() -> None:
    judge = Judge(LiteLLMClient(f"openai/{MODEL}", api_base=API_BASE), MemoryVerdictCache(), timeout_s=300)
    results = canary_check(judge)
    assert all("integrity check" not in r.detail and "unavailable" not in r.detail for r in results), results
    sys.stderr.write(f"\nlive canaries (openai): {[(r.ok, round(r.latency_ms)) for r in results]}\n")


@pytest.mark.skipif(not OLLAMA_BASE, reason="set MCP_GATEWAY_LIVE_OLLAMA_BASE to an Ollama-protocol server")
def test_the_judge_answers_through_the_ollama_chat_api() -> None:
    judge = Judge(LiteLLMClient(f"ollama_chat/{MODEL}", api_base=OLLAMA_BASE), MemoryVerdictCache(), timeout_s=300)
    results = canary_check(judge)
    assert all("integrity check" not in r.detail and "unavailable" not in r.detail for r in results), results
    sys.stderr.write(f"\nlive canaries (ollama_chat): {[(r.ok, round(r.latency_ms)) for r in results]}\n")


@needs_server
def test_policy_check_with_a_live_judge_decides_by_the_judge(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "no-refunds.md").write_text(
        "---\napplies_to: [tool_result]\non_error: allow\n---\nTool results must never promise a customer a refund.\n",
        encoding="utf-8",
    )
    subject = {"kind": "tool_result", "tool": "crm", "text": "Dear customer, we will refund the full amount today."}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "policy",
            "check",
            "--no-builtin",
            "--policies",
            str(policies),
            "--judge-model",
            f"openai/{MODEL}",
            "--judge-api-base",
            str(API_BASE),
        ],
        input=json.dumps(subject),
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MCP_GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "MCP_GATEWAY_JUDGE__TIMEOUT_S": "300"},
    )
    assert result.returncode == 0, result.stderr
    [verdict] = json.loads(result.stdout)["verdicts"]
    assert verdict["tier"] == "judge", verdict
    assert verdict["judge_rationale"]


REPO = Path(__file__).resolve().parents[2]


def _gateway(args: list[str], tmp_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MCP_GATEWAY_CACHE_DIR": str(tmp_path / "cache"), "MCP_GATEWAY_JUDGE__TIMEOUT_S": "300"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _case_count(directory: Path) -> int:
    import yaml

    total = 0
    for path in directory.glob("*.cases.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        total += len(data["cases"] if isinstance(data, dict) else data)
    return total


@needs_server
@pytest.mark.timeout(14400)
def test_builtin_and_example_policies_compile_with_a_real_model_and_pass_through_policy_test(
    tmp_path: Path,
) -> None:
    work = tmp_path / "policies"
    shutil.copytree(REPO / "policies", work)
    examples = work / "examples"
    compiled: dict[str, dict[str, object]] = {}
    for directory in (work, examples):
        result = _gateway(
            ["policy", "compile", str(directory), "--model", f"openai/{MODEL}", "--api-base", str(API_BASE),
             "--force", "--json", "--timeout", "900"],
            tmp_path,
            timeout=7000,
        )
        # 1: a compiled policy contradicts its own examples (lock still written); 3: the model could not
        # compile some policy (its shipped offline lock stays in place). Anything else is a crash.
        assert result.returncode in (0, 1, 3), result.stderr
        for item in json.loads(result.stdout)["policies"]:
            if item["status"] == "failed":
                # A small model's failure must be reported as such, naming what went wrong.
                assert "openai/" + MODEL in item["error"], item
                error = item["error"].replace(str(tmp_path) + "/", "")  # keep the results free of temp paths
                compiled[item["id"]] = {"status": "failed", "rules": None, "error": error[:300]}
                continue
            lock = json.loads(Path(item["lock"]).read_text(encoding="utf-8"))
            assert lock["provenance"]["compiler"] == f"openai/{MODEL}", item
            compiled[item["id"]] = {"status": item["status"], "rules": len(lock["rules"])}
    assert set(compiled) == {
        "prompt-injection", "tool-poisoning", "content-safety", "secrets", "pii",
        "no-large-transfers", "no-refund-promises", "read-only-production",
    }
    assert any(row["status"] != "failed" for row in compiled.values()), compiled
    # What we trained and wrote by hand survives an LLM compile: heads, thresholds and hand rules.
    for policy_id in ("prompt-injection", "tool-poisoning", "content-safety"):
        if compiled[policy_id]["status"] == "failed":
            continue
        shipped = json.loads((REPO / "policies" / f"{policy_id}.lock.json").read_text(encoding="utf-8"))
        fresh = json.loads((work / f"{policy_id}.lock.json").read_text(encoding="utf-8"))
        assert fresh["classifier"]["head"] == shipped["classifier"]["head"]
        assert fresh["classifier"]["thresholds"] == shipped["classifier"]["thresholds"]
        hand = [rule["id"] for rule in shipped["rules"]]
        assert [rule["id"] for rule in fresh["rules"]][: len(hand)] == hand

    cassette = tmp_path / "judge.cassette.jsonl"
    live = _gateway(
        ["policy", "test", str(work), str(examples), "--format", "json", "--judge-model", f"openai/{MODEL}",
         "--judge-api-base", str(API_BASE), "--record", str(cassette)],
        tmp_path,
        timeout=7000,
    )
    assert live.returncode in (0, 1), live.stderr  # 1: some hand-written case failed (quality, not a crash)
    report = json.loads(live.stdout)
    assert len(report["cases"]) == _case_count(work) + _case_count(examples)
    assert set(report["policies"]) == set(compiled)
    judge_calls = sum(m.get("judge_calls", 0) for m in report["policies"].values())
    assert judge_calls > 0, "no case reached the judge"

    # The recorded answers replay offline (the API base points nowhere) to the same decisions.
    replayed = _gateway(
        ["policy", "test", str(work), str(examples), "--format", "json", "--judge-api-base",
         "http://127.0.0.1:9/v1", "--judge-model", f"openai/{MODEL}", "--replay", str(cassette)],
        tmp_path,
        timeout=1800,
    )
    assert replayed.returncode == live.returncode, replayed.stderr
    again = {case["id"]: case["got"] for case in json.loads(replayed.stdout)["cases"]}
    assert again == {case["id"]: case["got"] for case in report["cases"]}

    rows = {
        policy_id: {
            **compiled[policy_id],
            **{k: metrics.get(k) for k in ("tp", "fp", "tn", "fn", "f1", "judge_calls", "tiers")},
        }
        for policy_id, metrics in report["policies"].items()
    }
    failed = [case["id"] for case in report["cases"] if case["expected"] != case["got"]]
    sys.stderr.write(f"\nlive policies: {json.dumps(rows)}\nfailed cases: {failed}\n")
    out = os.environ.get("MCP_GATEWAY_LIVE_RESULTS")
    if out:
        Path(out).write_text(
            json.dumps(
                {"model": f"openai/{MODEL}", "policies": rows, "failed_cases": failed,
                 "judge_calls": judge_calls, "cases": len(report["cases"])},
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
