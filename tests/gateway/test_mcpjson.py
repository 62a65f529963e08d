from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.mcpjson import load_servers


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_cursor_claude_and_vscode_layouts_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_FOR_TEST", "t0k")
    path = write(
        tmp_path,
        """{
      // VS Code allows comments and trailing commas
      "servers": {
        "fs": {"type": "stdio", "command": "npx", "args": ["-y", "server-fs", "${env:TOKEN_FOR_TEST}"],
               "env": {"A": "1"}},
        "remote": {"type": "http", "url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer x"}},
        "legacy": {"url": "http://127.0.0.1:9001/sse"},
        "off": {"command": "x", "disabled": true},
      },
    }""",
    )
    specs = {spec.name: spec for spec in load_servers(path)}
    assert set(specs) == {"fs", "remote", "legacy"}
    assert specs["fs"].stdio is not None and specs["fs"].stdio.args == ("-y", "server-fs", "t0k")
    assert dict(specs["fs"].stdio.env) == {"A": "1"}
    assert (specs["remote"].transport, specs["remote"].headers) == ("http", (("Authorization", "Bearer x"),))
    assert specs["legacy"].transport == "sse"


def test_lassos_nested_layout_is_understood(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps(
            {
                "mcpServers": {
                    "mcp-gateway": {
                        "command": "mcp-gateway",
                        "args": ["--mcp-json-path", "x", "-p", "basic"],
                        "servers": {"bench": {"command": "python3", "args": ["server.py"]}},
                    }
                }
            }
        ),
    )
    [spec] = load_servers(path)
    assert spec.name == "bench" and spec.stdio is not None and spec.stdio.command == "python3"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"mcpServers": {"a": {"args": []}}}', "needs a 'command'"),
        ('{"other": {}}', "no 'mcpServers'"),
        ('{"mcpServers": {"a": {"command": "x", "args": "not-a-list"}}}', "'args' must be a list"),
        ('{"mcpServers": {"a": {"command": "${env:SURELY_UNSET_VAR_123}"}}}', "SURELY_UNSET_VAR_123"),
        ('{"mcpServers": {"a": {"url": "http://x", "type": "websocket"}}}', "unknown type"),
        ('{"mcpServers": ', "not valid JSON"),
        ('{"mcpServers": {"a": {"command": "x", "args": [1, null]}}}', "'args' must be a list of strings"),
        ('{"mcpServers": {"a": {"command": "x", "env": {"A": {"b": 1}}}}}', "'env' must be an object"),
        ('{"mcpServers": {"a": {"command": "x", "cwd": "/surely/not/here"}}}', "not an existing directory"),
        ('{"mcpServers": {"a": {"command": "x", "cwd": 7}}}', "'cwd' must be a directory path"),
        ('{"mcpServers": {"a": {"command": "x", "disabled": "true"}}}', "'disabled' must be true or false"),
        ('{"mcpServers": {"a": {"command": "x", "type": "websocket"}}}', "does not go with a 'command'"),
        ('{"mcpServers": {"a": {"url": "ftp://x/y"}}}', "http:// or https://"),
        ('{"mcpServers": {"a": {"url": 42}}}', "http:// or https://"),
    ],
)
def test_bad_configs_say_what_and_where(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=fragment) as caught:
        load_servers(path)
    assert str(path) in str(caught.value)


def test_url_and_cwd_are_expanded_and_a_server_without_cwd_runs_beside_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("WORK_DIR_FOR_TEST", str(work))
    monkeypatch.setenv("PORT_FOR_TEST", "9100")
    path = write(
        tmp_path,
        json.dumps(
            {
                "mcpServers": {
                    "here": {"command": "x", "cwd": "${env:WORK_DIR_FOR_TEST}"},
                    "beside": {"command": "x"},
                    "remote": {"url": "http://127.0.0.1:${env:PORT_FOR_TEST}/mcp"},
                }
            }
        ),
    )
    specs = {spec.name: spec for spec in load_servers(path)}
    assert specs["here"].stdio is not None and specs["here"].stdio.cwd == str(work)
    assert specs["beside"].stdio is not None and specs["beside"].stdio.cwd == str(path.parent.resolve())
    assert specs["remote"].url == "http://127.0.0.1:9100/mcp"


def test_entries_wrapped_by_install_are_fronted_as_the_servers_they_wrap(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps({"mcpServers": {
            "fs": {"command": "/opt/bin/mcp-gateway", "args": ["wrap", "--name", "fs", "--", "npx", "-y", "server-fs"],
                   "env": {"A": "1"}},
            "web": {"command": "mcp-gateway", "args": ["wrap", "--name", "web", "--url", "http://127.0.0.1:9/sse",
                                                        "--remote-transport", "sse", "--header", "X-Key: k"]},
            "plain": {"command": "node", "args": ["server.js"]},
        }}),
    )
    specs = {spec.name: spec for spec in load_servers(path)}
    assert set(specs) == {"fs", "web", "plain"}
    assert specs["fs"].stdio is not None
    assert (specs["fs"].stdio.command, specs["fs"].stdio.args, dict(specs["fs"].stdio.env)) == (
        "npx", ("-y", "server-fs"), {"A": "1"}
    )
    assert (specs["web"].url, specs["web"].transport, specs["web"].headers) == (
        "http://127.0.0.1:9/sse", "sse", (("X-Key", "k"),)
    )


def test_the_ides_own_variables_are_expanded_or_explained(tmp_path: Path) -> None:
    args = ["${userHome}/srv.py", "${workspaceFolder}${/}tool", "${workspaceFolderBasename}"]
    workspace = tmp_path / "project"
    (workspace / ".cursor").mkdir(parents=True)
    path = workspace / ".cursor" / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"s": {"command": "python", "args": args}}}), encoding="utf-8")
    [spec] = load_servers(path)
    assert spec.stdio is not None
    assert spec.stdio.args == (f"{Path.home()}/srv.py", f"{workspace}/tool", "project")

    outside = write(tmp_path, json.dumps({"mcpServers": {"s": {"command": "python", "args": args[1:]}}}))
    with pytest.raises(ConfigError, match=r"\$\{workspaceFolder\} is the IDE's own variable.*write the folder's path"):
        load_servers(outside)


def test_a_byte_order_mark_and_a_null_mcpservers_beside_servers_are_read(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text("\ufeff" + json.dumps({"mcpServers": None, "servers": {"s": {"command": "x"}}}), encoding="utf-8")
    assert [spec.name for spec in load_servers(path)] == ["s"]


def test_two_servers_with_one_prefix_are_refused_before_serving(tmp_path: Path) -> None:
    from gateway.mcpjson import check_prefixes

    path = write(tmp_path, json.dumps({"mcpServers": {"my server": {"command": "x"}, "my-server": {"command": "y"}}}))
    with pytest.raises(ConfigError, match="'my server' and 'my-server' both become the prefix 'my-server'"):
        check_prefixes(load_servers(path), path)


def test_a_stdio_type_takes_the_command_and_header_values_must_be_text(tmp_path: Path) -> None:
    both = write(tmp_path, json.dumps({"servers": {"s": {"type": "stdio", "command": "x", "url": "http://h/mcp"}}}))
    [spec] = load_servers(both)
    assert spec.stdio is not None and spec.url is None
    for entry, says in [
        ({"type": "stdio", "url": "http://h/mcp"}, "type 'stdio' needs a 'command'"),
        ({"url": "http://h/mcp", "headers": {"X": {"nested": 1}}}, "'headers' must map names to strings"),
    ]:
        with pytest.raises(ConfigError, match=says):
            load_servers(write(tmp_path, json.dumps({"servers": {"s": entry}})))
