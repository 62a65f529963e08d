from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import gateway.cli.install  # noqa: F401  (registers the commands)
from gateway.cli import app

GATEWAY_SCRIPT = "#!/bin/sh\nexit 0\n"
CURSOR_CONFIG = """{
  "mcpServers": {
    "time": {"command": "uvx", "args": ["mcp-server-time"]},
    "half-written": {"args": ["--port", "9"]}
  }
}
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    (tmp_path / "project").mkdir()
    return tmp_path


def invoke(home: Path, *args: str) -> Result:
    env = {
        "HOME": str(home / "home"),
        "XDG_CONFIG_HOME": str(home / "home" / ".config"),
        "XDG_STATE_HOME": str(home / "home" / ".local" / "state"),
        "APPDATA": str(home / "home" / "AppData"),
        "CODEX_HOME": str(home / "home" / ".codex"),
    }
    return CliRunner().invoke(app, [*args, "--project", str(home / "project")], env=env)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_without_a_client_the_command_is_a_usage_error_that_names_the_clients_it_found(home: Path) -> None:
    write(home / "home" / ".cursor" / "mcp.json", CURSOR_CONFIG)
    result = invoke(home, "install")
    assert result.exit_code == 2
    assert "--client NAME (repeatable) or --all" in result.stderr
    assert "Config files found for: cursor" in result.stderr
    assert result.stdout == ""


def test_install_reports_on_stderr_and_exits_1_when_a_server_stays_outside_the_gateway(home: Path) -> None:
    config = write(home / "home" / ".cursor" / "mcp.json", CURSOR_CONFIG)
    result = invoke(home, "install", "--client", "cursor")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "wrapped                mcpServers.time" in result.stderr
    assert "skipped                mcpServers.half-written: neither a command nor a URL" in result.stderr
    assert "backup: " in result.stderr
    assert json.loads(config.read_text())["mcpServers"]["time"]["args"][:4] == ["wrap", "--name", "time", "--"]


def test_json_goes_to_stdout_and_describes_every_file_and_entry(home: Path) -> None:
    write(home / "project" / ".cursor" / "mcp.json", '{"mcpServers": {"a": {"command": "x"}}}')
    result = invoke(home, "install", "--client", "cursor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["action"] == "install" and report["findings"] == 0
    [file] = report["files"]
    assert file["scope"] == "project" and file["changed"] and file["backup"]
    assert file["entries"] == [
        {"table": ["mcpServers"], "name": "a", "status": "wrapped", "reason": "", "warnings": []}
    ]


def test_a_dry_run_prints_a_unified_diff_and_writes_nothing(home: Path) -> None:
    config = write(home / "home" / ".gemini" / "settings.json", '{"mcpServers": {"a": {"command": "x"}}}\n')
    result = invoke(home, "install", "--client", "gemini", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"--- {config} (now)" in result.stderr
    assert '-{"mcpServers": {"a": {"command": "x"}}}' in result.stderr
    assert "Dry run: 1 file(s) would change; nothing was written." in result.stderr
    assert config.read_text() == '{"mcpServers": {"a": {"command": "x"}}}\n'
    assert sorted(p.name for p in config.parent.iterdir()) == ["settings.json"]
    assert not (home / "home" / ".local").exists()


def test_an_unparseable_config_exits_2_names_the_file_and_changes_nothing(home: Path) -> None:
    good = write(home / "home" / ".cursor" / "mcp.json", CURSOR_CONFIG)
    bad = write(home / "home" / ".codex" / "config.toml", "[mcp_servers.a\ncommand = 1\n")
    result = invoke(home, "install", "--all")
    assert result.exit_code == 2
    assert f"error: {bad}: not valid TOML" in result.stderr
    assert "the file was not changed" in result.stderr
    assert good.read_text() == CURSOR_CONFIG
    assert bad.read_text() == "[mcp_servers.a\ncommand = 1\n"


def test_install_then_uninstall_gives_back_the_exact_file(home: Path) -> None:
    original = (
        '{\n  // team servers\n  "servers": {\n    "s": {"type": "stdio", "command": "npx", "args": ["-y", "pkg"]},\n'
        "  },\n}\n"
    )
    config = write(home / "project" / ".vscode" / "mcp.json", original)
    assert invoke(home, "install", "-c", "vscode").exit_code == 0
    assert config.read_text() != original
    result = invoke(home, "uninstall", "-c", "vscode")
    assert result.exit_code == 0, result.output
    assert "restored               servers.s" in result.stderr
    assert config.read_text() == original
    again = invoke(home, "uninstall", "-c", "vscode")
    assert again.exit_code == 0 and "nothing to change" in again.stderr


def test_any_other_file_can_be_named_with_config(home: Path) -> None:
    other = write(home / "elsewhere" / "agent.json", '{"servers": {"a": {"command": "x"}}}')
    script = write(home / "bin" / "mcp-gateway", GATEWAY_SCRIPT)
    result = invoke(home, "install", "--config", str(other), "--gateway", str(script), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(other.read_text())["servers"]["a"]["command"] == str(script)
    assert json.loads(result.stdout)["files"][0]["client"] == "mcp.json"


def test_config_with_all_or_a_missing_file_is_a_usage_error(home: Path) -> None:
    other = write(home / "x.json", "{}")
    assert invoke(home, "install", "--config", str(other), "--all").exit_code == 2
    missing = invoke(home, "install", "--config", str(home / "none.json"))
    assert missing.exit_code == 2 and "none.json: no such file" in missing.stderr


def test_no_config_files_is_not_an_error(home: Path) -> None:
    result = invoke(home, "uninstall", "--client", "windsurf")
    assert result.exit_code == 0
    assert "No config files found; looked for: " in result.stderr
    assert "mcp_config.json" in result.stderr


def test_help_lists_every_client_name() -> None:
    result = CliRunner().invoke(app, ["install", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "[cursor|claude-desktop|claude-code|vscode|windsurf|gemini|codex]" in result.stdout
    for option in ("--client", "--all", "--config", "--project", "--gateway", "--dry-run", "--json"):
        assert option in result.stdout
