"""Structured LLM calls: the one module that owns litellm and instructor.

`StructuredLLM` is the seam: the compiler and the judge ask it for a validated pydantic value.
`LiteLLMClient` reaches any litellm model string (``openai/...`` with an ``api_base``,
``ollama_chat/...``, ``ollama/...``, hosted providers); `policy.testing.FakeLLM` is the
scripted stand-in for unit tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from .errors import LLMOutputError, LLMUnavailableError

logger = logging.getLogger(__name__)

__all__ = ["LLMResult", "LiteLLMClient", "StructuredLLM", "StructuredMode", "choose_mode"]

T = TypeVar("T", bound=BaseModel)
StructuredMode = Literal["auto", "json_schema", "json", "tools", "md_json"]

_UNAVAILABLE_NAMES = (
    "APIConnectionError",
    "Timeout",
    "ServiceUnavailableError",
    "InternalServerError",
    "RateLimitError",
    "NotFoundError",
    "AuthenticationError",
    "BadGatewayError",
    "ConnectError",
    "ReadTimeout",
    "ConnectTimeout",
)


@dataclass(frozen=True)
class LLMResult(Generic[T]):
    value: T
    model: str
    latency_ms: float
    cost_usd: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class StructuredLLM(Protocol):
    """Asks a model for a value of a pydantic type; retries invalid output with the validation error."""

    model: str

    def complete(
        self,
        messages: list[dict[str, str]],
        response_model: type[T],
        *,
        timeout: float,
        max_retries: int = 2,
        max_tokens: int | None = None,
    ) -> LLMResult[T]: ...


def choose_mode(model: str, api_base: str | None) -> Literal["json_schema", "json", "tools", "md_json"]:
    """The structured-output mode a backend handles best.

    Local OpenAI-compatible servers (llama.cpp, LM Studio, vLLM) reliably honour JSON-object mode
    but several reject ``json_schema``; Ollama takes a JSON schema as its ``format``; hosted
    OpenAI-style APIs do tool calls well.
    """
    provider = model.split("/", 1)[0] if "/" in model else ""
    if provider in ("ollama", "ollama_chat"):
        return "json_schema"
    if provider in ("openai", "hosted_vllm", "lm_studio", "llamafile") and api_base:
        return "json"
    return "tools"


class LiteLLMClient:
    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        mode: StructuredMode = "auto",
        temperature: float = 0.0,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.mode = choose_mode(model, api_base) if mode == "auto" else mode
        self.temperature = temperature
        self._client: Any = None

    def _instructor(self) -> Any:
        if self._client is None:
            import instructor
            import litellm

            litellm.suppress_debug_info = True
            # Retries and their messages are ours (see complete); instructor's own would repeat each failure.
            logging.getLogger("instructor").setLevel(logging.CRITICAL)
            litellm.telemetry = False
            modes = {
                "json_schema": instructor.Mode.JSON_SCHEMA,
                "json": instructor.Mode.JSON,
                "tools": instructor.Mode.TOOLS,
                "md_json": instructor.Mode.MD_JSON,
            }
            self._client = instructor.from_litellm(litellm.completion, mode=modes[self.mode])
        return self._client

    def complete(
        self,
        messages: list[dict[str, str]],
        response_model: type[T],
        *,
        timeout: float,
        max_retries: int = 2,
        max_tokens: int | None = None,
    ) -> LLMResult[T]:
        client = self._instructor()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "response_model": response_model,
            "max_retries": max_retries,
            "timeout": timeout,
            "temperature": self.temperature,
            "num_retries": 0,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.api_base:
            kwargs["api_key"] = "sk-local"  # local servers ignore it; litellm's OpenAI path insists on one
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        started = time.perf_counter()
        # Retries are ours, not instructor's: its re-ask resends the whole failed answer with pydantic's
        # full error text, which overflows a small local model's context after one or two rounds. Ours
        # sends the answer clipped and the errors as one short line each.
        kwargs["max_retries"] = 0
        attempt_messages = list(messages)
        for attempt in range(max_retries + 1):
            kwargs["messages"] = attempt_messages
            try:
                with _no_stray_event_loop():
                    value, raw = client.chat.completions.create_with_completion(**kwargs)
                break
            except Exception as exc:  # litellm and instructor raise many types; sorted into our two below
                feedback = _output_feedback(exc)
                if feedback is None:  # not an answer that failed validation: nothing to ask again about
                    raise _translate(exc, self.model, self.api_base, timeout) from exc
                answer, problems = feedback
                if attempt == max_retries:
                    raise LLMOutputError(
                        f"the LLM {self.model} did not return valid structured output in {attempt + 1} "
                        f"attempt(s); its last answer had these problems:\n{problems}\n{_OUTPUT_FIX}"
                    ) from exc
                logger.warning("%s: answer %d was not valid, asking again:\n%s", self.model, attempt + 1, problems)
                attempt_messages = [
                    *messages,
                    {"role": "assistant", "content": answer},
                    {
                        "role": "user",
                        "content": "That answer is not valid:\n"
                        + problems
                        + "\nReply again with only the corrected JSON object, following the schema.",
                    },
                ]
        latency = (time.perf_counter() - started) * 1000
        usage = getattr(raw, "usage", None)
        return LLMResult(
            value=value,
            model=self.model,
            latency_ms=latency,
            cost_usd=_cost(raw),
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
        )


def _cost(raw: Any) -> float | None:
    try:
        import litellm

        cost = litellm.completion_cost(completion_response=raw)
    except Exception:  # unknown models have no price; that is not an error
        return None
    return float(cost) if cost else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for item in list(seen):
        for attribute in ("failed_attempts",):
            for attempt in getattr(item, attribute, None) or []:
                inner = getattr(attempt, "exception", None)
                if isinstance(inner, BaseException):
                    seen.append(inner)
    return seen


_OUTPUT_FIX = (
    "try a larger model, or another structured-output mode: judge.mode in the settings "
    "(MCP_GATEWAY_JUDGE__MODE=json_schema, json, tools or md_json), which the compiler uses too"
)
_ANSWER_CHARS = 3000
_MAX_PROBLEMS = 8


def _output_feedback(exc: BaseException) -> tuple[str, str] | None:
    """The failed answer (clipped) and its problems, one short line each; None if the output was not at fault."""
    from pydantic import ValidationError

    problems: list[str] = []
    for item in _chain(exc):
        if isinstance(item, ValidationError):
            for error in item.errors()[:_MAX_PROBLEMS]:
                where = ".".join(str(part) for part in error["loc"]) or "(the whole answer)"
                got = repr(error.get("input"))[:80]
                problems.append(f"- {where}: {error['msg']} (got {got})")
            break
        if isinstance(item, json.JSONDecodeError):
            problems.append(f"- not valid JSON: {item.msg} at line {item.lineno} column {item.colno}")
            break
    if not problems:
        return None
    answer = ""
    for attempt in getattr(exc, "failed_attempts", None) or []:
        answer = _completion_text(getattr(attempt, "completion", None)) or answer
    answer = answer or _completion_text(getattr(exc, "last_completion", None))
    if len(answer) > _ANSWER_CHARS:
        answer = answer[:_ANSWER_CHARS] + " …(cut)"
    return answer or "(no answer text)", "\n".join(problems)


def _completion_text(completion: Any) -> str:
    try:
        return str(completion.choices[0].message.content or "")
    except (AttributeError, IndexError, TypeError):
        return ""


def _translate(exc: Exception, model: str, api_base: str | None, timeout: float | None = None) -> Exception:
    where = f"{model}" + (f" at {api_base}" if api_base else "")
    for item in _chain(exc):
        name = type(item).__name__
        if "ContextWindowExceeded" in name:
            return LLMOutputError(
                f"the request did not fit the context window of the LLM {where} ({_first_line(item)}); "
                "serve the model with a longer context (e.g. llama.cpp --n_ctx 16384) or use a larger model"
            )
        if "IncompleteOutput" in name:
            return LLMOutputError(
                f"the answer of the LLM {where} was cut off at its token limit before the JSON was complete; "
                "a model that answers more briefly, or a larger one, is needed"
            )
        if "Timeout" in name and timeout:
            return LLMUnavailableError(
                f"the LLM {where} did not answer within {timeout:g} s; a slow (e.g. local CPU) model needs a "
                "longer timeout (policy compile --timeout, or judge.timeout_s for the judge)"
            )
        if any(marker in name for marker in _UNAVAILABLE_NAMES) or isinstance(item, TimeoutError | ConnectionError):
            return LLMUnavailableError(
                f"the LLM {where} is unavailable ({name}: {_first_line(item)}); "
                "check that the server is running and the model name is right"
            )
    return LLMOutputError(
        f"the LLM {where} did not return valid structured output ({type(exc).__name__}: "
        f"{_first_line(exc)}); {_OUTPUT_FIX}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


@contextmanager
def _no_stray_event_loop() -> Iterator[None]:
    """Close the event loop litellm makes for itself during a blocking call.

    litellm runs its timing hooks on the calling thread's event loop. Called from the main
    thread with no loop running (`policy compile`, `policy test`), `asyncio.get_event_loop()`
    makes a new loop and leaves it set as that thread's loop, never closed: a leaked socket pair,
    and a ResourceWarning whenever it is collected. The loop it made is put back to what was there
    before and closed. Where the thread's loop cannot be read (another event loop policy), nothing
    is done."""
    before = _current_loop()
    try:
        yield
    finally:
        after = _current_loop()
        if after is not None and after is not before and not after.is_running():
            asyncio.set_event_loop(before)
            after.close()


def _current_loop() -> asyncio.AbstractEventLoop | None:
    # The loop set for this thread, read without making one (asyncio.get_event_loop() would).
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None
