"""Guards: MCP messages in, engine verdicts applied, MCP messages out.

The guard decides nothing itself. It turns a message into a subject, asks the engine, and applies
the verdicts: block (a tool error result naming the policy, or a JSON-RPC error where a method has
no error result), mask (on the parsed values, so JSON stays JSON), warn (the message passes with a
warning in ``_meta``), audit (the message passes; the decision is logged). Every verdict is logged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
import anyio.abc
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import TypeAdapter

from policy.detectors.hidden import find_hidden
from policy.engine import occurrences, values_of
from policy.subject import Subject, SubjectKind
from policy.verdict import Action, Outcome, Span, Tier, TierStep, Verdict

from .audit import AuditLog, AuditRow
from .catalogue import explain_change
from .enginehost import EngineHost, Which
from .errors import log_failure
from .masking import mask_string, redacted_path
from .pins import PinStatus, PinStore
from .subjects import (
    RESULT_KIND,
    TextLayout,
    call_subject,
    mask_message,
    mask_sides,
    rest_sides,
    result_subject,
    sampling_subject,
    server_meta,
    side_subject,
    side_values,
)

__all__ = ["BLOCKED", "Decision", "Guard", "decide"]

_J = TypeVar("_J")  # a JSON value

logger = logging.getLogger(__name__)

_TRACE = TypeAdapter(tuple[TierStep, ...])  # one call into pydantic's serialiser per row, not one per step
BLOCKED = -32040  # a JSON-RPC error for methods whose results cannot carry an error flag
META_KEY = "mcp-gateway"
TASKS_REMEMBERED = 10_000  # started tasks whose call is kept for their tasks/result (oldest forgotten first)
TASK_ARGUMENTS_CHARS = 16_000_000  # ... and at most this much of their calls' arguments (as JSON), all told
# what a task says that is protocol, not server text: what is left of a task whose check refused it
_TASK_PROTOCOL_FIELDS = frozenset({"taskId", "status", "createdAt", "lastUpdatedAt", "ttl", "pollInterval"})
# Text a server sends outside results, by method, and the fields of it a model or a user reads.
SERVER_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "notifications/message": ("logger", "data", "_meta"),
    "notifications/progress": ("message", "_meta"),
    "notifications/resources/updated": ("uri", "_meta"),
    "notifications/tasks/status": ("statusMessage", "_meta"),
    "elicitation/create": ("message", "requestedSchema", "url"),
}
PROGRESS_NUMBERS = frozenset({"progressToken", "progress", "total"})  # what a progress report has that is no text
# Notifications are read by people (a log pane, a progress bar), not by the model: only the policies
# that mask act on them. A short status line ("all done") is no prompt injection to block.
MASKED_ONLY = frozenset(method for method in SERVER_TEXT_FIELDS if method.startswith("notifications/"))
_EMPTY: tuple[Any, ...] = (None, "", {}, [])


@dataclass(frozen=True)
class Decision:
    applied: str  # allow | block | mask | warn | audit
    verdicts: tuple[Verdict, ...]
    blocking: tuple[Verdict, ...] = ()
    masks: tuple[Span, ...] = ()
    warnings: tuple[Verdict, ...] = ()

    def message(self, what: str) -> str:
        reasons = "; ".join(f"policy '{v.policy}': {v.reason}" for v in self.blocking)
        return f"mcp-gateway blocked this {what}. {reasons}"


def _listed_by(kind: str) -> str:
    """The method that brought a pinned or judged item: a server's instructions come with initialize."""
    return "initialize" if kind == "instructions" else f"{kind}s/list"


def _maskable(span: Span) -> bool:
    return span.field == "text" or span.field.startswith(("arguments", "structured"))


def decide(verdicts: list[Verdict]) -> Decision:
    violated = [v for v in verdicts if v.violated]
    blocking: list[Verdict] = []
    masks: list[Span] = []
    warnings: list[Verdict] = []
    for verdict in violated:
        if verdict.action is Action.MASK:
            spans = [span for span in verdict.evidence if _maskable(span)]
            if spans:
                masks.extend(spans)
            else:
                # a mask policy that found something it cannot point at must not let it through
                blocking.append(verdict)
        elif verdict.action is Action.BLOCK:
            blocking.append(verdict)
        elif verdict.action is Action.WARN:
            warnings.append(verdict)
    if blocking:
        applied = "block"
    elif masks:
        applied = "mask"
    elif warnings:
        applied = "warn"
    elif violated:
        applied = "audit"
    else:
        applied = "allow"
    return Decision(applied, tuple(verdicts), tuple(blocking), tuple(masks), tuple(warnings))


@dataclass
class Guard:
    host: EngineHost
    audit: AuditLog | None = None
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    pins: PinStore | None = None
    hidden_tools: dict[str, set[str]] = field(default_factory=dict)  # server -> tools removed from its list
    hidden_prompts: dict[str, set[str]] = field(default_factory=dict)
    # server -> re-checks of its tools under way after list_changed; its calls wait for them
    _changing: dict[str, list[anyio.Event]] = field(default_factory=dict)
    # each listed tool's outputSchema: a masked result must still fit it, or the client rejects it whole
    output_schemas: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (server, task id) -> the tool and arguments of the call that started the task: its tasks/result is
    # that call's result; with the size of the arguments as JSON, to bound what is kept
    task_calls: OrderedDict[tuple[str, str], tuple[str, dict[str, Any], int]] = field(default_factory=OrderedDict)
    _task_chars: int = 0

    def catalogue_changing(self, server: str) -> anyio.Event:
        """Mark a server's catalogue as being re-checked; set the returned event when done."""
        event = anyio.Event()
        pending = [e for e in self._changing.get(server, []) if not e.is_set()]
        self._changing[server] = [*pending, event]
        return event

    async def _judge(self, subject: Subject, *, which: Which = "all", tool_scoped: bool = False) -> Decision:
        started = time.perf_counter()
        verdicts = await self.host.check(subject, which=which, tool_scoped=tool_scoped)
        decision = decide(verdicts)
        if verdicts:
            self._log(subject, decision)
            if decision.applied != "allow":
                logger.info(
                    "%s %s/%s: %s by %s (%.1f ms)",
                    decision.applied,
                    subject.server,
                    subject.tool or subject.method,
                    subject.kind.value,
                    ", ".join(v.policy for v in verdicts if v.violated),
                    (time.perf_counter() - started) * 1000,
                )
        return decision

    # --- client → server ------------------------------------------------------------------

    async def client_request(
        self, server: str, method: str, params: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(params to forward, or None) and (a result to answer with instead, or None)."""
        if method not in ("tools/call", "prompts/get"):
            return (dict(params) if params is not None else None), None
        params = dict(params or {})
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            # the protocol's arguments are an object; anything else would reach the server unchecked
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"mcp-gateway: the {method} arguments must be a JSON object, not {type(arguments).__name__}; "
                "the request was not sent on",
            )
        for changing in self._changing.get(server, []):
            await changing.wait()  # a re-check after list_changed may quarantine the very tool called
        if method == "tools/call":
            name = str(params.get("name", ""))
            if name in self.hidden_tools.get(server, set()):
                return None, _tool_error(
                    f"mcp-gateway: the tool {name!r} is blocked on server {server!r} "
                    "(its description failed a policy check; see 'mcp-gateway logs')"
                )
            kind = SubjectKind.TOOL_CALL
        else:
            name = str(params.get("name", ""))
            if name in self.hidden_prompts.get(server, set()):
                raise MCPError(
                    code=BLOCKED,
                    message=f"mcp-gateway: the prompt {name!r} of server {server!r} is "
                    "blocked (its definition failed a check; see 'mcp-gateway logs')",
                )
            kind = SubjectKind.PROMPT
        subject = call_subject(kind, server, name, method, params.get("arguments"))
        decision = await self._judge(subject)
        if decision.applied == "block":
            if method == "tools/call":
                return None, _tool_error(decision.message("tool call"), decision)
            raise MCPError(code=BLOCKED, message=decision.message("prompt request"))
        if decision.applied == "mask":
            params = mask_message(params, None, list(decision.masks), arguments_key="arguments")
        return params, None

    # --- server → client ------------------------------------------------------------------

    async def server_result(
        self, server: str, method: str, params: Mapping[str, Any] | None, result: dict[str, Any]
    ) -> dict[str, Any]:
        if method == "tools/call" and isinstance(result.get("task"), dict):
            self._started_task(server, params or {}, result["task"].get("taskId"))
        elif method in ("tasks/result", "tasks/get", "tasks/cancel"):
            # the task's call, so tool-scoped policies (and for a result, its outputSchema) apply to what
            # the task says, and conditions on the call's arguments see them as for the call's own result
            call = self.task_call(server, (params or {}).get("taskId"))
            if call is not None:
                params = {**(params or {}), "name": call[0], "arguments": call[1]}
        elif method == "tasks/list" and isinstance(result.get("tasks"), list):
            # the whole list first (its _meta; a value masked in one task's status is masked in the others
            # too), then each task as its tool's, for the policies scoped to tools
            try:
                whole = await self._server_result(server, method, params, result)
            except MCPError:  # refused as a whole: the tasks keep their protocol fields, the list no _meta
                bare = [_protocol_only(task) for task in result["tasks"]]
                return {key: value for key, value in result.items() if key != "_meta"} | {"tasks": bare}
            tasks = whole["tasks"] if isinstance(whole.get("tasks"), list) else result["tasks"]
            return {**whole, "tasks": [await self._listed_task(server, task) for task in tasks]}
        checked = await self._server_result(server, method, params, result)
        if method in ("tools/call", "tasks/result") and checked is not result and "structuredContent" in checked:
            schema = self.output_schemas.get((server, str((params or {}).get("name", ""))))
            if schema is not None:
                return _fitting(checked, schema)
        return checked

    def task_call(self, server: str, task_id: Any) -> tuple[str, dict[str, Any]] | None:
        """The tool and arguments of the call that started a task, if this session saw it."""
        call = self.task_calls.get((server, task_id)) if isinstance(task_id, str) else None
        return (call[0], call[1]) if call is not None else None

    def task_of(self, server: str, task_id: Any) -> str | None:
        """The tool whose call started a task, if this session saw it."""
        call = self.task_call(server, task_id)
        return call[0] if call is not None else None

    async def _listed_task(self, server: str, task: Any) -> Any:
        """One task of a tasks/list, checked as its tool's. One whose check refuses it (a policy blocks
        it, the engine is not ready) keeps only its protocol fields, not the list its place."""
        if not isinstance(task, dict):
            return task
        call = self.task_call(server, task.get("taskId"))
        if call is None:  # the whole-list pass already ran every policy that applies to it
            return task
        try:
            params = {"taskId": task.get("taskId"), "name": call[0], "arguments": call[1]}
            # the policies that name no tool have read it in the whole list already
            return await self._server_result(server, "tasks/get", params, task, tool_scoped=True)
        except MCPError:
            return _protocol_only(task)

    def _started_task(self, server: str, params: Mapping[str, Any], task_id: Any) -> None:
        tool, arguments = params.get("name"), params.get("arguments")
        if not isinstance(tool, str) or not isinstance(task_id, str):
            return
        arguments = arguments if isinstance(arguments, dict) else {}
        chars = len(json.dumps(arguments, ensure_ascii=False, default=str))
        old = self.task_calls.pop((server, task_id), None)
        self._task_chars -= old[2] if old is not None else 0
        self.task_calls[(server, task_id)] = (tool, arguments, chars)
        self._task_chars += chars
        while len(self.task_calls) > 1 and (
            len(self.task_calls) > TASKS_REMEMBERED or self._task_chars > TASK_ARGUMENTS_CHARS
        ):
            _, (_, _, forgotten) = self.task_calls.popitem(last=False)
            self._task_chars -= forgotten

    async def _server_result(
        self,
        server: str,
        method: str,
        params: Mapping[str, Any] | None,
        result: dict[str, Any],
        *,
        tool_scoped: bool = False,
    ) -> dict[str, Any]:
        if method == "tools/list":
            listed = await self._catalogue(server, result, "tools", "tool", self.hidden_tools)
            return await self.masked_rest(server, method, listed, kind=SubjectKind.TOOL_DESCRIPTION)
        if method == "prompts/list":
            listed = await self._catalogue(server, result, "prompts", "prompt", self.hidden_prompts)
            return await self.masked_rest(server, method, listed, kind=SubjectKind.TOOL_DESCRIPTION)
        built = result_subject(method, server, params, result)
        subject: Subject | None = None
        layout = TextLayout(())
        content: Decision | None = None
        if built is not None and (built[0].text or built[0].structured is not None or built[0].arguments):
            subject, layout = built
            content = await self._judge(subject, tool_scoped=tool_scoped)
            if content.applied == "block":
                return self._apply(content, method, result, layout)
        sides = side_values(method, result)
        # and every other string the result holds (a server's own fields, annotations, a cursor)
        covered = [part.path for part in layout.parts] + [side.path for side in sides]
        if subject is not None and subject.structured is not None:
            covered.append(("structuredContent",))
        sides += rest_sides(result, covered)
        if not sides:
            return result if content is None else self._apply(content, method, result, layout)
        # `_meta`, URIs, link descriptions, text in blobs, completion values: masked like the content, by
        # the policies that mask (they are not prose a model reads as instructions).
        named = ("tools/call", "tasks/result", "tasks/get", "tasks/cancel", "prompts/get")
        tool = str((params or {}).get("name") or "") if method in named else ""
        kind = subject.kind if subject is not None else None
        read = [side for side in sides if side.read]
        if read:
            # text a model may be handed (a text blob, a link's description, a task's status line) is judged by
            # every policy, as the content is: an injection there blocks the result as it would in the text
            text = "\n".join(str(side.value) for side in read)
            said = Subject(kind=kind or SubjectKind.TOOL_RESULT, server=server, tool=tool, method=method, text=text)
            # (the policies that mask read these with the other side places below, once)
            judged = await self._judge(said, tool_scoped=tool_scoped, which="not-masking")
            if judged.applied == "block":
                return self._apply(judged, method, result, TextLayout(()))
        side = side_subject(server, method, tool, sides, kind=kind)
        verdicts = await self.host.check(side, which="masking", tool_scoped=tool_scoped)
        side_masks: list[Span] = []
        if verdicts:
            found = decide(verdicts)
            self._log(side, found)
            if found.applied == "block":
                return self._apply(found, method, result, TextLayout(()))
            side_masks = list(found.masks)
        content_masks = list(content.masks) if content is not None else []
        # a value masked on one side is masked on the other too
        content_strings = list(subject.strings()) if subject is not None else []
        side_strings = list(side.strings())
        values = {**values_of(content_masks, content_strings), **values_of(side_masks, side_strings)}
        extra = occurrences(values, content_strings, {(m.field, m.start, m.end) for m in content_masks})
        side_masks += occurrences(values, side_strings, {(m.field, m.start, m.end) for m in side_masks})
        checked = mask_sides(result, sides, side_masks) if side_masks else result
        if content is not None and extra:
            # one pass over the original text with every span: a second pass would land on shifted offsets
            content = dataclasses.replace(content, masks=(*content.masks, *extra), applied="mask")
        elif extra:
            content = Decision(applied="mask", verdicts=(), masks=tuple(extra))
        if content is not None:
            checked = self._apply(content, method, checked, layout)
        if side_masks:  # the content's own masks are already named by _apply
            labels = {span.label for span in [*side_masks, *(content.masks if content is not None else ())]}
            checked = _with_meta(checked, "masked", sorted(labels))
        return checked

    async def masked_rest(
        self,
        server: str,
        method: str,
        payload: _J,
        *,
        kind: SubjectKind | None = None,
        covered: Sequence[tuple[str | int, ...]] = (),
    ) -> _J:
        """`payload` (any JSON a server sent) with what the policies that mask find in its strings masked:
        for what no other check reads (the answer to a ping, a notification or request of the server's own,
        a listing's descriptions and cursor: with `kind` tool_description, by the policies for descriptions).
        Tool and prompt names, being simple words, are not touched. `covered` places were checked already."""
        sides = rest_sides(payload, covered)
        if not sides:
            return payload
        side = side_subject(server, method, "", sides, kind=kind)
        verdicts = await self.host.check(side, which="masking")
        if not verdicts:
            return payload
        found = decide(verdicts)
        self._log(side, found)
        if not found.masks:
            return payload
        if not isinstance(payload, dict):
            wrapped = [dataclasses.replace(s, path=("v", *s.path)) for s in sides]
            masked = mask_sides({"v": payload}, wrapped, list(found.masks))
            return cast(_J, masked["v"])
        return cast(_J, mask_sides(payload, sides, list(found.masks)))

    def _apply(self, decision: Decision, method: str, result: dict[str, Any], layout: TextLayout) -> dict[str, Any]:
        if decision.applied == "block":
            if method in ("tools/call", "tasks/result"):
                return _tool_error(decision.message("tool result"), decision)
            raise MCPError(code=BLOCKED, message=decision.message(method.replace("/", " ")))
        if decision.applied == "mask":
            result = mask_message(result, layout, list(decision.masks), structured_key="structuredContent")
            result = _with_meta(result, "masked", sorted({span.label for span in decision.masks}))
        if decision.warnings:
            result = _with_meta(
                result, "warnings", [{"policy": v.policy, "reason": v.reason} for v in decision.warnings]
            )
        return result

    async def server_request(self, server: str, method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """A request the server sends to the client (sampling, elicitation): the params to forward."""
        params = dict(params or {})
        if method in SERVER_TEXT_FIELDS:
            checked = await self.server_text(server, method, params)
            if checked is None:
                text = f"mcp-gateway blocked this {method} request; see 'mcp-gateway logs'"
                raise MCPError(code=BLOCKED, message=text)
            # the rest (its _meta, fields of the server's own) is masked like a result's
            fields: list[tuple[str | int, ...]] = [(key,) for key in SERVER_TEXT_FIELDS[method]]
            return await self.masked_rest(server, method, checked, covered=fields)
        if method != "sampling/createMessage":
            return params
        subject, layout = sampling_subject(server, params)
        if subject.text:
            decision = await self._judge(subject)
            if decision.applied == "block":
                raise MCPError(code=BLOCKED, message=decision.message("sampling request"))
            if decision.applied == "mask":
                params = mask_message(params, layout, list(decision.masks))
        checked = await self._fields(server, method, params, ("metadata", "modelPreferences"), which="masking")
        if checked is None:  # a mask policy that found something it cannot point at
            text = "mcp-gateway blocked this sampling request: its metadata held something a policy could not mask"
            raise MCPError(code=BLOCKED, message=f"{text}; see 'mcp-gateway logs'")
        # the rest (the request's and each message's _meta, annotations, fields of the server's own)
        covered = [part.path for part in layout.parts] + [("metadata",), ("modelPreferences",)]
        return await self.masked_rest(server, method, checked, kind=SubjectKind.SAMPLING, covered=covered)

    async def server_text(self, server: str, method: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """What a server says outside results (log and progress messages, elicitation requests), checked like
        a tool result: the payload to pass on, masked where needed, or None when a policy blocks it."""
        keys = SERVER_TEXT_FIELDS.get(method, ())
        if method == "notifications/progress":  # and any field a server adds of its own
            keys = tuple(key for key in payload if key not in PROGRESS_NUMBERS)
        tool = self.task_of(server, payload.get("taskId")) if method == "notifications/tasks/status" else None
        which: Which = "masking" if method in MASKED_ONLY else "all"
        return await self._fields(server, method, payload, keys, which=which, tool=tool)

    async def _fields(
        self,
        server: str,
        method: str,
        payload: Mapping[str, Any],
        keys: tuple[str, ...],
        *,
        which: Which = "all",
        tool: str | None = None,
    ) -> dict[str, Any] | None:
        payload = dict(payload)
        fields = {key: payload[key] for key in keys if payload.get(key) not in _EMPTY}
        if "_meta" in fields:
            fields["_meta"] = server_meta(fields["_meta"])
            if fields["_meta"] in _EMPTY:
                del fields["_meta"]
        if not fields:
            return payload
        kind = RESULT_KIND.get(method.removesuffix(" (error)"), SubjectKind.TOOL_RESULT)
        subject = Subject(kind=kind, server=server, tool=tool or "", method=method, structured=fields)
        decision = await self._judge(subject, which=which)
        if decision.applied == "block":
            return None
        if decision.applied == "mask":
            masked = mask_message({"s": fields}, None, list(decision.masks), structured_key="s")["s"]
            if isinstance(masked.get("_meta"), dict):
                # the protocol's own keys (left out of the check) stay; the others are the masked ones now
                kept = {key: value for key, value in payload["_meta"].items() if key not in fields["_meta"]}
                masked["_meta"] = {**kept, **masked["_meta"]}
            # fields in their places; a key masked in its name (no longer in `masked` as it was) goes, its
            # masked name comes last
            payload = {key: masked[key] if key in fields else value for key, value in payload.items()
                       if key not in fields or key in masked}
            payload.update((key, value) for key, value in masked.items() if key not in payload)
        return payload

    async def server_error(self, server: str, method: str, error: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON-RPC error a server answered `method` with, checked like its result would have been."""
        checked = await self._fields(server, f"{method} (error)", error, ("message", "data"))
        if checked is None:
            return {
                "code": error.get("code", BLOCKED),
                "message": f"mcp-gateway withheld the error server {server!r} "
                f"answered {method} with: a policy blocked its text (see 'mcp-gateway logs')",
            }
        return checked

    async def initialize_result(
        self, server: str, result: dict[str, Any], *, later: anyio.abc.TaskGroup | None = None
    ) -> dict[str, Any]:
        """Server instructions are read by the model: check them like a tool description, and pin them.

        With `later`, an engine still loading its models does not hold up the client's initialize (seconds):
        what needs no model is checked at once (a definition changed since pinned, text hidden from people),
        and the policies judge the instructions on `later` once the engine is ready, a finding logged and
        audited, as the stdio handshake does. Tools, prompts and every call are checked before they pass."""
        self.host.start()  # a server has answered: the models may load now without holding it up
        instructions = result.get("instructions")
        if not isinstance(instructions, str) or not instructions.strip():
            return result
        item = {"name": "(instructions)", "description": instructions}
        if later is None or self.host.wait_ready(0):
            ok = await self._catalogue_item_ok(server, "instructions", item)
        elif find_hidden(instructions):
            logger.warning("server %r: its instructions hide text from people; they were removed", server)
            ok = False
        else:
            ok = self._pin_ok(server, "instructions", item)
            if ok:
                judged = functools.partial(self._item_judged_ok, server, "instructions", item)
                later.start_soon(self.in_background, "instructions", server, judged)
        return result if ok else {key: value for key, value in result.items() if key != "instructions"}

    async def in_background(self, what: str, server: str, check: Callable[[], Awaitable[object]]) -> None:
        """Run `check` (of the server's `what`) off the path of any answer: a failure is logged; it must not
        end the session it runs beside."""
        try:
            await check()
        except Exception as exc:
            log_failure(logger, exc, "checking the %s of server %r failed", what, server)

    async def _catalogue(
        self, server: str, result: dict[str, Any], key: str, kind: str, hidden_by_server: dict[str, set[str]]
    ) -> dict[str, Any]:
        items = result.get(key)
        if not isinstance(items, list):
            return result
        hidden = hidden_by_server.setdefault(server, set())
        kept: list[Any] = []
        for item in items:
            if not isinstance(item, dict):
                kept.append(item)
                continue
            name = str(item.get("name", ""))
            if await self._catalogue_item_ok(server, kind, item):
                hidden.discard(name)
                kept.append(item)
                if kind == "tool" and isinstance(item.get("outputSchema"), dict):
                    self.output_schemas[(server, name)] = item["outputSchema"]
                elif kind == "tool":  # re-listed without one: an old schema must not judge its results
                    self.output_schemas.pop((server, name), None)
            else:
                hidden.add(name)
        if len(kept) == len(items):
            return result
        return {**result, key: kept}

    async def _catalogue_item_ok(self, server: str, kind: str, item: dict[str, Any]) -> bool:
        """False when the item must be hidden: its definition changed since pinned, or it is poisoned."""
        return self._pin_ok(server, kind, item) and await self._item_judged_ok(server, kind, item)

    def _pin_ok(self, server: str, kind: str, item: dict[str, Any]) -> bool:
        """False (logged and audited) when the item changed since it was pinned; pinned if first seen."""
        name = str(item.get("name", ""))
        if self.pins is not None:
            check = self.pins.check(server, kind, item)
            if check.status is PinStatus.CHANGED:
                notes = explain_change(check.pinned, check.current)
                reason = (
                    f"{kind} {name!r} changed since it was pinned ({'; '.join(notes)}); quarantined until "
                    f"'mcp-gateway pins approve {server} {name}'"
                )
                logger.warning("server %r: %s", server, reason)
                subject = Subject(
                    kind=SubjectKind.TOOL_DESCRIPTION,
                    server=server,
                    tool=name,
                    method=_listed_by(kind),
                    text=describe_tool(item),
                )
                verdict = Verdict(
                    policy="rug-pull",
                    outcome=Outcome.VIOLATION,
                    action=Action.BLOCK,
                    tier=Tier.RULES,
                    reason=reason,
                    trace=(TierStep(tier=Tier.RULES, result="violation", detail=reason),),
                )
                self._log(subject, decide([verdict]))
                return False
        return True

    async def _item_judged_ok(self, server: str, kind: str, item: dict[str, Any]) -> bool:
        """False when the policies block the item (a poisoned description)."""
        name = str(item.get("name", ""))
        subject = Subject(
            kind=SubjectKind.TOOL_DESCRIPTION,
            server=server,
            tool=name,
            method=_listed_by(kind),
            text=describe_tool(item),
        )
        if not subject.text.strip():
            return True
        decision = await self._judge(subject)
        if decision.applied == "block":
            logger.warning("hid %s %r of server %r: %s", kind, name, server, decision.message(kind))
            return False
        return True

    # --- audit ----------------------------------------------------------------------------

    def flush_audit(self) -> None:
        """Write the audit rows of the decisions so far: a relay calls this once a message has gone out,
        while the other side is busy with it, so the rows never hold up the next message."""
        if self.audit is not None:
            self.audit.flush_pending()

    def _log(self, subject: Subject, decision: Decision) -> None:
        if self.audit is None:
            return
        self.audit.record_later(functools.partial(self._rows, subject, decision, time.time()))

    def _rows(self, subject: Subject, decision: Decision, ts: float) -> list[AuditRow]:
        excerpt = safe_excerpt(subject, decision, self.host)
        target = subject.tool
        if not target and subject.metadata.get("uri"):  # a resource is named by its URI, which may hold a token
            target = secrets_masked(str(subject.metadata["uri"]), self.host, "uri")
        # one row per policy's verdict; the enums are str enums, stored as their values
        return [
            AuditRow(
                ts=ts,
                session=self.session,
                server=subject.server,
                method=subject.method,
                tool=target,
                kind=subject.kind,
                policy=v.policy,
                outcome=v.outcome,
                action=v.action,
                applied=decision.applied if v.violated else "allow",
                tier=v.tier,
                score=v.score,
                reason=_mask_reason(v.reason),
                latency_ms=round(v.latency_ms, 3),
                cache_hit=v.cache_hit,
                judge_model=v.judge_model,
                evidence=json.dumps(
                    [{"field": redacted_path(s.field), "start": s.start, "end": s.end, "label": s.label}
                     for s in v.evidence]
                )
                if v.evidence
                else "[]",
                excerpt=excerpt,
                trace=_TRACE.dump_json(v.trace).decode(),
            )
            for v in decision.verdicts
        ]


def describe_tool(tool: Mapping[str, Any]) -> str:
    """What a model reads of a tool: its title, description and parameter descriptions."""
    parts: list[str] = []
    for key in ("title", "description"):
        if isinstance(tool.get(key), str) and tool[key].strip():
            parts.append(tool[key])
    schema = tool.get("inputSchema")
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        for name, prop in schema["properties"].items():
            if isinstance(prop, dict) and isinstance(prop.get("description"), str):
                parts.append(f"{name}: {prop['description']}")
    return "\n".join(parts)


def _protocol_only(task: Any) -> Any:
    """What is left of a listed task whose check refused it: its protocol fields (nothing a server wrote)."""
    if isinstance(task, dict):
        return {key: value for key, value in task.items() if key in _TASK_PROTOCOL_FIELDS}
    return None


def _tool_error(text: str, decision: Decision | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if decision is not None:
        result["_meta"] = {META_KEY: {"blocked": [v.policy for v in decision.blocking]}}
    return result


def _with_meta(result: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    existing = result.get("_meta")
    if existing is not None and not isinstance(existing, dict):  # not an object: ours cannot join it
        return result
    meta = dict(existing or {})
    ours = dict(meta.get(META_KEY) or {})
    ours[key] = value
    meta[META_KEY] = ours
    return {**result, "_meta": meta}


def _fitting(result: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`result` if its masked structuredContent still fits the tool's outputSchema; else the masked text as
    an error result (a client does not check an error against the schema) saying why the rest was withheld."""
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
        error = next(iter(validator.iter_errors(result["structuredContent"])), None)
    except Exception as exc:  # a schema the gateway cannot read: the client will judge it
        logger.debug("cannot check a masked result against its outputSchema: %s", exc)
        return result
    if error is None:
        return result
    note = (
        "mcp-gateway masked secrets or personal data in this result, and its structured content no longer fits "
        f"the tool's outputSchema ({error.message[:200]}), so it was withheld; the text above is the masked result"
    )
    content = [*(result.get("content") or []), {"type": "text", "text": note}]
    return {**{k: v for k, v in result.items() if k != "structuredContent"}, "content": content, "isError": True}


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def _mask_reason(reason: str) -> str:
    return reason[:500]


def safe_excerpt(subject: Subject, decision: Decision, host: EngineHost, limit: int = 400) -> str:
    """A short excerpt of the subject with every span any policy found masked, then masked again
    by the secrets detector: the audit log must never hold a raw secret."""
    spans = [s for v in decision.verdicts for s in v.evidence]
    if subject.kind is SubjectKind.TOOL_CALL:
        arguments = subject.arguments
        if spans:
            arguments = mask_message({"arguments": arguments}, None, spans, arguments_key="arguments")["arguments"]
        text = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    else:
        text = mask_string(subject.text, [(s.start, s.end, s.label) for s in spans if s.field == "text"])
        if not text and subject.structured is not None:
            structured = subject.structured
            if any(s.field == "structured" or s.field.startswith(("structured.", "structured[")) for s in spans):
                structured = mask_message({"s": structured}, None, spans, structured_key="s")["s"]
            text = json.dumps(structured, ensure_ascii=False)[:4000]
    # Scan a window well past the cut, so a secret straddling the cut is still recognised whole.
    return secrets_masked(text[: limit * 8], host, "excerpt")[:limit]


def secrets_masked(text: str, host: EngineHost, what: str) -> str:
    """`text` with what the secrets detector finds in it masked, for the audit log (or a notice that it was
    withheld, when the scanner cannot run: the log must never hold a raw secret)."""
    engine = host.engine
    if engine is None:
        return f"[{what} withheld: the secrets scanner is not loaded]"
    try:
        detector = engine.detectors.get("secrets")
        return mask_string(text, [(s.start, s.end, s.label) for s in detector.scan(what, text)])
    except Exception as exc:  # the row must still be written, but never with an unscanned text
        logger.debug("secrets scan of an audit %s failed: %s", what, exc)
        return f"[{what} withheld: the secrets scanner failed]"
