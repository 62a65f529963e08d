"""The real-LLM path, opt-in: a local model served on loopback (see DEVELOPERS.md, "Live tests").

    bash evals/local-llm/setup.sh && bash evals/local-llm/serve.sh &
    MCP_GATEWAY_LIVE_API_BASE=http://127.0.0.1:18080/v1 MCP_GATEWAY_LIVE_OLLAMA_BASE=http://127.0.0.1:18081 \
        .venv/bin/pytest -m live tests/live -v

These assert what must hold whatever the model's quality: valid structured output, a verified or
repaired compile that never contradicts its own examples, judge answers that pass the integrity
check. How often a 1.5B model is right is measured by the scorecard, not asserted here.
"""

from __future__ import annotations

import json
import os
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
