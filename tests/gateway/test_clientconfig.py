from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gateway import jsonc
from gateway.clientconfig import parse_config, read_config, render_checked, write_config
from gateway.clients import CLIENTS, ClientName, ConfigFormat, ConfigLocation, Scope
from gateway.errors import ClientConfigError
from gateway.installer import plan_install, plan_uninstall
from gateway.installstate import InstallState

GATEWAY = "/opt/gw/bin/mcp-gateway"


def where(client: ClientName = ClientName.CURSOR, path: str = "/cfg/mcp.json") -> ConfigLocation:
    fmt = ConfigFormat.TOML if path.endswith(".toml") else ConfigFormat.JSON
    return ConfigLocation(CLIENTS[client], Scope.USER, Path(path), fmt)


def round_trip(text: str, client: ClientName = ClientName.CURSOR, path: str = "/cfg/mcp.json") -> tuple[str, str]:
    installed = plan_install(where(client, path), text, gateway=GATEWAY)
    restored = plan_uninstall(where(client, path), installed.after, state=InstallState(records=installed.added))
    return installed.after, restored.after


def jsonc_to_json(text: str) -> str:
    return json.dumps(jsonc.parse(text).to_python())


def test_jsonc_reads_comments_and_trailing_commas_like_the_editors_do() -> None:
    text = '// top\n{\n  /* block */ "a": [1, 2,], // end\n  "b": {"c": "//not a comment",},\n}\n'
    assert jsonc.parse(text).to_python() == {"a": [1, 2], "b": {"c": "//not a comment"}}


def test_jsonc_errors_say_line_and_column() -> None:
    with pytest.raises(jsonc.JsoncError) as caught:
        jsonc.parse('{\n  "a": 1\n  "b": 2\n}')
    assert (caught.value.line, caught.value.column) == (3, 3)
    assert "comma" in caught.value.message


def test_jsonc_keeps_the_last_of_repeated_keys_and_reports_them() -> None:
    node = jsonc.parse('{"a": 1, "a": 2}')
    assert isinstance(node, jsonc.ObjectNode)
    assert node.to_python() == {"a": 2}
    assert node.duplicates == ("a",)


def test_jsonc_agrees_with_the_json_module_on_plain_json() -> None:
    text = json.dumps({"s": 'é\u2028"\\', "n": [-1, 2.5e3, 0, True, None], "o": {}}, indent=3)
    assert jsonc.parse(text).to_python() == json.loads(text)


def test_an_unparseable_file_is_an_error_naming_the_file_the_line_and_what_to_do() -> None:
    with pytest.raises(ClientConfigError) as caught:
        parse_config(where(), '{\n  "mcpServers": {\n    "a": {"command": "x"}\n    "b": {}\n  }\n}\n')
    message = str(caught.value)
    assert message.startswith("/cfg/mcp.json:4:5: not valid JSON")
    assert "was not changed" in message


def test_a_file_whose_top_level_is_not_an_object_is_refused() -> None:
    with pytest.raises(ClientConfigError, match="top level is not a JSON object"):
        parse_config(where(), "[1, 2]")


def test_a_server_table_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ClientConfigError, match="mcpServers is not an object of servers"):
        parse_config(where(), '{"mcpServers": []}').tables()


def test_a_server_named_twice_is_refused_because_the_client_reads_only_the_last() -> None:
    text = '{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}'
    with pytest.raises(ClientConfigError, match="'a' appears twice in mcpServers"):
        plan_install(where(), text, gateway=GATEWAY)


def test_an_empty_file_has_no_servers_and_is_left_alone() -> None:
    installed = plan_install(where(), "", gateway=GATEWAY)
    assert installed.entries == () and not installed.changed


def test_byte_order_mark_and_crlf_line_endings_survive_install_and_uninstall() -> None:
    lines = [
        "{",
        '  "mcpServers": {',
        '    "a": {',
        '      "url": "https://x/mcp",',
        '      "k": 1',
        "    }",
        "  }",
        "}",
        "",
    ]
    text = "\ufeff" + "\r\n".join(lines)
    after, restored = round_trip(text)
    assert after.startswith("\ufeff{\r\n")
    assert "\n" not in after.replace("\r\n", "")
    assert restored == text


@pytest.mark.parametrize(
    "entry",
    [
        '{"url": "https://x/mcp"}',
        '{ "url": "https://x/mcp", }',
        '{\n      "url": "https://x/mcp"\n    }',
        '{\n      "a": 1,\n      "url": "https://x/mcp" // the url\n    }',
        '{\n      "url": "https://x/mcp",\n      "headers": {"A": "b"},\n    }',
        '{"a": 1, /* c */ "url": "https://x/mcp", "b": [1]}',
    ],
)
def test_member_edits_keep_valid_json_in_every_layout(entry: str) -> None:
    text = '{\n  "mcpServers": {\n    "s": ' + entry + "\n  }\n}\n"
    after, restored = round_trip(text)
    server = json.loads(jsonc_to_json(after))["mcpServers"]["s"]
    assert server["command"] == GATEWAY
    assert "url" not in server
    assert restored == text


def test_toml_with_dotted_keys_and_inline_tables_is_edited_in_place() -> None:
    text = 'mcp_servers.a.command = "x"\nmcp_servers.a.args = ["1"]\n\n[other]\nmcp_servers = { b = 1 }\n'
    after, restored = round_trip(text, ClientName.CODEX, "/cfg/config.toml")
    assert parse_config(where(ClientName.CODEX, "/c.toml"), after).data()["mcp_servers"] == {
        "a": {"command": GATEWAY, "args": ["wrap", "--name", "a", "--", "x", "1"]}
    }
    assert restored == text
    # inside inline tables tomlkit re-spaces the edited table: the values come back, not the spacing
    inline = 'mcp_servers = { a = { command = "x", env = { K = "v" } } }\n'
    after, restored = round_trip(inline, ClientName.CODEX, "/cfg/config.toml")
    toml = where(ClientName.CODEX, "/c.toml")
    assert json.loads(json.dumps(parse_config(toml, after).data()))["mcp_servers"]["a"]["command"] == GATEWAY
    assert parse_config(toml, restored).data() == parse_config(toml, inline).data()


def test_invalid_toml_is_refused_with_the_position_of_the_problem() -> None:
    with pytest.raises(ClientConfigError, match=r"/cfg/config.toml: not valid TOML: .*line 2"):
        parse_config(where(ClientName.CODEX, "/cfg/config.toml"), '[mcp_servers.a]\ncommand = "x\n')


def test_toml_dates_elsewhere_in_the_file_do_not_stop_the_edit() -> None:
    text = 'updated = 2026-01-02T03:04:05Z\n[mcp_servers.a]\ncommand = "x"\n'
    _, restored = round_trip(text, ClientName.CODEX, "/cfg/config.toml")
    assert restored == text


def test_a_rendering_that_changes_anything_else_is_never_returned() -> None:
    document = parse_config(where(), '{"mcpServers": {"a": {"command": "x"}}, "keep": 1}')
    before = document.data()
    document.set_entry(("mcpServers",), "a", {"command": "y"})
    with pytest.raises(ClientConfigError, match="internal error"):
        render_checked(document, before, {(("mcpServers",), "a"): {"command": "z"}})


def test_writing_leaves_a_backup_with_the_same_permissions(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text("old")
    path.chmod(0o600)
    backup = write_config(path, "new", "old")
    assert path.read_text() == "new"
    assert backup.read_text() == "old"
    assert backup.name.startswith("mcp.json.mcp-gateway-") and backup.suffix == ".bak"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert write_config(path, "newer", "new") != backup  # a second write in the same second gets its own backup


def test_writing_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    write_config(link, "new", "old")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_a_file_that_changed_since_it_was_read_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text("saved by the editor meanwhile")
    with pytest.raises(ClientConfigError, match="changed while mcp-gateway was editing it"):
        write_config(path, "new", "what we read")
    assert path.read_text() == "saved by the editor meanwhile"
    assert list(tmp_path.iterdir()) == [path]


def test_a_failed_rename_is_an_error_and_leaves_the_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text("old")

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ClientConfigError, match="cannot be written \\(Permission denied\\); the file was not changed"):
        write_config(path, "new", "old")
    assert path.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_reading_a_missing_file_gives_nothing_and_a_non_utf8_file_an_error(tmp_path: Path) -> None:
    assert read_config(where(path=str(tmp_path / "none.json"))) is None
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ClientConfigError, match="is not UTF-8"):
        read_config(where(path=str(bad)))
