"""The policy engine inside a running gateway: loaded in the background, consulted off the event loop.

``initialize`` is answered while models still load; a guarded message waits (bounded by
``engine_ready_timeout_s``) until the engine is ready. If it cannot load, every guarded message
is refused with the reason: a guard that failed to start must not quietly become no guard.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import anyio
import anyio.to_thread

from policy.compiled import CompiledPolicy
from policy.engine import Engine
from policy.memo import PerObject
from policy.quick import WouldBlock, quick_only
from policy.subject import Subject
from policy.verdict import Action, Outcome, Tier, TierStep, Verdict

from .runtime import Runtime

__all__ = ["EngineHost", "Which"]

# Which in-scope policies a check asks: all of them, the ones that mask, or the others.
Which = Literal["all", "masking", "not-masking"]

logger = logging.getLogger(__name__)


class EngineHost:
    def __init__(self, factory: Callable[[], Runtime], *, ready_timeout_s: float = 90.0, warm: bool = True) -> None:
        self._factory = factory
        self._ready = threading.Event()
        self._runtime: Runtime | None = None
        self._error: str | None = None
        self._ready_timeout_s = ready_timeout_s
        self._warm = warm
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.load_seconds: float | None = None
        # the verdicts of the last MEMO_ENTRIES short subjects, what decided them (policies, detectors, judge,
        # models), and for each policy whether its detectors let its verdicts be reused
        self._memo: OrderedDict[tuple[object, ...], tuple[Verdict, ...]] = OrderedDict()
        self._memo_of: tuple[object, ...] = ()
        self._reusable: PerObject[CompiledPolicy, bool] = PerObject()

    def stop(self) -> None:
        """The gateway is shutting down: a load still under way will fail, and that is no error."""
        self._stopping = True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._load, name="mcp-gateway-engine", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            with _long_lived():
                runtime = self._factory()
                if self._warm:
                    runtime.engine.warm()
            self._runtime = runtime
            self.load_seconds = time.perf_counter() - started
            logger.info(
                "policy engine ready in %.1f s with %d policies", self.load_seconds, len(runtime.engine.policies)
            )
        except Exception as exc:  # the load boundary: any failure must become a refusal, not a crash
            self._error = f"{type(exc).__name__}: {exc}"
            if self._stopping:
                logger.debug("the policy engine stopped loading as the gateway shut down: %s", self._error)
            else:
                logger.error("the policy engine failed to load; every guarded message will be refused: %s", self._error)
        finally:
            self._ready.set()

    @property
    def runtime(self) -> Runtime | None:
        return self._runtime

    @property
    def engine(self) -> Engine | None:
        return self._runtime.engine if self._runtime else None

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def _wait_loaded(self, timeout: float) -> bool:
        """`wait_ready` for a worker thread: in slices, so that once the gateway is stopping (`stop`) a waiter
        its relay abandoned (a client that left while the models loaded) ends at once: worker threads are
        not daemons, and the process would otherwise wait for the load to finish before it could exit."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(min(STOP_POLL_S, max(0.0, deadline - time.monotonic()))):
            if self._stopping or time.monotonic() >= deadline:
                return self._ready.is_set()
        return True

    async def check(self, subject: Subject, *, which: Which = "all", tool_scoped: bool = False) -> list[Verdict]:
        """Every in-scope policy's verdict: of `which` policies (all, those that mask, the others), and with
        `tool_scoped`, only of the policies that name tools."""
        self.start()  # loading from here at the latest (a relay starts it once a server has answered initialize)
        if not self._ready.is_set():
            ready = await anyio.to_thread.run_sync(self._wait_loaded, self._ready_timeout_s, abandon_on_cancel=True)
            if not ready:
                return [
                    _refusal(
                        f"the policy engine was not ready within {self._ready_timeout_s:g} s (engine_ready_timeout_s)"
                    )
                ]
        if self._runtime is None:
            return [_refusal(f"the policy engine failed to load: {self._error}")]
        engine = self._runtime.engine
        policies = engine.in_scope(subject)
        if which != "all":
            policies = [policy for policy in policies if (policy.action is Action.MASK) == (which == "masking")]
        if tool_scoped:
            policies = [policy for policy in policies if policy.scope.names_tools]
        if not policies:
            return []
        strings = list(subject.strings())  # listed once: for the size here, and for every policy's detectors
        if sum(len(text) for _, text in strings) > INLINE_CHARS:
            return await anyio.to_thread.run_sync(engine.check, subject, policies, strings, abandon_on_cancel=True)
        # A short message is decided in about a millisecond (detectors, rules, the static screen, remembered
        # vectors and scores; a MiniLM pass over a new text takes 7-17 ms): on the event loop, cheaper than
        # two thread switches. Unless it needs a step that takes long (a judge call): then that policy and
        # the ones after it are decided on a worker thread, so that the relay goes on meanwhile.
        key, known = self._recall(engine, subject, policies, (which, tool_scoped))
        if known is not None:
            return known
        verdicts: list[Verdict] = []
        try:
            with quick_only():
                for policy in policies:
                    verdicts.append(engine.check_policy(policy, subject, strings=strings))
        except WouldBlock:  # the policies decided so far stand; this one and the rest are decided off the loop
            rest = policies[len(verdicts) :]
            verdicts += await anyio.to_thread.run_sync(engine.check, subject, rest, strings, abandon_on_cancel=True)
        if key is not None and not any(verdict.tier in _NOT_REUSED for verdict in verdicts):
            self._remember(key, verdicts)
        return verdicts

    def _recall(
        self, engine: Engine, subject: Subject, policies: Sequence[CompiledPolicy], asked: tuple[str, bool]
    ) -> tuple[tuple[object, ...] | None, list[Verdict] | None]:
        """The key a short subject's verdicts are kept under (None: they are not kept), and the verdicts of
        the same subject met in the last MEMO_ENTRIES, if any, handed out again.

        Servers repeat short answers ("OK", a status line, an echo) and agents repeat calls. Every tier
        but the judge is a function of the subject alone (the judge keeps its own cache), so the same
        subject, asked the same way of the same policies, gets the same verdicts: they are handed out
        again, marked as cached, with a last trace step that says so. A verdict from the judge or from a
        tier's failure is never kept, nor one of a policy with a detector that reads more than the text
        (`reuses_verdicts = False`). Runs on the event loop only, as does `_remember`."""
        started = time.perf_counter()
        deciders = (engine.policies, engine.detectors, engine.judge, engine.models)
        if not self._memo_of or any(now is not then for now, then in zip(deciders, self._memo_of, strict=True)):
            self._memo.clear()  # other policies or tiers: what they decided no longer holds
            self._reusable.clear()
            self._memo_of = deciders
        reusable = functools.partial(_detectors_reusable, engine)
        if not all(self._reusable.get(policy, reusable) for policy in policies):
            return None, None
        try:
            # the whole subject; JSON keeps 1, 1.0 and true apart, and the order of keys (spans follow it)
            values = json.dumps([subject.arguments, subject.structured, subject.metadata], ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # not JSON (no relay makes such a subject)
            return None, None
        names = len(subject.server) + len(subject.tool) + len(subject.method)
        if len(values) + len(subject.text) + names > MEMO_KEY_CHARS:  # a name or a call's arguments may be long
            return None, None
        key = (asked, subject.kind, subject.server, subject.tool, subject.method, subject.text, values)
        known = self._memo.get(key)
        if known is None:
            return key, None
        self._memo.move_to_end(key)
        latency = (time.perf_counter() - started) * 1000
        return key, [_reused(verdict, latency) for verdict in known]

    def _remember(self, key: tuple[object, ...], verdicts: list[Verdict]) -> None:
        self._memo[key] = tuple(verdicts)
        if len(self._memo) > MEMO_ENTRIES:
            self._memo.popitem(last=False)


def _detectors_reusable(engine: Engine, policy: CompiledPolicy) -> bool:
    """Whether every detector of the policy lets its verdicts be reused (`reuses_verdicts`)."""
    try:
        return all(
            getattr(engine.detectors.get(name), "reuses_verdicts", True) is not False for name in policy.detectors
        )
    except Exception:  # a detector that cannot be built: the check itself says why, every time
        return False


def _reused(verdict: Verdict, latency_ms: float) -> Verdict:
    step = TierStep(
        tier=verdict.tier,
        result="reused",
        detail="the same message was decided moments before; its verdict was reused and no tier ran again",
        latency_ms=latency_ms,
    )
    return verdict.model_copy(update={"cache_hit": True, "latency_ms": latency_ms, "trace": (*verdict.trace, step)})


INLINE_CHARS = 512
MEMO_ENTRIES = 1024  # short subjects whose verdicts are kept for reuse
MEMO_KEY_CHARS = 4096  # ... whose text, names, arguments, structured content and metadata (JSON) come to at most this
_NOT_REUSED = frozenset({Tier.JUDGE, Tier.ON_ERROR})
STOP_POLL_S = 0.1  # how soon a thread waiting for the engine notices that the gateway is stopping


@contextlib.contextmanager
def _long_lived() -> Iterator[None]:
    """The models load as some 600,000 objects that live as long as the process. Python's cyclic
    collector walks every one of them on each full collection (~0.3 s here, holding the interpreter
    lock), several times during the load and now and then while serving. It is paused for the load,
    and what was loaded is then frozen out of its reach; collection of new objects goes on as before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _refusal(reason: str) -> Verdict:
    # fail closed: without an engine, nothing can be checked, so nothing guarded passes
    return Verdict(
        policy="mcp-gateway",
        outcome=Outcome.VIOLATION,
        action=Action.BLOCK,
        tier=Tier.ON_ERROR,
        reason=reason,
        trace=(TierStep(tier=Tier.ON_ERROR, result="error", detail=reason),),
    )
