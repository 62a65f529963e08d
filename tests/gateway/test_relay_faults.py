"""The relay under real conditions: a real gateway process, a real server process, the real client."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import MCPError

from policy.conditions import Predicate, Rule
from policy.subject import SubjectKind as types_kind
from policy.verdict import Action

from .relay_support import (
    RAW_SERVER,
    attacker_mail_policy,
    gateway_env,
    gateway_session,
    secrets_mask_policy,
    server_log,
    text,
    write_rule_policy,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    attacker_mail_policy(directory)
    return directory


def args(policies: Path) -> list[str]:
    return ["--no-builtin", "--policies", str(policies)]


async def test_messages_and_unknown_fields_pass_through_unchanged(tmp_path: Path, policies: Path) -> None:
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("echo", {"text": "hello"})
    assert init.server_info.name == "raw-server"
    assert init.instructions == "fault injection server"
    assert [tool.name for tool in tools.tools][:3] == ["echo", "crash", "hang"]
    assert text(result) == "hello"
    received = server_log(tmp_path)
    assert received[0]["method"] == "initialize"
    assert received[0]["params"]["clientInfo"]["name"] == "mcp"  # the real client's own initialize


async def test_a_blocked_call_never_reaches_the_server_and_the_client_sees_why(tmp_path: Path, policies: Path) -> None:
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            blocked = await session.call_tool("args", {"to": "boss@attacker-mail.example", "body": "hi"})
            allowed = await session.call_tool("args", {"to": "boss@example.com"})
    assert blocked.is_error is True
    assert "policy 'no-attacker-mail'" in text(blocked)
    assert "attacker-domain" in text(blocked)
    assert json.loads(text(allowed)) == {"to": "boss@example.com"}
    calls = [m for m in server_log(tmp_path) if m.get("method") == "tools/call"]
    assert [c["params"]["arguments"] for c in calls] == [{"to": "boss@example.com"}]
    with sqlite3.connect(tmp_path / "audit.db") as db:
        rows = db.execute("SELECT policy, applied, tier, tool, excerpt FROM decisions ORDER BY id").fetchall()
    assert rows[0][:4] == ("no-attacker-mail", "block", "rules", "args")
    assert rows[1][1] == "allow"


async def test_garbage_on_server_stdout_is_skipped(tmp_path: Path, policies: Path) -> None:
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            result = await session.call_tool("garbage", {})
            after = await session.call_tool("echo", {"text": "still here"})
    assert text(result) == "after-garbage"
    assert text(after) == "still here"
    assert "not JSON-RPC" in (tmp_path / "gateway.stderr").read_text()


async def test_a_crashed_server_gives_a_clear_error_and_is_restarted(tmp_path: Path, policies: Path) -> None:
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            with pytest.raises(MCPError) as crashed:
                await session.call_tool("crash", {})
            again = await session.call_tool("echo", {"text": "back"})
    message = crashed.value.error.message
    assert "server 'raw' stopped while handling tools/call" in message
    assert "exit code 3" in message
    assert "simulated crash" in message
    assert text(again) == "back"
    initializes = [m for m in server_log(tmp_path) if m.get("method") == "initialize"]
    assert len(initializes) == 2  # the client's initialize was replayed to the new process


async def test_a_hanging_server_is_answered_by_the_timeout(tmp_path: Path, policies: Path) -> None:
    env = gateway_env(tmp_path, request_timeout_s="1.5")
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies), env=env) as session:
            await session.initialize()
            with pytest.raises(MCPError) as hung:
                await session.call_tool("hang", {})
            after = await session.call_tool("echo", {"text": "ok"})
    assert "did not answer tools/call within 1.5 s" in hung.value.error.message
    assert text(after) == "ok"
    cancels = [m for m in server_log(tmp_path) if m.get("method") == "notifications/cancelled"]
    assert len(cancels) == 1  # the server is told to stop working on it


async def test_an_oversized_result_is_refused_with_a_clear_error(tmp_path: Path, policies: Path) -> None:
    env = gateway_env(tmp_path, max_message_bytes="100000")
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies), env=env) as session:
            await session.initialize()
            with pytest.raises(MCPError) as refused:
                await session.call_tool("huge", {"bytes": 300_000})
            fine = await session.call_tool("huge", {"bytes": 50_000})
    assert "over the 100,000-byte limit" in refused.value.error.message
    assert len(text(fine)) == 50_000


async def test_progress_sampling_and_list_changed_reach_the_client(tmp_path: Path, policies: Path) -> None:
    progress: list[tuple[float, float | None]] = []
    notifications: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked = params.messages[0].content
        assert isinstance(asked, types.TextContent)
        return types.CreateMessageResult(
            role="assistant",
            model="client-model",
            content=types.TextContent(type="text", text=f"reply to {asked.text}"),
        )

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        method = getattr(root, "method", None)
        if method:
            notifications.append(method)

    with anyio.fail_after(60):
        async with gateway_session(
            tmp_path, RAW_SERVER, gateway_args=args(policies), sampling_callback=sampling, message_handler=on_message
        ) as session:
            await session.initialize()
            done = await session.call_tool("progress", {}, progress_callback=on_progress)
            sampled = await session.call_tool("sample", {"text": "ping"})
            await session.call_tool("changed", {})
            tools = await session.list_tools()
    assert text(done) == "progress-done"
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert "reply to ping" in text(sampled) and "client-model" in text(sampled)
    assert "notifications/tools/list_changed" in notifications
    assert tools.tools[-1].name.startswith("extra")


TOKEN = "ghp_" + "M25hwFDdQk7Lr2Xs9Tb4Vc8Ny1Pz6Ej3Eyue"


async def test_secrets_in_log_and_progress_messages_errors_and_elicitations_are_masked(
    tmp_path: Path, policies: Path
) -> None:
    secrets_mask_policy(policies)
    received: list[str] = []
    progress: list[str | None] = []

    async def on_message(message: Any) -> None:
        root = getattr(message, "root", message)
        received.append(root.model_dump_json() if hasattr(root, "model_dump_json") else repr(root))

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(json.dumps(params.data))

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        received.append(params.message)
        return types.ElicitResult(action="accept", content={"ok": True})

    with anyio.fail_after(60):
        async with gateway_session(
            tmp_path, RAW_SERVER, gateway_args=args(policies), message_handler=on_message,
            logging_callback=on_log, elicitation_callback=elicitation,
        ) as session:
            await session.initialize()
            chatted = await session.call_tool("chatter", {"text": TOKEN}, progress_callback=on_progress)
            with pytest.raises(MCPError) as failed:
                await session.call_tool("fail", {"text": TOKEN})
            elicited = await session.call_tool("elicit", {"text": TOKEN})
    assert text(chatted) == "chatted"
    assert progress == ["sent with [MASKED:github-token]"]
    assert any("using [MASKED:github-token]" in item for item in received)
    assert "could not connect with [MASKED:github-token]" in failed.value.error.message
    assert failed.value.error.data == {"tried": "[MASKED:github-token]"}
    assert "Confirm [MASKED:github-token]?" in received
    assert '"ok": true' in text(elicited)
    assert not any(TOKEN in item for item in received + [str(p) for p in progress])
    with sqlite3.connect(tmp_path / "audit.db") as db:
        methods = {row[0] for row in db.execute("SELECT method FROM decisions WHERE applied = 'mask'")}
    assert {"notifications/message", "notifications/progress", "tools/call (error)", "elicitation/create"} <= methods


async def test_secrets_in_meta_links_text_blobs_and_completions_are_masked(tmp_path: Path, policies: Path) -> None:
    import base64

    secrets_mask_policy(policies)
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            sides = await session.call_tool("sides", {"text": TOKEN})
            completed = await session.complete(
                types.PromptReference(type="ref/prompt", name="p"), {"name": "who", "value": TOKEN}
            )
    dumped = sides.model_dump(mode="json", by_alias=True)
    assert TOKEN not in json.dumps(dumped)
    text_block, link, embedded, image = dumped["content"]
    assert text_block["_meta"] == {"debug": "[MASKED:github-token]"}
    assert link["description"] == "made with [MASKED:github-token]"
    assert TOKEN not in link["uri"] and link["uri"].endswith("@example.com/x")
    assert base64.b64decode(embedded["resource"]["blob"]).decode() == "TOKEN=[MASKED:github-token]\n"
    assert base64.b64decode(image["data"]) == bytes(range(256))  # binary content is left as it was
    assert dumped["_meta"]["auth"] == "Bearer [MASKED:github-token]"
    assert completed.completion.values == ["[MASKED:github-token]", "plain"]


async def test_a_masked_number_keeps_a_typed_result_valid_for_the_client(tmp_path: Path, policies: Path) -> None:
    write_rule_policy(policies, "mask-pii", "Mask personal data.", [], [types_kind.TOOL_RESULT],
                      action=Action.MASK, detectors=["pii"])
    with anyio.fail_after(90):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            await session.list_tools()  # the client learns the outputSchema, and checks results against it
            card = await session.call_tool("card", {})
    assert not card.is_error
    assert card.structured_content == {"holder": "team account", "card_number": 0}
    assert "4111111111111111" not in text(card) and "[MASKED:" in text(card)


async def test_a_secret_a_server_writes_to_stderr_is_masked_in_the_gateways_log(tmp_path: Path, policies: Path) -> None:
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            assert text(await session.call_tool("complain", {"text": TOKEN})) == "complained"
            await anyio.sleep(0.5)  # the stderr line is forwarded by a thread of its own
    log = (tmp_path / "gateway.stderr").read_text(encoding="utf-8")
    assert "raw-server: connecting with [MASKED:github-token]" in log
    assert TOKEN not in log


async def test_a_value_masked_in_the_content_is_masked_in_the_side_places_too(tmp_path: Path, policies: Path) -> None:
    secrets_mask_policy(policies)
    password = "Tr0ub4dor&3xyzzy"  # found only where a key names it: structuredContent.password
    env = {**gateway_env(tmp_path), "RAW_SERVER_RESOURCE_SECRET": "Ru7iPa3sZx9c"}
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies), env=env) as session:
            await session.initialize()
            crossed = await session.call_tool("crossed", {"text": password})
            resources = await session.list_resources()
    dumped = crossed.model_dump_json(by_alias=True)
    assert password not in dumped
    assert crossed.structured_content == {"user": "svc", "password": "[MASKED:password]"}
    assert crossed.content[1].description == "holds [MASKED:password]"  # type: ignore[union-attr]
    assert "Ru7iPa3sZx9c" not in resources.model_dump_json()
    assert str(resources.resources[1].uri) == "mem://plain"


async def test_a_progress_message_is_masked_but_never_blocked(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    rule = Rule(id="done", description="says done", when=Predicate(path="**", op="contains", value="done"))
    write_rule_policy(directory, "no-done", "Nothing may say done.", [rule], [types_kind.TOOL_RESULT])
    secrets_mask_policy(directory)
    seen: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(directory)) as session:
            await session.initialize()
            await session.call_tool("chatter", {"text": f"all done {TOKEN}"}, progress_callback=on_progress)
            blocked = await session.call_tool("echo", {"text": "all done"})
    assert seen == ["sent with all done [MASKED:github-token]"]  # a block policy does not act on notifications
    assert blocked.is_error and "no-done" in text(blocked)  # but it does on a result


async def test_a_masked_result_that_no_longer_fits_its_schema_becomes_an_error_with_the_masked_text(
    tmp_path: Path, policies: Path
) -> None:
    secrets_mask_policy(policies)
    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            await session.list_tools()  # the client learns the outputSchema
            typed = await session.call_tool("typed_token", {"text": TOKEN})  # would raise if it failed the schema
    assert typed.is_error and typed.structured_content is None
    said = text(typed)
    assert TOKEN not in said and '"token": "[MASKED:github-token]"' in said
    assert "no longer fits the tool's outputSchema" in said


async def test_closing_the_client_stops_the_server_process(tmp_path: Path, policies: Path) -> None:
    import psutil

    with anyio.fail_after(60):
        async with gateway_session(tmp_path, RAW_SERVER, gateway_args=args(policies)) as session:
            await session.initialize()
            gateway = [p for p in psutil.Process().children() if "gateway" in " ".join(p.cmdline())]
            servers = [child for g in gateway for child in g.children(recursive=True)]
            assert servers, "the gateway should have started the server"
    _, alive = psutil.wait_procs([*gateway, *servers], timeout=10)
    assert alive == []
