"""The engine host's load: the cyclic collector is paused while models load, and what they loaded is frozen."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from gateway import enginehost
from gateway.enginehost import INLINE_CHARS, MEMO_KEY_CHARS, EngineHost
from gateway.runtime import Runtime
from policy.cache import MemoryVerdictCache
from policy.compiled import CompiledPolicy, JudgeSpec, Scope
from policy.conditions import Predicate, Rule
from policy.detectors import DetectorRegistry
from policy.engine import Engine
from policy.judge import Judge
from policy.subject import Subject, SubjectKind
from policy.testing import FakeLLM
from policy.verdict import Action, Outcome, Span, Tier, Verdict
from tests.policy.helpers import make_policy


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _load(factory: object) -> EngineHost:
    host = EngineHost(factory, warm=False)  # type: ignore[arg-type]
    host.start()
    assert host.wait_ready(30)
    return host


def test_what_the_load_made_is_frozen_and_the_collector_runs_again() -> None:
    gc.unfreeze()
    during: list[bool] = []
    kept: list[list[int]] = []

    def factory() -> Runtime:
        during.append(gc.isenabled())
        kept.extend([i] for i in range(5000))  # long-lived containers, like a model's modules
        return Runtime(engine=Engine([]), loaded=(), judge=None)

    host = _load(factory)
    assert host.runtime is not None
    assert during == [False]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= 5000


def test_a_failed_load_still_turns_the_collector_back_on() -> None:
    def factory() -> Runtime:
        raise RuntimeError("no model here")

    host = _load(factory)
    assert host.runtime is None
    assert gc.isenabled()


def test_a_collector_the_embedding_process_turned_off_stays_off() -> None:
    gc.disable()
    _load(lambda: Runtime(engine=Engine([]), loaded=(), judge=None))
    assert not gc.isenabled()


def test_the_load_starts_when_a_server_has_answered_initialize_or_at_the_first_check() -> None:
    from gateway.guards import Guard
    from policy.subject import Subject, SubjectKind

    def empty() -> Runtime:
        return Runtime(engine=Engine([]), loaded=(), judge=None)

    answered, checked = EngineHost(empty, warm=False), EngineHost(empty, ready_timeout_s=5, warm=False)
    assert not answered.wait_ready(0.2) and not checked.wait_ready(0.2)  # nothing loads before it is asked to

    async def relay() -> None:
        await Guard(answered).initialize_result("s", {"protocolVersion": "2025-11-25"})
        await checked.check(Subject(kind=SubjectKind.TOOL_CALL, server="s", tool="t"))

    anyio.run(relay)
    assert answered.wait_ready(30) and answered.runtime is not None
    assert checked.wait_ready(30) and checked.runtime is not None


def test_a_failed_background_check_of_instructions_is_logged_and_the_session_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.guards import Guard

    def slow() -> Runtime:
        time.sleep(0.5)  # still loading when the server answers initialize
        return Runtime(engine=Engine([]), loaded=(), judge=None)

    async def broken(*args: object) -> bool:
        raise RuntimeError("the check broke")

    guard = Guard(EngineHost(slow, warm=False))
    monkeypatch.setattr(guard, "_item_judged_ok", broken)

    async def session() -> dict[str, str]:
        async with anyio.create_task_group() as tg:
            answered = await guard.initialize_result("s", {"instructions": "Use the tools."}, later=tg)
        return answered  # the task group ended normally: the failure did not end it

    assert anyio.run(session) == {"instructions": "Use the tools."}
    assert "checking the instructions of server 's' failed" in caplog.text


def test_a_check_abandoned_while_the_engine_loads_leaves_no_thread_once_the_gateway_stops() -> None:
    # A client that leaves while the models load: its relay abandons the check waiting for them, on a worker
    # thread the process must join before it exits. Once the gateway stops, that thread must end at once,
    # not when the load is done (a minute, the first time the static table is built).
    release = threading.Event()

    def factory() -> Runtime:
        release.wait(60)
        return Runtime(engine=Engine([]), loaded=(), judge=None)

    host = EngineHost(factory, warm=False)
    subject = Subject(kind=SubjectKind.TOOL_RESULT, server="s", method="tools/call", text="hello")
    before = set(threading.enumerate())

    async def abandoned_check() -> None:
        with anyio.move_on_after(0.3):
            await host.check(subject)

    anyio.run(abandoned_check)
    waiting = [t for t in set(threading.enumerate()) - before if not t.daemon]
    assert waiting, "the check did not wait on a worker thread"
    host.stop()
    started = time.monotonic()
    for thread in waiting:
        thread.join(5)
    assert not [t for t in waiting if t.is_alive()] and time.monotonic() - started < 2
    release.set()


# --- the verdicts of short subjects, reused -------------------------------------------------------


class _CountingDetector:
    """Finds the word 'forbidden'; counts the strings it read, so a test can tell a reuse from a decision."""

    name = "counting"
    reuses_verdicts = True

    def __init__(self) -> None:
        self.scans = 0

    def scan(self, path: str, text: str) -> list[Span]:
        self.scans += 1
        start = text.find("forbidden")
        return [] if start < 0 else [Span(field=path, start=start, end=start + 9, label="forbidden")]


def _memo_host(*policies: CompiledPolicy, judge: Judge | None = None) -> tuple[EngineHost, _CountingDetector]:
    counting = _CountingDetector()
    detectors = DetectorRegistry({"counting": lambda: counting}, plugins=False)
    engine = Engine(list(policies), detectors=detectors, judge=judge)
    return _load(lambda: Runtime(engine=engine, loaded=(), judge=judge)), counting


def _calls_policy(**overrides: object) -> CompiledPolicy:
    fields: dict[str, object] = {
        "id": "no-big-or-forbidden",
        "kinds": [SubjectKind.TOOL_CALL, SubjectKind.TOOL_RESULT],
        "detectors": ["counting"],
        "rules": [
            Rule(id="big", description="over 1,000", when=Predicate(path="arguments.amount", op="gt", value=1000))
        ],
        "rules_decide": True,
    }
    fields.update(overrides)
    kinds = fields.pop("kinds")
    return make_policy(scope=Scope(kinds=kinds), **fields)  # type: ignore[arg-type]


def _call(amount: object, note: str = "pay the invoice") -> Subject:
    return Subject(
        kind=SubjectKind.TOOL_CALL,
        server="bank",
        tool="transfer",
        method="tools/call",
        arguments={"amount": amount, "note": note},
    )


def test_a_short_subject_met_again_gets_its_verdicts_back_marked_cached_without_a_new_decision() -> None:
    host, counting = _memo_host(_calls_policy())

    async def checks() -> list[list[Verdict]]:
        return [await host.check(subject) for subject in (_call(5000), _call(5000), _call(5000, "forbidden"))]

    first, again, other = anyio.run(checks)
    assert [v.outcome for v in first] == [Outcome.VIOLATION] and not first[0].cache_hit
    assert counting.scans == 4  # the call's two strings, for each of the two different subjects: none for the repeat
    unchanged = {"cache_hit", "latency_ms", "trace"}
    assert again[0].cache_hit and again[0].model_dump(exclude=unchanged) == first[0].model_dump(exclude=unchanged)
    assert again[0].trace[:-1] == first[0].trace and again[0].trace[-1].result == "reused"
    assert again[0].tier is Tier.RULES
    assert not other[0].cache_hit and other[0].evidence[0].label == "forbidden"


def test_a_reused_verdict_needs_the_very_same_subject_asked_the_same_way() -> None:
    masking = make_policy(
        id="mask-forbidden", action=Action.MASK, scope=Scope(kinds=[SubjectKind.TOOL_CALL]), detectors=["counting"]
    )
    host, _ = _memo_host(_calls_policy(), masking)
    same = _call(5000)

    async def checks() -> list[list[Verdict]]:
        return [
            await host.check(same),
            await host.check(_call(500)),  # the rule's value differs: allowed, not the first's violation
            await host.check(_call(5000.0)),  # 5000.0 is not 5000 in JSON: decided afresh (the same answer)
            await host.check(_call("5000")),  # a string: decided afresh (the rule reads it as a number too)
            await host.check(same.model_copy(update={"server": "other-bank"})),
            await host.check(same.model_copy(update={"kind": SubjectKind.TOOL_RESULT})),  # not masked there
            await host.check(same, which="masking"),  # the policies that mask only: not the first's two verdicts
            await host.check(same, which="not-masking"),
            await host.check(same),
        ]

    verdicts = anyio.run(checks)
    big = ("no-big-or-forbidden", Outcome.VIOLATION)
    small, unmasked = ("no-big-or-forbidden", Outcome.ALLOW), ("mask-forbidden", Outcome.ALLOW)
    assert [[(v.policy, v.outcome) for v in found] for found in verdicts] == [
        [big, unmasked],
        [small, unmasked],
        [big, unmasked],
        [big, unmasked],
        [big, unmasked],
        [big],
        [unmasked],
        [big],
        [big, unmasked],
    ]
    assert [[v.cache_hit for v in found] for found in verdicts] == [[False, False]] * 5 + [
        [False],
        [False],
        [False],
        [True, True],
    ]


def test_verdicts_of_the_judge_or_of_a_failure_are_not_reused_and_new_policies_forget_the_rest() -> None:
    llm = FakeLLM().script("JudgeAnswer", "", _judge_says_no)
    judge = Judge(llm, MemoryVerdictCache())
    needs_judge = make_policy(id="asks-the-judge", judge=JudgeSpec(rubric="Block refunds."))
    host, _ = _memo_host(needs_judge, judge=judge)
    subject = Subject(kind=SubjectKind.TOOL_RESULT, server="crm", tool="t", method="tools/call", text="refund sent")

    async def twice() -> list[list[Verdict]]:
        return [await host.check(subject), await host.check(subject)]

    first, second = anyio.run(twice)
    assert first[0].tier is Tier.JUDGE and second[0].tier is Tier.JUDGE
    assert judge.stats["cache_hits"] == 1  # the second went to the judge again, which answered from its cache

    failing, _ = _memo_host(make_policy(id="needs-a-judge", judge=JudgeSpec(rubric="Block refunds.")))  # no judge
    first, second = anyio.run(lambda: _both(failing, subject))
    assert first[0].tier is Tier.ON_ERROR and not second[0].cache_hit

    host, counting = _memo_host(_calls_policy())
    anyio.run(lambda: _both(host, _call(5000)))
    assert host.engine is not None
    host.engine.policies = [_calls_policy(id="renamed")]
    (again,) = anyio.run(host.check, _call(5000))
    assert again.policy == "renamed" and not again.cache_hit and counting.scans == 4


async def _both(host: EngineHost, subject: Subject) -> list[list[Verdict]]:
    return [await host.check(subject), await host.check(subject)]


def _judge_says_no(messages: list[dict[str, str]]) -> dict[str, object]:
    nonce = messages[0]["content"].split('exactly the string "')[1].split('"')[0]
    return {"evidence": "", "reasoning": "no refund promised", "violates": False, "confidence": 0.9, "check": nonce}


def test_a_long_subject_or_long_call_arguments_are_decided_every_time() -> None:
    host, _ = _memo_host(_calls_policy())
    long_text = _call(5000).model_copy(update={"kind": SubjectKind.TOOL_RESULT, "text": "x" * (INLINE_CHARS + 1)})
    long_context = _call(5000, "y" * MEMO_KEY_CHARS).model_copy(update={"kind": SubjectKind.TOOL_RESULT})

    async def checks() -> list[list[Verdict]]:
        return [await host.check(s) for s in (long_text, long_text, long_context, long_context)]

    verdicts = anyio.run(checks)
    assert [v[0].cache_hit for v in verdicts] == [False] * 4


def test_every_part_of_the_subject_and_of_the_question_is_part_of_what_is_remembered() -> None:
    scoped = _calls_policy(id="transfers-only")
    scoped = scoped.model_copy(update={"scope": Scope(kinds=scoped.scope.kinds, tools=["transfer"])})
    host, _ = _memo_host(_calls_policy(), scoped)
    base = _call(5000).model_copy(update={"kind": SubjectKind.TOOL_RESULT, "text": "sent"})
    variants = [
        base.model_copy(update={"tool": "transfer_all"}),
        base.model_copy(update={"method": "tasks/result"}),
        base.model_copy(update={"text": "sent!"}),
        base.model_copy(update={"structured": {"ok": True}}),
        base.model_copy(update={"metadata": {"uri": "bank://1"}}),
    ]

    async def checks() -> list[list[Verdict]]:
        found = [await host.check(base)]
        found += [await host.check(variant) for variant in variants]
        found.append(await host.check(base, tool_scoped=True))  # only the policy that names tools
        found.append(await host.check(base))
        return found

    verdicts = anyio.run(checks)
    assert [[v.cache_hit for v in found] for found in verdicts] == [
        [False, False],
        [False],  # transfer_all: the policy scoped to 'transfer' is not asked
        [False, False],
        [False, False],
        [False, False],
        [False, False],
        [False],
        [True, True],
    ]
    assert [v.policy for v in verdicts[-2]] == ["transfers-only"]


def test_a_subject_one_of_whose_policies_went_to_the_judge_is_decided_afresh_for_every_policy() -> None:
    llm = FakeLLM().script("JudgeAnswer", "", _judge_says_no)
    judge = Judge(llm, MemoryVerdictCache())
    asks = make_policy(id="asks-the-judge", judge=JudgeSpec(rubric="Block refunds."))
    host, counting = _memo_host(asks, _calls_policy(), judge=judge)
    subject = _call(5000).model_copy(update={"kind": SubjectKind.TOOL_RESULT, "text": "refund sent"})
    first, second = anyio.run(lambda: _both(host, subject))
    assert [v.tier for v in first] == [Tier.JUDGE, Tier.RULES]
    assert not any(v.cache_hit and v.tier is not Tier.JUDGE for v in second) and counting.scans == 2


def test_the_oldest_subject_is_forgotten_first_and_a_reused_verdict_says_so_in_its_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(enginehost, "MEMO_ENTRIES", 2)
    host, counting = _memo_host(_calls_policy())

    async def checks() -> list[list[Verdict]]:
        return [await host.check(_call(amount)) for amount in (1, 2, 1, 3, 1, 2)]

    verdicts = anyio.run(checks)
    # 1, 2, 1 (kept, and now the newest), 3 (2 forgotten, the least recently met), 1 (kept), 2 (decided again)
    assert [found[0].cache_hit for found in verdicts] == [False, False, True, False, True, False]
    assert counting.scans == 2 * 4
    reused = verdicts[2][0]
    assert reused.trace[:-1] == verdicts[0][0].trace
    assert reused.trace[-1].result == "reused" and "no tier ran again" in reused.trace[-1].detail


def test_long_names_or_a_detector_that_reads_more_than_the_text_keep_a_subject_out_of_memory() -> None:
    host, counting = _memo_host(_calls_policy())
    named = _call(5000).model_copy(update={"method": "x" * MEMO_KEY_CHARS})  # a server's own method name
    anyio.run(lambda: _both(host, named))
    assert counting.scans == 4  # scanned both times: nothing kept

    host, counting = _memo_host(_calls_policy())
    counting.reuses_verdicts = False  # a plugin that reads a feed, a counter or the clock
    _, second = anyio.run(lambda: _both(host, _call(5000)))
    assert not second[0].cache_hit and counting.scans == 4


def test_a_short_subject_that_needs_the_judge_is_decided_off_the_event_loop_which_keeps_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked_on: list[threading.Thread] = []

    def slow_judge(messages: list[dict[str, str]]) -> dict[str, object]:
        asked_on.append(threading.current_thread())
        time.sleep(0.4)  # a local model thinking
        return _judge_says_no(messages)

    judge = Judge(FakeLLM().script("JudgeAnswer", "", slow_judge), MemoryVerdictCache())
    host, _ = _memo_host(make_policy(id="asks-the-judge", judge=JudgeSpec(rubric="Block refunds.")), judge=judge)
    subject = Subject(kind=SubjectKind.TOOL_RESULT, server="crm", tool="t", method="tools/call", text="refund sent")
    threads: list[int] = []
    real_run_sync = anyio.to_thread.run_sync

    async def counted(*args: Any, **kwargs: Any) -> Any:
        threads.append(1)
        return await real_run_sync(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)

    async def session() -> tuple[list[Verdict], int, list[Verdict]]:
        ticks = 0

        async def relay_goes_on() -> None:
            nonlocal ticks
            while True:
                await anyio.sleep(0.01)
                ticks += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(relay_goes_on)
            first = await host.check(subject)
            during = ticks
            again = await host.check(subject)  # the judge's cache answers: quick, on the loop
            tg.cancel_scope.cancel()
        return first, during, again

    first, during, again = anyio.run(session)
    assert first[0].tier is Tier.JUDGE and again[0].tier is Tier.JUDGE and again[0].cache_hit
    assert asked_on and asked_on[0] is not threading.main_thread()  # the loop runs on the main thread
    assert during >= 10, during  # the loop went on while the judge thought
    assert len(threads) == 1  # the cache hit needed no worker thread


def test_the_policies_decided_before_a_judge_call_stand_and_only_the_rest_go_to_a_thread() -> None:
    asked_on: list[threading.Thread] = []

    def judge_says_no(messages: list[dict[str, str]]) -> dict[str, object]:
        asked_on.append(threading.current_thread())
        return _judge_says_no(messages)

    judge = Judge(FakeLLM().script("JudgeAnswer", "", judge_says_no), MemoryVerdictCache())
    asks = make_policy(id="asks-the-judge", judge=JudgeSpec(rubric="Block refunds."))
    host, counting = _memo_host(_calls_policy(), asks, _calls_policy(id="after-the-judge"), judge=judge)
    subject = _call(5000).model_copy(update={"kind": SubjectKind.TOOL_RESULT, "text": "refund sent"})
    (verdicts,) = [anyio.run(host.check, subject)]
    assert [(v.policy, v.tier) for v in verdicts] == [
        ("no-big-or-forbidden", Tier.RULES),
        ("asks-the-judge", Tier.JUDGE),
        ("after-the-judge", Tier.RULES),
    ]
    assert counting.scans == 2  # the text once for each policy that scans it: the first was not decided again
    assert asked_on and asked_on[0] is not threading.main_thread()
