"""Reading the servers configured in IDE clients back as server specs (for scan and doctor)."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.clients import ClientName
from gateway.clientscan import configured_servers


def test_a_project_that_is_the_home_folder_lists_each_server_once(home: Path) -> None:
    (home / ".cursor").mkdir()
    (home / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {"time": {"command": "uvx"}}}))
    found = configured_servers((ClientName.CURSOR,), project=home)
    assert [(server.name, server.location.path) for server in found] == [("time", home / ".cursor" / "mcp.json")]


def test_a_url_is_read_with_the_transport_its_client_gives_it(home: Path, tmp_path: Path) -> None:
    (home / ".gemini").mkdir()
    servers = {"events": {"url": "https://h.example/events"}, "stream": {"httpUrl": "https://h.example/mcp"}}
    (home / ".gemini" / "settings.json").write_text(json.dumps({"mcpServers": servers}))
    found = {s.name: s.spec for s in configured_servers((ClientName.GEMINI,), project=tmp_path)}
    # Gemini's 'url' is an SSE server and its 'httpUrl' a Streamable HTTP one, as install wraps them
    assert {name: (spec.url, spec.transport) for name, spec in found.items() if spec is not None} == {
        "events": ("https://h.example/events", "sse"),
        "stream": ("https://h.example/mcp", "http"),
    }
