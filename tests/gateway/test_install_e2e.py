"""End to end: install into a Cursor config in a temporary HOME, start the rewritten entry with the real
MCP client, call the real mcp-server-time through the gateway, then uninstall and get the same bytes back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

BIN = Path(sys.executable).parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def time_server() -> list[str]:
    script = BIN / "mcp-server-time"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mcp_server_time"]


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "mcp-gateway"), *args, "--project", str(home / "project")]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False)


async def test_an_installed_server_runs_through_the_gateway_and_uninstall_gives_back_the_file(home: Path) -> None:
    server, *server_args = time_server()
    config = home / ".cursor" / "mcp.json"
    config.parent.mkdir()
    original = (
        '{\n  // my tools\n  "mcpServers": {\n    "time": {\n'
        f'      "command": {json.dumps(server)},\n'
        f'      "args": {json.dumps([*server_args, "--local-timezone=UTC"])},\n'
        '      "env": {"E2E_MARKER": "kept"}\n'
        "    }\n  }\n}\n"
    )
    config.write_text(original, encoding="utf-8")

    installed = cli(home, "install", "--client", "cursor", "--json")
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["files"][0]["entries"][0]["status"] == "wrapped"

    entry = json.loads(config.read_text().replace("// my tools", ""))["mcpServers"]["time"]
    assert entry["command"] == str(BIN / "mcp-gateway")
    assert entry["args"][:5] == ["wrap", "--name", "time", "--", server]
    assert entry["env"] == {"E2E_MARKER": "kept"}

    # start the entry the way an IDE does: its command, its args, the IDE's environment plus the entry's env
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env={**os.environ, **entry["env"]})
    errlog_path = home / "gateway.stderr"
    with errlog_path.open("w", encoding="utf-8") as errlog, anyio.fail_after(120):
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("get_current_time", {"timezone": "UTC"})
    assert "get_current_time" in [tool.name for tool in tools.tools], errlog_path.read_text()
    assert not result.is_error, errlog_path.read_text()
    reply = "".join(block.text for block in result.content if isinstance(block, types.TextContent))
    assert json.loads(reply)["timezone"] == "UTC"

    uninstalled = cli(home, "uninstall", "--client", "cursor")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert config.read_text(encoding="utf-8") == original
    backups = sorted(p.name for p in config.parent.iterdir() if p.name.endswith(".bak"))
    assert len(backups) == 2  # one before install, one before uninstall
