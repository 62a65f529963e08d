from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clientconfig import list_entries, read_config
from gateway.clients import (
    CLIENTS,
    ClientName,
    ConfigFormat,
    Environment,
    Scope,
    System,
    all_locations,
    config_locations,
    spec_for_file,
)
from gateway.wrapping import is_wrapped


def machine(system: System) -> Environment:
    home = Path("/h")
    return Environment(
        system=system,
        home=home,
        project=Path("/p"),
        appdata=Path("/h/AppData/Roaming"),
        xdg_config_home=Path("/h/.config"),
        xdg_state_home=Path("/h/.local/state"),
        codex_home=Path("/h/.codex"),
    )


def paths(name: ClientName, system: System) -> list[tuple[str, str]]:
    return [(loc.scope.value, loc.path.as_posix()) for loc in config_locations(name, machine(system))]


def test_claude_desktop_config_lives_in_each_systems_application_data_folder() -> None:
    assert paths(ClientName.CLAUDE_DESKTOP, "darwin") == [
        ("user", "/h/Library/Application Support/Claude/claude_desktop_config.json")
    ]
    assert paths(ClientName.CLAUDE_DESKTOP, "windows") == [
        ("user", "/h/AppData/Roaming/Claude/claude_desktop_config.json")
    ]
    assert paths(ClientName.CLAUDE_DESKTOP, "linux") == [("user", "/h/.config/Claude/claude_desktop_config.json")]


@pytest.mark.parametrize("system", ["linux", "darwin", "windows"])
def test_home_folder_clients_use_the_same_paths_on_every_system(system: System) -> None:
    assert paths(ClientName.CURSOR, system) == [("user", "/h/.cursor/mcp.json"), ("project", "/p/.cursor/mcp.json")]
    assert paths(ClientName.CLAUDE_CODE, system) == [("user", "/h/.claude.json"), ("project", "/p/.mcp.json")]
    assert paths(ClientName.WINDSURF, system) == [("user", "/h/.codeium/windsurf/mcp_config.json")]
    assert paths(ClientName.GEMINI, system) == [
        ("user", "/h/.gemini/settings.json"),
        ("project", "/p/.gemini/settings.json"),
    ]
    assert paths(ClientName.CODEX, system) == [("user", "/h/.codex/config.toml"), ("project", "/p/.codex/config.toml")]


def test_vscode_reads_the_workspace_file_and_the_user_profiles_mcp_json_and_settings() -> None:
    assert paths(ClientName.VSCODE, "darwin") == [
        ("user", "/h/Library/Application Support/Code/User/mcp.json"),
        ("user", "/h/Library/Application Support/Code/User/settings.json"),
        ("user", "/h/Library/Application Support/Code - Insiders/User/mcp.json"),
        ("user", "/h/Library/Application Support/Code - Insiders/User/settings.json"),
        ("project", "/p/.vscode/mcp.json"),
    ]
    assert ("user", "/h/AppData/Roaming/Code/User/mcp.json") in paths(ClientName.VSCODE, "windows")
    assert ("user", "/h/.config/Code/User/settings.json") in paths(ClientName.VSCODE, "linux")


def test_each_client_names_where_its_servers_live() -> None:
    assert CLIENTS[ClientName.VSCODE].tables[:2] == (("servers",), ("mcp", "servers"))
    assert CLIENTS[ClientName.CODEX].tables == (("mcp_servers",),)
    assert ("projects", "*", "mcpServers") in CLIENTS[ClientName.CLAUDE_CODE].tables
    assert CLIENTS[ClientName.CLAUDE_DESKTOP].remote is None  # stdio only: a URL there is not a server
    windsurf = CLIENTS[ClientName.WINDSURF].remote
    assert windsurf is not None and windsurf.http_url_keys[0] == "serverUrl"
    codex = CLIENTS[ClientName.CODEX].remote
    assert codex is not None and codex.headers_key == "http_headers"
    assert {loc.format for loc in config_locations(ClientName.CODEX, machine("linux"))} == {ConfigFormat.TOML}


def test_environment_follows_the_variables_that_move_config_folders(tmp_path: Path) -> None:
    env = Environment.from_os(
        project=tmp_path,
        environ={
            "HOME": "/home/ada",
            "APPDATA": "/w/Roaming",
            "XDG_CONFIG_HOME": "/x/config",
            "XDG_STATE_HOME": "/x/state",
            "CODEX_HOME": "/c",
        },
    )
    assert env.home == Path("/home/ada")
    assert env.codex_home == Path("/c")
    assert env.state_dir == Path("/x/state/mcp-gateway")
    assert env.project == tmp_path
    defaults = Environment.from_os(project=tmp_path, environ={"HOME": "/home/ada"})
    assert defaults.xdg_config_home == Path("/home/ada/.config")
    assert defaults.codex_home == Path("/home/ada/.codex")
    assert defaults.appdata == Path("/home/ada/AppData/Roaming")


def test_a_file_named_on_the_command_line_takes_the_format_of_its_client_or_of_its_name() -> None:
    assert spec_for_file(Path("x.toml")).format is ConfigFormat.TOML
    guessed = spec_for_file(Path("servers.json"))
    assert guessed.scope is Scope.FILE
    assert guessed.path.is_absolute()
    assert ("servers",) in guessed.client.tables and ("mcpServers",) in guessed.client.tables
    assert spec_for_file(Path("x.json"), ClientName.WINDSURF).client is CLIENTS[ClientName.WINDSURF]


def test_a_doctor_can_list_every_clients_servers_wrapped_or_not(tmp_path: Path) -> None:
    env = Environment.from_os(project=tmp_path / "proj", environ={"HOME": str(tmp_path)})
    (tmp_path / ".cursor").mkdir()
    (tmp_path / ".cursor" / "mcp.json").write_text(
        '{"mcpServers": {"a": {"command": "x"}, "b": {"command": "/bin/mcp-gateway", "args": ["wrap", "--name", "b",'
        ' "--", "y"]}}}'
    )
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text('[mcp_servers.c]\ncommand = "z"\n')

    found = {}
    for location in all_locations(env):
        document = read_config(location)
        if document is not None:
            found[location.client.name] = [(entry.where, is_wrapped(entry.value)) for entry in list_entries(document)]

    assert found == {"cursor": [("mcpServers.a", False), ("mcpServers.b", True)], "codex": [("mcp_servers.c", False)]}
