"""The engine host's load: the cyclic collector is paused while models load, and what they loaded is frozen."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from gateway.enginehost import EngineHost
from gateway.runtime import Runtime
from policy.engine import Engine
from policy.subject import Subject, SubjectKind


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
