"""The engine host's load: the cyclic collector is paused while models load, and what they loaded is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.enginehost import EngineHost
from gateway.runtime import Runtime
from policy.engine import Engine


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
