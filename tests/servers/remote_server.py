"""A remote MCP server on loopback for the gateway's `wrap --url` tests, on the SDK's own server.

usage: remote_server.py PORT MODE, MODE one of: stream (Streamable HTTP, answers as event streams),
json (Streamable HTTP, answers as JSON bodies), legacy (the old HTTP+SSE transport).
"""

from __future__ import annotations

import sys

from mcp.server import MCPServer
from mcp.server.mcpserver import Context

server = MCPServer("remote", instructions="remote test server")


@server.tool()
def echo(text: str) -> str:
    return text


@server.tool()
def big(size: int) -> str:
    """`size` characters (the result carries them twice: as text and as structured content)."""
    return "x" * size


@server.tool()
def leak() -> str:
    return "deploy with AKIAZ7Q2MX4TPLE6WD3B and wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Rk2Lm9T"


@server.tool()
async def steps(ctx: Context) -> str:
    for step in range(1, 4):
        await ctx.report_progress(step, 3, f"step {step}")
    return "stepped"


if __name__ == "__main__":
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "legacy":
        server.run("sse", host="127.0.0.1", port=port)
    else:
        server.run("streamable-http", host="127.0.0.1", port=port, json_response=mode == "json")
