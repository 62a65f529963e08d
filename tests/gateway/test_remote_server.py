"""`wrap --url`: the gateway in front of a real remote server (the SDK's own, on loopback), driven by the
real client: Streamable HTTP answering with event streams or with JSON bodies, and the legacy SSE transport."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError

from .relay_support import free_port, gateway_client, gateway_env, port_open, secrets_mask_policy, text

pytestmark = pytest.mark.integration

SERVER = Path(__file__).parent.parent / "servers" / "remote_server.py"
AWS_KEY = "AKIAZ7Q2MX4TPLE6WD3B"
LIMIT = 3_000_000
# over the SDK client's own 1 MiB bound on one event (the result carries the text twice), under LIMIT; the
# legacy transport's client keeps that bound whatever the gateway's limit, so it gets a smaller one
FITS = {"stream": 600_000, "json": 600_000, "legacy": 200_000}


@pytest.fixture(params=["stream", "json", "legacy"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, mode) of a remote server running in `mode` for the test."""
    mode: str = request.param
    port = free_port()
    with (tmp_path / "remote.stderr").open("wb") as errors:
        process = subprocess.Popen([sys.executable, str(SERVER), str(port), mode], stderr=errors)
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None, (tmp_path / "remote.stderr").read_text()
            assert time.monotonic() < deadline, "the remote test server did not open its port"
            time.sleep(0.05)  # polling for the port: there is no event to wait on
        yield f"http://127.0.0.1:{port}/{'sse' if mode == 'legacy' else 'mcp'}", mode
    finally:
        process.terminate()
        process.wait(15)


async def _session(tmp: Path, url: str, mode: str) -> dict[str, Any]:
    argv = ["wrap", "--name", "remote", "--url", url, "--no-builtin", "--policies", str(tmp / "policies")]
    if mode == "legacy":
        argv += ["--remote-transport", "sse"]
    env = gateway_env(tmp, max_message_bytes=str(LIMIT))
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    out: dict[str, Any] = {"progress": progress}
    with anyio.fail_after(120):
        async with gateway_client(tmp, argv, env=env) as session:
            out["init"] = await session.initialize()
            out["tools"] = sorted(tool.name for tool in (await session.list_tools()).tools)
            out["echo"] = text(await session.call_tool("echo", {"text": "over the wire"}))
            out["leak"] = text(await session.call_tool("leak", {}))
            out["steps"] = text(await session.call_tool("steps", {}, progress_callback=on_progress))
            out["fits"] = text(await session.call_tool("big", {"size": FITS[mode]}))
            try:
                await session.call_tool("big", {"size": LIMIT})
                out["over"] = None
            except MCPError as exc:
                out["over"] = exc.error
            out["after"] = text(await session.call_tool("echo", {"text": "still served"}))
    return out


def test_a_remote_server_is_relayed_and_guarded_and_an_oversized_answer_is_an_error(
    tmp_path: Path, remote: tuple[str, str]
) -> None:
    url, mode = remote
    secrets_mask_policy(tmp_path / "policies")
    out = anyio.run(_session, tmp_path, url, mode)
    assert out["init"].instructions == "remote test server"
    assert out["tools"] == ["big", "echo", "leak", "steps"]
    assert out["echo"] == "over the wire"
    assert AWS_KEY not in out["leak"] and "[MASKED" in out["leak"]
    assert out["steps"] == "stepped"
    if mode != "json":  # a JSON body has room for the answer alone: the server sends no progress then, direct either
        assert out["progress"] == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert out["fits"] == "x" * FITS[mode]  # under the limit: passes whole
    over = out["over"]
    assert over is not None, "a message over max_message_bytes came through"
    if mode == "legacy":  # the old transport carries every answer on one stream: it ends, and is reopened
        assert "stopped while handling tools/call" in over.message
    else:
        assert over.code == -32042
        assert "over the 3,000,000-byte limit" in over.message and "MCP_GATEWAY_MAX_MESSAGE_BYTES" in over.message
    assert out["after"] == "still served"


@pytest.mark.parametrize("remote", ["legacy"], indirect=True)
def test_an_oversized_message_on_the_legacy_transport_is_named_in_the_error(
    tmp_path: Path, remote: tuple[str, str]
) -> None:
    # under the SDK client's own 1 MiB bound, so the gateway's is the one that stops the line
    url, _ = remote
    secrets_mask_policy(tmp_path / "policies")
    argv = ["wrap", "--name", "remote", "--url", url, "--remote-transport", "sse", "--no-builtin",
            "--policies", str(tmp_path / "policies")]

    async def session() -> tuple[str, str]:
        with anyio.fail_after(120):
            async with gateway_client(tmp_path, argv, env=gateway_env(tmp_path, max_message_bytes="200000")) as client:
                await client.initialize()
                try:
                    await client.call_tool("big", {"size": 150_000})
                    over = ""
                except MCPError as exc:
                    over = exc.error.message
                return over, text(await client.call_tool("echo", {"text": "still served"}))

    over, after = anyio.run(session)
    assert "over the max_message_bytes limit (200,000 bytes)" in over, over
    assert after == "still served"
