"""The real litellm + instructor path, end to end, against a scripted server on loopback."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from policy.cache import MemoryVerdictCache
from policy.compiler import compile_policy
from policy.engine import Engine
from policy.errors import LLMOutputError, LLMUnavailableError
from policy.judge import Judge
from policy.llm import LiteLLMClient, choose_mode
from policy.source import parse_source
from policy.subject import Subject, SubjectKind
from policy.verdict import Outcome, Tier

from ..llm_server import scripted_llm_server
from .helpers import fake_models

pytestmark = pytest.mark.integration


class _Tiny(BaseModel):
    answer: int


POLICY = """---
applies_to: [tool_call]
---
Never move more than 1,000 dollars in one transfer.

## Violations
- transfer {"amount": 5000}
## Allowed
- transfer {"amount": 999}
"""

DRAFT = {
    "title": "No large transfers",
    "applies_to": ["tool_call"],
    "tools": ["transfer*"],
    "rules": [
        {
            "id": "over-limit",
            "description": "more than 1,000 dollars",
            "when": {"path": "arguments.amount", "op": "gt", "value": 1000},
            "effect": "violate",
        }
    ],
    "rules_are_complete": True,
    "violations": [{"tool": "transfer", "arguments": {"amount": 12000}}],
    "hard_negatives": [{"tool": "transfer", "arguments": {"amount": 100}}],
    "rubric": "Block a single transfer above 1,000 dollars.",
    "criteria": ["amount above 1000"],
}


def judge_reply(violates: bool) -> Any:
    def reply(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        nonce = system.split('exactly the string "')[1].split('"')[0]
        return json.dumps(
            {
                "evidence": "amount 5000",
                "reasoning": "over the limit" if violates else "fine",
                "violates": violates,
                "confidence": 0.9,
                "check": nonce,
            }
        )

    return reply


def test_compile_goes_through_litellm_to_an_openai_compatible_server() -> None:
    with scripted_llm_server() as server:
        server.script("1,000 dollars", json.dumps(DRAFT))
        llm = LiteLLMClient("openai/scripted", api_base=f"{server.url}/v1")
        policy = compile_policy(parse_source(POLICY, "p.md"), llm=llm, models=fake_models(), timeout=30)
    assert [rule.id for rule in policy.rules] == ["over-limit"]
    assert policy.rules_decide is True
    path, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert body["response_format"]["type"] == "json_object"  # JSON mode for a local OpenAI-compatible server
    assert policy.provenance.compiler == "openai/scripted"


def test_invalid_output_is_retried_with_the_validation_error_then_accepted() -> None:
    with scripted_llm_server() as server:
        server.script("1,000 dollars", json.dumps({**DRAFT, "applies_to": ["teleport"]}), times=1)
        server.script("1,000 dollars", json.dumps(DRAFT))
        llm = LiteLLMClient("openai/scripted", api_base=f"{server.url}/v1")
        policy = compile_policy(parse_source(POLICY, "p.md"), llm=llm, models=fake_models(), timeout=30)
    assert len(server.requests) == 2
    retry = server.requests[1][1]["messages"]
    assert "teleport" in json.dumps(retry)
    # The re-ask is compact: the original question, the failed answer, one short line per problem.
    assert len(retry) == len(server.requests[0][1]["messages"]) + 2
    assert "- applies_to.0:" in retry[-1]["content"] and "errors.pydantic.dev" not in retry[-1]["content"]
    assert policy.rules[0].id == "over-limit"


def test_output_that_never_validates_fails_with_a_clear_message() -> None:
    with scripted_llm_server() as server:
        server.script("", "I think this policy is about money.")
        llm = LiteLLMClient("openai/scripted", api_base=f"{server.url}/v1")
        with pytest.raises(LLMOutputError, match="did not return valid structured output") as raised:
            llm.complete([{"role": "user", "content": "x"}], _Tiny, timeout=10, max_retries=1)
    assert len(server.requests) == 2
    assert "in 2 attempt(s); its last answer had these problems:\n- " in str(raised.value)


def test_a_server_that_is_down_is_reported_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = LiteLLMClient("openai/scripted", api_base=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(LLMUnavailableError, match="unavailable"):
        llm.complete([{"role": "user", "content": "x"}], _Tiny, timeout=5, max_retries=0)


def test_a_hanging_server_times_out_as_unavailable() -> None:
    with scripted_llm_server() as server:
        server.hang = threading.Event()
        llm = LiteLLMClient("openai/scripted", api_base=f"{server.url}/v1")
        with pytest.raises(LLMUnavailableError, match=r"did not answer within 1 s; .*--timeout"):
            llm.complete([{"role": "user", "content": "x"}], _Tiny, timeout=1, max_retries=0)


def test_a_request_longer_than_the_context_window_says_so() -> None:
    with scripted_llm_server() as server:
        message = "This model's maximum context length is 8192 tokens. However, you requested 13312 tokens."
        server.fail_with = (400, {"error": {"message": message, "type": "invalid_request_error",
                                            "code": "context_length_exceeded"}})
        llm = LiteLLMClient("openai/scripted", api_base=f"{server.url}/v1")
        with pytest.raises(LLMOutputError, match=r"did not fit the context window .*--n_ctx"):
            llm.complete([{"role": "user", "content": "x"}], _Tiny, timeout=10, max_retries=0)


def test_the_judge_goes_through_litellm_to_ollamas_chat_api() -> None:
    policy = compile_policy(
        parse_source(POLICY.replace("## Violations", "## Violations"), "p.md"), llm=None, models=fake_models()
    )
    policy = policy.model_copy(update={"classifier": None})
    with scripted_llm_server() as server:
        server.script("Never move more than 1,000 dollars", judge_reply(True))
        llm = LiteLLMClient("ollama_chat/scripted", api_base=server.url)
        engine = Engine([policy], models=fake_models(), judge=Judge(llm, MemoryVerdictCache(), timeout_s=20))
        subject = Subject(kind=SubjectKind.TOOL_CALL, tool="transfer", arguments={"amount": 5000})
        [verdict] = engine.check(subject)
        [again] = engine.check(subject)
    assert (verdict.outcome, verdict.tier) == (Outcome.VIOLATION, Tier.JUDGE)
    assert verdict.judge_rationale == "over the limit"
    assert again.cache_hit is True
    assert [path for path, _ in server.requests] == ["/api/chat"]
    body = server.requests[0][1]
    assert isinstance(body.get("format"), dict)  # the JSON schema travels as Ollama's `format`
    assert "DATA-" in body["messages"][-1]["content"]


def test_backends_get_the_structured_mode_they_support() -> None:
    assert choose_mode("ollama_chat/qwen", "http://127.0.0.1:11434") == "json_schema"
    assert choose_mode("openai/local", "http://127.0.0.1:8080/v1") == "json"
    assert choose_mode("openai/gpt-4o-mini", None) == "tools"


def test_a_blocking_call_leaves_no_event_loop_of_litellms_behind() -> None:
    # litellm's timing hooks make an event loop on a thread that has none; nobody would close it
    from policy.llm import _current_loop

    assert _current_loop() is None or not _current_loop().is_running()  # type: ignore[union-attr]
    before = _current_loop()
    with scripted_llm_server() as server:
        server.script("1,000 dollars", json.dumps(DRAFT))
        llm = LiteLLMClient("openai/scripted", api_base=f"{server.url}/v1")
        compile_policy(parse_source(POLICY, "p.md"), llm=llm, models=fake_models(), timeout=30)
    assert _current_loop() is before
