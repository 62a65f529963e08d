"""The gateway over HTTP: a real gateway process on loopback, real server processes, the real SDK client."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import mcp_types as types
import psutil
import pytest
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from .relay_support import (
    RAW_SERVER,
    attacker_mail_policy,
    free_port,
    gateway_env,
    port_open,
    server_log,
    text,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

INIT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw-http", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

# A server that asks the client a question (elicitation) from inside a tool.
ELICIT_SERVER = """
from pydantic import BaseModel
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

server = MCPServer("asker")

class Answer(BaseModel):
    colour: str

@server.tool()
async def ask(ctx: Context) -> str:
    result = await ctx.elicit("Which colour?", Answer)
    return f"{result.action}: {result.data.colour if result.action == 'accept' else '-'}"

server.run()
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def servers(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return children


def trivial_policies(tmp: Path) -> Path:
    directory = tmp / "policies"
    directory.mkdir(exist_ok=True)
    (directory / "x.md").write_text(
        "---\nid: x\njudge: never\napplies_to: [tool_call]\ntools: [nothing-matches]\n---\nNothing to check.\n",
        encoding="utf-8",
    )
    return directory


def wrap(server: Sequence[str] = tuple(RAW_SERVER)) -> list[str]:
    return ["wrap", "--name", "raw", "--", *server]


@asynccontextmanager
async def http_gateway(tmp: Path, command: Sequence[str] | None = None, **env: str) -> AsyncIterator[Gateway]:
    """`mcp-gateway <command> --transport http` on a free port; on exit, SIGTERM and a clean stop."""
    port = free_port()
    verb, *rest = command or wrap()
    options = ["--transport", "http", "--port", str(port), "--no-builtin", "--no-audit"]
    options += ["--policies", str(trivial_policies(tmp))]
    stderr = tmp / "gateway.stderr"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", verb, *options, *rest],
            env={**gateway_env(tmp), **env},
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    gateway = Gateway(process, port, stderr)
    try:
        with anyio.fail_after(60):
            while not port_open(port):
                assert process.poll() is None, f"the gateway exited: {stderr.read_text()}"
                await anyio.sleep(0.05)  # bounded polling for the port: there is no event to wait on
        yield gateway
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.stdout is not None
        assert process.stdout.read() == b"", "nothing may be printed to stdout"
        process.stdout.close()



@asynccontextmanager
async def raw_http(tmp: Path, **env: str) -> AsyncIterator[tuple[Gateway, httpx2.AsyncClient]]:
    """A gateway over HTTP (`http_gateway`, wrap mode) and a plain HTTP client to send it raw requests."""
    async with http_gateway(tmp, **env) as gateway, httpx2.AsyncClient(timeout=30) as http:
        yield gateway, http

@asynccontextmanager
async def session_at(url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, **kwargs) as session,
    ):
        yield session


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    with anyio.move_on_after(15):
        while not condition():
            await anyio.sleep(0.05)  # polling the process table: there is no event to wait on
        return
    raise AssertionError(f"timed out waiting until {what}")



async def open_session(http: httpx2.AsyncClient, url: str) -> tuple[httpx2.Response, dict[str, str]]:
    """POST an initialize: the answer, and the headers each request of that session carries."""
    opened = await http.post(url, json=INIT, headers=MCP_HEADERS)
    session = {"Mcp-Session-Id": opened.headers.get("mcp-session-id", ""), "MCP-Protocol-Version": "2025-06-18"}
    return opened, {**MCP_HEADERS, **session}

def answering(label: str) -> Any:
    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked = params.messages[0].content
        question = asked.text if isinstance(asked, types.TextContent) else "?"
        answer = types.TextContent(type="text", text=f"{label} answers {question}")
        return types.CreateMessageResult(role="assistant", model=label, content=answer)

    return sampling


async def test_a_session_passes_messages_and_unknown_fields_through(tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with http_gateway(tmp_path) as gateway, session_at(gateway.url) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("echo", {"text": "hello over http"})
    assert init.server_info.name == "raw-server"
    assert init.instructions == "fault injection server"
    assert [tool.name for tool in tools.tools][:3] == ["echo", "crash", "hang"]
    assert text(result) == "hello over http"
    assert server_log(tmp_path)[0]["params"]["clientInfo"]["name"] == "mcp"  # the client's own initialize


async def test_policies_are_enforced_on_http_sessions(tmp_path: Path) -> None:
    policy = attacker_mail_policy(tmp_path / "block")
    with anyio.fail_after(90):
        async with (
            http_gateway(tmp_path, ["wrap", "--policies", str(policy), *wrap()[1:]]) as gateway,
            session_at(gateway.url) as session,
        ):
            await session.initialize()
            blocked = await session.call_tool("args", {"to": "boss@attacker-mail.example"})
    assert blocked.is_error is True
    assert "policy 'no-attacker-mail'" in text(blocked)
    assert not [m for m in server_log(tmp_path) if m.get("method") == "tools/call"]


async def test_progress_notifications_reach_the_caller(tmp_path: Path) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    with anyio.fail_after(90):
        async with http_gateway(tmp_path) as gateway, session_at(gateway.url) as session:
            await session.initialize()
            result = await session.call_tool("progress", {}, progress_callback=on_progress)
    assert text(result) == "progress-done"
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_progress_reaches_an_http_client_as_the_server_wrote_it_under_its_own_token(tmp_path: Path) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "progress", "arguments": {}, "_meta": {"progressToken": "tk-1"}},
    }
    with anyio.fail_after(90):
        async with http_gateway(tmp_path) as gateway, httpx2.AsyncClient(timeout=60) as http:
            hello = await http.post(gateway.url, json=INIT, headers=MCP_HEADERS)
            headers = {
                **MCP_HEADERS,
                "Mcp-Session-Id": hello.headers["mcp-session-id"],
                "MCP-Protocol-Version": "2025-06-18",
            }
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            await http.post(gateway.url, json=initialized, headers=headers)
            answer = await http.post(gateway.url, json=call, headers=headers)
    # the answer's event stream, read raw: what a client parses, not what the SDK's callback hands on
    frames = [json.loads(line.removeprefix("data:")) for line in answer.text.splitlines() if line.startswith("data:")]
    notes = [frame["params"] for frame in frames if frame.get("method") == "notifications/progress"]
    assert notes == [
        {"progressToken": "tk-1", "progress": 1, "total": 3},
        {"progressToken": "tk-1", "progress": 2, "total": 3},
        {"progressToken": "tk-1", "progress": 3, "total": 3, "_meta": {"trace": "t-3"}, "phase": "done"},
    ]
    assert all(isinstance(note["progress"], int) for note in notes)
    assert frames[-1]["result"]["content"][0]["text"] == "progress-done"


async def test_concurrent_sessions_each_get_their_own_server_and_their_own_sampling_requests(tmp_path: Path) -> None:
    results: dict[str, str] = {}
    both_running = anyio.Event()

    async def client(label: str, gateway: Gateway) -> None:
        async with session_at(gateway.url, sampling_callback=answering(label)) as session:
            await session.initialize()
            if label == "first":
                await wait_until(lambda: len(gateway.servers()) == 2, "each session runs its own server")
                both_running.set()
            await both_running.wait()
            results[label] = text(await session.call_tool("sample", {"text": f"question of {label}"}))

    with anyio.fail_after(90):
        async with http_gateway(tmp_path) as gateway:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client, "first", gateway)
                tg.start_soon(client, "second", gateway)
            await wait_until(lambda: not gateway.servers(), "ending a session (DELETE) stops its server")
    for label, other in (("first", "second"), ("second", "first")):
        reply = json.loads(results[label].removeprefix("sampled: "))
        assert reply["model"] == label
        assert reply["content"]["text"] == f"{label} answers question of {label}"
        assert other not in results[label]
    assert len([m for m in server_log(tmp_path) if m.get("method") == "initialize"]) == 2


async def test_elicitation_reaches_the_client_and_its_answer_the_server(tmp_path: Path) -> None:
    script = tmp_path / "asker.py"
    script.write_text(ELICIT_SERVER, encoding="utf-8")

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert params.message == "Which colour?"
        return types.ElicitResult(action="accept", content={"colour": "teal"})

    with anyio.fail_after(90):
        async with (
            http_gateway(tmp_path, wrap([sys.executable, str(script)])) as gateway,
            session_at(gateway.url, elicitation_callback=elicit) as session,
        ):
            await session.initialize()
            result = await session.call_tool("ask", {})
    assert text(result) == "accept: teal"


async def test_a_configured_token_is_required_on_every_endpoint(tmp_path: Path) -> None:
    token = "s3cret-token-for-tests"
    with anyio.fail_after(90):
        async with http_gateway(tmp_path, MCP_GATEWAY_HTTP_TOKEN=token) as gateway, httpx2.AsyncClient() as http:
            missing = await http.post(gateway.url, json=INIT, headers=MCP_HEADERS)
            wrong = await http.post(gateway.url, json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer no"})
            legacy = await http.get(gateway.url.removesuffix("/mcp") + "/sse")
            async with session_at(gateway.url, headers={"Authorization": f"Bearer {token}"}) as session:
                await session.initialize()
                result = await session.call_tool("echo", {"text": "authorised"})
                [server] = gateway.servers()
                handed_on = server.environ()  # the token is the gateway's: a server holding it could open sessions
    assert "MCP_GATEWAY_HTTP_TOKEN" not in handed_on and "RAW_SERVER_LOG" in handed_on
    assert (missing.status_code, wrong.status_code, legacy.status_code) == (401, 401, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "MCP_GATEWAY_HTTP_TOKEN" in missing.text
    assert text(result) == "authorised"
    assert server_log(tmp_path)[0]["params"]["clientInfo"]["name"] == "mcp"  # refused requests never arrived


async def test_other_hosts_foreign_origins_and_oversized_bodies_are_refused(tmp_path: Path) -> None:
    big = {**INIT, "params": {**INIT["params"], "padding": "x" * 10_000}}
    local_headers = {**MCP_HEADERS, "Origin": "http://localhost:3000"}
    with anyio.fail_after(90):
        async with (
            http_gateway(tmp_path, MCP_GATEWAY_MAX_MESSAGE_BYTES="4096") as gateway,
            httpx2.AsyncClient() as http,
        ):
            rebound = await http.post(gateway.url, json=INIT, headers={**MCP_HEADERS, "Host": "evil.example"})
            foreign = await http.post(gateway.url, json=INIT, headers={**MCP_HEADERS, "Origin": "https://evil.example"})
            too_large = await http.post(gateway.url, json=big, headers=MCP_HEADERS)
            local = await http.post(
                gateway.url, json=INIT, headers={**local_headers, "Host": f"localhost:{gateway.port}"}
            )
            await http.delete(gateway.url, headers={"Mcp-Session-Id": local.headers["mcp-session-id"]})
    assert rebound.status_code == 421
    assert "DNS-rebinding" in rebound.text
    assert foreign.status_code == 403
    assert too_large.status_code == 413
    assert local.status_code == 200
    assert len(server_log(tmp_path)) == 1  # only the local initialize reached the server


async def test_a_2026_client_is_told_the_versions_served_and_falls_back_to_initialize(tmp_path: Path) -> None:
    discover = {"jsonrpc": "2.0", "id": 7, "method": "server/discover"}
    with anyio.fail_after(90):
        async with http_gateway(tmp_path) as gateway:
            async with Client(gateway.url) as client:  # mode="auto" probes server/discover first
                version = client.protocol_version
                result = await client.call_tool("echo", {"text": "fell back"})
            async with httpx2.AsyncClient() as http:
                headers = {**MCP_HEADERS, "MCP-Protocol-Version": "2026-07-28"}
                modern = await http.post(gateway.url, headers=headers, json=discover)
    assert version == "2025-11-25"
    assert text(result) == "fell back"
    assert modern.status_code == 400
    error = modern.json()
    assert (error["id"], error["error"]["code"]) == (7, -32022)
    assert "2025-11-25" in error["error"]["data"]["supported"]


async def test_the_legacy_sse_transport_serves_a_session_with_sampling(tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with http_gateway(tmp_path) as gateway:
            async with (
                sse_client(gateway.url.removesuffix("/mcp") + "/sse") as (read, write),
                ClientSession(read, write, sampling_callback=answering("legacy")) as session,
            ):
                await session.initialize()
                echoed = await session.call_tool("echo", {"text": "over sse"})
                sampled = await session.call_tool("sample", {"text": "q"})
            await wait_until(lambda: not gateway.servers(), "closing the SSE stream stops its server")
    assert text(echoed) == "over sse"
    assert json.loads(text(sampled).removeprefix("sampled: "))["model"] == "legacy"


async def test_run_mode_serves_every_server_of_an_mcp_json_over_http(tmp_path: Path) -> None:
    mcp_json = tmp_path / "mcp.json"
    entry = {"command": RAW_SERVER[0], "args": RAW_SERVER[1:]}
    mcp_json.write_text(json.dumps({"mcpServers": {"a": entry, "b": entry}}), encoding="utf-8")
    with anyio.fail_after(90):
        async with (
            http_gateway(tmp_path, ["run", "--mcp-json-path", str(mcp_json)]) as gateway,
            session_at(gateway.url) as session,
        ):
            await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("b__echo", {"text": "from b"})
    assert {"a__echo", "b__echo"} <= {tool.name for tool in tools.tools}
    assert text(result) == "from b"


async def test_sigterm_stops_every_server_and_the_gateway_exits_cleanly(tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with (
            http_gateway(tmp_path) as gateway,
            session_at(gateway.url) as first,
            session_at(gateway.url) as second,
        ):
            await first.initialize()
            await second.initialize()
            servers = gateway.servers()
            gateway.process.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: gateway.process.wait(30))
    assert len(servers) == 2
    assert code == 0
    assert not [server for server in servers if server.is_running() and server.status() != psutil.STATUS_ZOMBIE]
    assert "Traceback" not in gateway.stderr.read_text()


async def test_a_session_whose_initialize_failed_frees_its_slot(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with (
            http_gateway(tmp_path, ["wrap", "--name", "bad", "--", str(tmp_path / "no-such-server")]) as gateway,
            httpx2.AsyncClient(timeout=30) as http,
        ):
            answers = [await http.post(gateway.url, json=INIT, headers=MCP_HEADERS) for _ in range(40)]
    # more attempts than there are session slots (32): each is told why, none is refused for want of a slot
    assert {answer.status_code for answer in answers} == {200}
    assert all("no-such-server" in answer.text for answer in answers)


async def test_a_stream_asked_to_resume_is_a_fresh_stream(tmp_path: Path) -> None:
    with anyio.fail_after(90):
        async with raw_http(tmp_path) as (gateway, http):
            _, session = await open_session(http, gateway.url)
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            await http.post(gateway.url, json=note, headers=session)
            resume = {**session, "Accept": "text/event-stream", "Last-Event-ID": "123"}
            async with http.stream("GET", gateway.url, headers=resume) as stream:
                status, kind = stream.status_code, stream.headers.get("content-type", "")
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            odd_version = {**session, "MCP-Protocol-Version": "foo"}
            odd = await http.post(gateway.url, json=ping, headers=odd_version)
            ended = await http.delete(gateway.url, headers=odd_version)
            after = await http.post(gateway.url, json=ping, headers=session)
    # a session's request in a version no one speaks is refused as such (not as a sessionless request), and a
    # DELETE ends the session whatever version it names
    assert odd.status_code == 400 and "'foo' is not a version" in odd.text and "sessionless" not in odd.text
    assert ended.status_code == 200 and after.status_code == 404
    # no events are kept to resume from: a fresh stream, not a 500 with nothing in it
    assert status == 200 and kind.startswith("text/event-stream")


async def test_connections_that_send_no_whole_request_are_closed_and_never_shut_clients_out(tmp_path: Path) -> None:
    from gateway.http_front import REQUEST_TIMEOUT_S

    head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"

    def closed_after(port: int, first: bytes, then: bytes) -> float | None:
        """Send `first`, then a byte of `then` (if any) every second; how long until the gateway closed the
        connection (None: still open after twice the deadline)."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(1.0)
            sock.sendall(first)
            for index in range(int(2 * REQUEST_TIMEOUT_S)):
                try:
                    if sock.recv(1024) == b"":
                        return time.monotonic() - started
                except TimeoutError:
                    pass
                try:
                    sock.sendall(then[index : index + 1])
                except OSError:
                    return time.monotonic() - started
        return None

    with anyio.fail_after(120):
        async with http_gateway(tmp_path) as gateway:
            # 300 connections that never send a byte: more than any cap a server might count them against
            idle = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(300)]
            try:
                outcomes: dict[str, float | None] = {}
                async with anyio.create_task_group() as tg:
                    cases = {
                        "trickled head": (b"", head + b"X-Slow: " + b"a" * 40),
                        "nothing": (b"", b""),
                        "head, no body": (head + b"Content-Length: 100\r\n\r\n", b""),
                        "head, trickled body": (head + b"Content-Length: 100\r\n\r\n", b"{" + b" " * 40),
                    }
                    for name, (first, then) in cases.items():

                        async def run(name: str = name, first: bytes = first, then: bytes = then) -> None:
                            outcomes[name] = await anyio.to_thread.run_sync(closed_after, gateway.port, first, then)

                        tg.start_soon(run)
                    async with session_at(gateway.url) as session:  # served meanwhile
                        await session.initialize()
                        answered = text(await session.call_tool("echo", {"text": "hi"}))
                        await anyio.sleep(REQUEST_TIMEOUT_S + 1)  # an open session outlives the deadline
                        again = text(await session.call_tool("echo", {"text": "again"}))
            finally:
                for sock in idle:
                    sock.close()
    assert answered == "hi" and again == "again"
    for name, elapsed in outcomes.items():
        assert elapsed is not None and REQUEST_TIMEOUT_S - 1 <= elapsed <= REQUEST_TIMEOUT_S + 5, (name, outcomes)
    assert "no whole request within 10 s" in gateway.stderr.read_text()


async def test_the_session_limit_is_a_setting_and_a_closed_session_frees_its_slot(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with raw_http(tmp_path, MCP_GATEWAY_HTTP_MAX_SESSIONS="1") as (gateway, http):
            first, session = await open_session(http, gateway.url)
            refused = await http.post(gateway.url, json=INIT, headers=MCP_HEADERS)
            ended = await http.delete(gateway.url, headers=session)
            again = await http.post(gateway.url, json=INIT, headers=MCP_HEADERS)
    assert first.status_code == 200 and ended.status_code == 200
    assert refused.status_code == 503
    assert "1 sessions open, its limit" in refused.text and "MCP_GATEWAY_HTTP_MAX_SESSIONS" in refused.text
    assert again.status_code == 200 and again.headers["mcp-session-id"] != first.headers["mcp-session-id"]


async def test_a_session_idle_past_the_setting_ends_and_an_endless_idle_time_is_refused(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with raw_http(tmp_path, MCP_GATEWAY_HTTP_SESSION_IDLE_S="1") as (gateway, http):
            opened, session = await open_session(http, gateway.url)
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            at_once = await http.post(gateway.url, json=ping, headers=session)
            await anyio.sleep(3)  # idle past the setting: no event says when the session ended
            later = await http.post(gateway.url, json=ping, headers=session)
    assert opened.status_code == 200 and at_once.status_code == 200
    assert later.status_code == 404
    # a setting the server transport cannot take is refused at start, with the setting's name
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *wrap(), "--transport", "http", "--port", str(free_port())],
        env={**gateway_env(tmp_path), "MCP_GATEWAY_HTTP_SESSION_IDLE_S": "inf"},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and "http_session_idle_s" in done.stderr
