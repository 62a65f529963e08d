from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from pydantic import JsonValue

from gateway.clientconfig import parse_config
from gateway.clients import CLIENTS, ClientName, ConfigFormat, ConfigLocation, Scope
from gateway.errors import ClientConfigError
from gateway.installer import Action, FilePlan, find_gateway, plan_install, plan_uninstall, run
from gateway.installstate import InstallState, load_state
from gateway.wrapping import Invocation, Status, parse_invocation, unwrap_entry, wrap_entry

GATEWAY = "/opt/gw/bin/mcp-gateway"
CURSOR = CLIENTS[ClientName.CURSOR]


def where(client: ClientName = ClientName.CURSOR, path: Path | str = "/cfg/mcp.json") -> ConfigLocation:
    fmt = ConfigFormat.TOML if str(path).endswith(".toml") else ConfigFormat.JSON
    return ConfigLocation(CLIENTS[client], Scope.USER, Path(path), fmt)


def config(servers: dict[str, JsonValue], **other: JsonValue) -> str:
    return json.dumps({"mcpServers": servers, **other}, indent=2) + "\n"


def servers(text: str, location: ConfigLocation | None = None) -> dict[str, JsonValue]:
    table = parse_config(location or where(), text).data()["mcpServers"]
    assert isinstance(table, dict)
    return table


def statuses(plan: FilePlan) -> dict[str, Status]:
    return {entry.name: entry.status for entry in plan.entries}


def test_a_stdio_server_becomes_the_gateway_wrapping_it_with_env_and_unknown_keys_kept() -> None:
    entry: JsonValue = {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}, "x-note": [1, {"a": None}]}
    outcome = wrap_entry(CURSOR, "time", entry, GATEWAY)
    assert outcome.status is Status.WRAPPED
    assert outcome.value == {
        "command": GATEWAY,
        "args": ["wrap", "--name", "time", "--", "uvx", "mcp-server-time"],
        "env": {"TZ": "UTC"},
        "x-note": [1, {"a": None}],
    }
    assert list(outcome.value) == ["command", "args", "env", "x-note"]


def test_a_server_without_args_gets_them_after_its_command_and_loses_them_again_on_uninstall() -> None:
    text = config({"a": {"env": {}, "command": "srv", "disabled": True}})
    installed = plan_install(where(), text, gateway=GATEWAY)
    wrapped = servers(installed.after)["a"]
    assert isinstance(wrapped, dict)
    assert list(wrapped) == ["env", "command", "args", "disabled"]
    restored = plan_uninstall(where(), installed.after, state=InstallState())  # even without the record
    assert restored.after == text


def test_entries_already_behind_the_gateway_are_left_alone() -> None:
    wrapped: JsonValue = {"command": "/other/mcp-gateway", "args": ["wrap", "--name", "a", "--", "x"]}
    running: JsonValue = {"command": "C:\\tools\\mcp-gateway.exe", "args": ["run", "--mcp-json-path", "m.json"]}
    text = config({"a": wrapped, "b": running})
    installed = plan_install(where(), text, gateway=GATEWAY)
    assert statuses(installed) == {"a": Status.ALREADY, "b": Status.ALREADY}
    assert not installed.changed and installed.after == text


def test_a_remote_server_is_wrapped_with_its_url_and_headers_and_a_stdio_type() -> None:
    vscode = CLIENTS[ClientName.VSCODE]
    entry: JsonValue = {
        "type": "http",
        "url": "https://x.example/mcp",
        "headers": {"Authorization": "Bearer ${input:tok}"},
        "dev": {},
    }
    outcome = wrap_entry(vscode, "gh", entry, GATEWAY)
    assert outcome.value == {
        "type": "stdio",
        "command": GATEWAY,
        "args": [
            "wrap",
            "--name",
            "gh",
            "--url",
            "https://x.example/mcp",
            "--header",
            "Authorization: Bearer ${input:tok}",
        ],
        "dev": {},
    }
    assert any("process list" in warning for warning in outcome.warnings)


@pytest.mark.parametrize(
    ("client", "entry", "reason"),
    [
        (ClientName.CODEX, {"url": "https://x/mcp", "bearer_token_env_var": "T"}, "'bearer_token_env_var'"),
        (ClientName.CLAUDE_CODE, {"type": "http", "url": "https://x/mcp", "headersHelper": "h.sh"}, "'headersHelper'"),
        (ClientName.CLAUDE_DESKTOP, {"url": "https://x/mcp"}, "neither a command nor a URL"),
        (ClientName.VSCODE, {"type": "websocket", "url": "wss://x"}, "unknown transport"),
        (ClientName.CURSOR, {"command": "x", "args": "--flag"}, "not a list of strings"),
        (ClientName.CURSOR, {"command": ""}, "not a non-empty string"),
        (ClientName.CURSOR, ["not", "an", "object"], "not an object"),
    ],
)
def test_servers_the_gateway_cannot_carry_are_skipped_with_a_reason(
    client: ClientName, entry: JsonValue, reason: str
) -> None:
    outcome = wrap_entry(CLIENTS[client], "s", entry, GATEWAY)
    assert outcome.status is Status.SKIPPED
    assert outcome.value is None
    assert reason in outcome.reason


@pytest.mark.parametrize(
    ("client", "entry"),
    [
        (ClientName.VSCODE, {"type": "sse", "url": "https://x/events"}),
        (ClientName.CURSOR, {"url": "https://x/sse/"}),
        (ClientName.GEMINI, {"url": "https://x/events"}),
    ],
)
def test_legacy_sse_servers_are_wrapped_with_the_sse_remote_transport(
    client: ClientName, entry: dict[str, JsonValue]
) -> None:
    spec = CLIENTS[client]
    outcome = wrap_entry(spec, "s", entry, GATEWAY)
    assert outcome.value is not None
    assert outcome.value["args"] == ["wrap", "--name", "s", "--url", entry["url"], "--remote-transport", "sse"]
    back = unwrap_entry(spec, outcome.value)  # even without the record, it comes back as an SSE server
    assert back.value == entry


def test_gemini_http_url_and_windsurf_server_url_are_streamable_http_servers() -> None:
    gemini = wrap_entry(CLIENTS[ClientName.GEMINI], "g", {"httpUrl": "http://h/mcp", "timeout": 5}, GATEWAY)
    assert gemini.value == {"command": GATEWAY, "args": ["wrap", "--name", "g", "--url", "http://h/mcp"], "timeout": 5}
    windsurf = wrap_entry(CLIENTS[ClientName.WINDSURF], "w", {"serverUrl": "http://h/mcp"}, GATEWAY)
    assert windsurf.status is Status.WRAPPED


def test_an_env_that_sets_gateway_settings_is_reported() -> None:
    outcome = wrap_entry(CURSOR, "a", {"command": "x", "env": {"MCP_GATEWAY_DISABLE": "[]", "OK": "1"}}, GATEWAY)
    assert outcome.status is Status.WRAPPED
    assert outcome.warnings == (
        "its env sets MCP_GATEWAY_DISABLE, which the gateway reads as its own settings; review them",
    )


def test_the_wrapped_command_line_is_read_back_even_with_gateway_options_added_by_hand() -> None:
    assert parse_invocation(["wrap", "--name", "a", "--policy", "p.md", "--", "x", "--", "y"]) == Invocation(
        "a", command=("x", "--", "y"), extra=("--policy", "p.md")
    )
    assert parse_invocation(["wrap", "--name", "r", "--url", "u", "--header", "K: a: b"]) == Invocation(
        "r", url="u", headers=(("K", "a: b"),)
    )
    assert parse_invocation(["run", "--", "x"]) is None
    assert parse_invocation(["wrap", "--name", "a", "--"]) is None
    assert parse_invocation(["wrap", "--header", "no-colon", "--url", "u"]) is None
    assert parse_invocation("wrap") is None


def test_uninstall_after_the_user_edited_other_entries_restores_the_wrapped_ones_and_keeps_the_edits() -> None:
    text = config({"a": {"command": "x", "args": ["1"]}, "b": {"command": "y"}}, theme="dark")
    installed = plan_install(where(), text, gateway=GATEWAY)
    data = json.loads(installed.after)
    data["mcpServers"]["c"] = {"command": "new"}  # added by the user, never wrapped
    data["theme"] = "light"
    edited = json.dumps(data, indent=2) + "\n"

    restored = plan_uninstall(where(), edited, state=InstallState(records=installed.added))

    assert json.loads(restored.after) == {
        "mcpServers": {"a": {"command": "x", "args": ["1"]}, "b": {"command": "y"}, "c": {"command": "new"}},
        "theme": "light",
    }
    assert statuses(restored) == {"a": Status.RESTORED, "b": Status.RESTORED}


def test_hand_edits_to_a_wrapped_entry_are_kept_when_it_is_restored() -> None:
    text = config({"a": {"command": "x", "args": ["1"], "env": {"K": "old"}}})
    installed = plan_install(where(), text, gateway=GATEWAY)
    data = json.loads(installed.after)
    data["mcpServers"]["a"]["env"]["K"] = "new"
    data["mcpServers"]["a"]["args"][-1] = "2"  # the user changed the server's own argument
    edited = json.dumps(data, indent=2)

    restored = plan_uninstall(where(), edited, state=InstallState(records=installed.added))

    assert statuses(restored) == {"a": Status.RESTORED_WITH_EDITS}
    assert servers(restored.after)["a"] == {"command": "x", "args": ["2"], "env": {"K": "new"}}


def test_an_entry_the_user_took_out_of_the_gateway_is_left_alone_and_reported() -> None:
    text = config({"a": {"command": "x"}})
    installed = plan_install(where(), text, gateway=GATEWAY)
    data = json.loads(installed.after)
    data["mcpServers"]["a"] = {"command": "something-else"}
    edited = json.dumps(data)

    restored = plan_uninstall(where(), edited, state=InstallState(records=installed.added))

    assert restored.after == edited
    [entry] = restored.entries
    assert entry.status is Status.LEFT and entry.is_finding
    assert "changed by hand" in entry.reason
    assert [r.name for r in restored.removed] == ["a"]  # its record is of no further use


def test_an_entry_the_user_put_back_by_hand_is_not_reported() -> None:
    text = config({"a": {"command": "x"}})
    installed = plan_install(where(), text, gateway=GATEWAY)
    restored = plan_uninstall(where(), text, state=InstallState(records=installed.added))
    assert restored.entries == () and not restored.changed
    assert [r.name for r in restored.removed] == ["a"]


def test_a_remote_entry_edited_after_install_comes_back_with_its_own_key_names() -> None:
    windsurf = where(ClientName.WINDSURF)
    text = config({"w": {"serverUrl": "https://a/mcp", "headers": {"K": "v"}, "disabled": False}})
    installed = plan_install(windsurf, text, gateway=GATEWAY)
    data = json.loads(installed.after)
    data["mcpServers"]["w"]["disabled"] = True
    restored = plan_uninstall(windsurf, json.dumps(data), state=InstallState(records=installed.added))
    assert servers(restored.after, windsurf)["w"] == {
        "serverUrl": "https://a/mcp",
        "headers": {"K": "v"},
        "disabled": True,
    }


def test_a_renamed_wrapped_entry_is_found_by_the_name_on_its_command_line() -> None:
    text = config({"a": {"command": "x", "args": []}})
    installed = plan_install(where(), text, gateway=GATEWAY)
    renamed = installed.after.replace('"a": {', '"b": {', 1)
    restored = plan_uninstall(where(), renamed, state=InstallState(records=installed.added))
    assert servers(restored.after) == {"b": {"command": "x", "args": []}}
    assert statuses(restored) == {"b": Status.RESTORED}


def test_records_of_entries_the_user_deleted_are_dropped() -> None:
    text = config({"a": {"command": "x"}, "b": {"command": "y"}})
    installed = plan_install(where(), text, gateway=GATEWAY)
    without_b = json.dumps({"mcpServers": {"a": json.loads(installed.after)["mcpServers"]["a"]}})
    restored = plan_uninstall(where(), without_b, state=InstallState(records=installed.added))
    assert sorted(r.name for r in restored.removed) == ["a", "b"]
    assert servers(restored.after) == {"a": {"command": "x"}}


def test_a_wrapped_url_in_a_stdio_only_client_is_left_alone() -> None:
    entry: JsonValue = {"command": GATEWAY, "args": ["wrap", "--name", "r", "--url", "https://x/mcp"]}
    outcome = unwrap_entry(CLIENTS[ClientName.CLAUDE_DESKTOP], entry)
    assert outcome.status is Status.LEFT


def test_a_broken_file_stops_the_whole_command_before_anything_is_written(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(config({"a": {"command": "x"}}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"mcpServers": {"a": {"command": "x",}')
    state = tmp_path / "state" / "installs.json"

    with pytest.raises(ClientConfigError, match=r"broken\.json:1:\d+: not valid JSON"):
        run(Action.INSTALL, [where(path=good), where(path=broken)], state_file=state, gateway=GATEWAY)

    assert good.read_text() == config({"a": {"command": "x"}})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "state") == ["broken.json", "good.json"]
    assert load_state(state).records == ()  # beside it, the state folder holds only the lock of one run at a time
    assert sorted(p.name for p in state.parent.iterdir()) == ["installs.json.lock"]


def test_a_file_that_cannot_be_written_keeps_no_record_and_no_backup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = tmp_path / "first.json"
    first.write_text(config({"a": {"command": "x"}}))
    locked = tmp_path / "locked.json"  # the filesystem refuses to replace it (immutable, read-only mount)
    locked.write_text(config({"b": {"command": "y"}}))
    state = tmp_path / "state" / "installs.json"
    replace = os.replace

    def refuse_locked(source: str, target: str | Path) -> None:
        if Path(target) == locked:
            raise PermissionError(1, "Operation not permitted")
        replace(source, target)

    monkeypatch.setattr("gateway.clientconfig.os.replace", refuse_locked)
    with pytest.raises(ClientConfigError, match=r"locked\.json: cannot be written.*Already changed: .*first\.json"):
        run(Action.INSTALL, [where(path=first), where(path=locked)], state_file=state, gateway=GATEWAY)

    assert locked.read_text() == config({"b": {"command": "y"}})
    assert [r.name for r in load_state(state).records] == ["a"]  # the written file's record only
    assert not list(tmp_path.glob("locked.json.*"))  # no backup of a file left as it was
    assert len(list(tmp_path.glob("first.json.mcp-gateway-*.bak"))) == 1


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(config({"a": {"command": "x"}}))
    [result] = run(Action.INSTALL, [where(path=path)], state_file=tmp_path / "s.json", gateway=GATEWAY, dry_run=True)
    assert result.plan.changed and result.backup is None
    assert '+      "command": "/opt/gw/bin/mcp-gateway",' in result.plan.diff()
    assert path.read_text() == config({"a": {"command": "x"}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcp.json"]


def test_install_then_uninstall_on_disk_gives_back_the_file_and_clears_the_record(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    original = '{\n  // mine\n  "mcpServers": {"a": {"command": "x", "args": ["y"]}}\n}\n'
    path.write_text(original)
    state = tmp_path / "state" / "installs.json"
    locations = [where(path=path), where(path=path)]  # the same file twice is edited once

    [installed] = run(Action.INSTALL, locations, state_file=state, gateway=GATEWAY)
    assert installed.backup is not None and installed.backup.read_text() == original
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert [r.name for r in load_state(state).records] == ["a"]

    [restored] = run(Action.UNINSTALL, locations, state_file=state)
    assert restored.backup is not None
    assert path.read_text() == original
    assert load_state(state).records == ()


def test_a_damaged_install_record_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    state = tmp_path / "installs.json"
    state.write_text('{"version": 7}')
    with pytest.raises(ClientConfigError, match=r"install record is damaged.*Move it away"):
        load_state(state)


def test_the_gateway_executable_is_an_absolute_path(tmp_path: Path) -> None:
    assert Path(find_gateway()).is_absolute()
    assert Path(find_gateway()).parent == Path(sys.executable).parent
    script = tmp_path / "mcp-gateway"
    script.write_text("#!/bin/sh\n")
    assert find_gateway(str(script)) == str(script)
    with pytest.raises(ClientConfigError, match="--gateway /nope: no such file"):
        find_gateway("/nope")


def test_uninstall_without_a_record_leaves_an_entry_wrapped_by_hand_with_options_of_its_own() -> None:
    own: JsonValue = {"command": "mcp-gateway", "args": ["wrap", "--name", "m", "--policies", "strict", "--", "npx"]}
    plain: JsonValue = {"command": GATEWAY, "args": ["wrap", "--name", "t", "--", "uvx", "mcp-server-time"]}
    restored = plan_uninstall(where(), config({"mine": own, "time": plain}), state=InstallState())
    assert servers(restored.after) == {"mine": own, "time": {"command": "uvx", "args": ["mcp-server-time"]}}
    assert statuses(restored) == {"mine": Status.LEFT, "time": Status.RESTORED_FROM_COMMAND}
    [left] = [entry for entry in restored.entries if entry.name == "mine"]
    assert "options of its own (--policies strict)" in left.reason


def test_a_gateway_under_another_name_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "mcp-gateway"
    script.write_text("#!/bin/sh\n")
    link = tmp_path / "mcpgw"
    link.symlink_to(script)
    # wrapped entries are known by the gateway's name: under another, a second install would wrap them again
    with pytest.raises(ClientConfigError, match=rf"not 'mcpgw'; for a link, give the path it points to \({script}\)"):
        find_gateway(str(link))


def test_a_read_only_config_and_a_lone_surrogate_are_refused_with_nothing_written(tmp_path: Path) -> None:
    state = tmp_path / "state" / "installs.json"
    read_only = tmp_path / "ro.json"
    read_only.write_text(config({"a": {"command": "x"}}))
    read_only.chmod(0o444)
    with pytest.raises(ClientConfigError, match=r"ro\.json: is read-only; nothing was written.*chmod u\+w"):
        run(Action.INSTALL, [where(path=read_only)], state_file=state, gateway=GATEWAY)
    assert read_only.read_text() == config({"a": {"command": "x"}})
    odd = tmp_path / "odd.json"
    odd.write_text('{"mcpServers": {"s": {"command": "x", "args": ["\\ud800"]}}}\n')
    with pytest.raises(ClientConfigError, match=r"odd\.json: an entry holds \\ud800, a lone surrogate"):
        run(Action.INSTALL, [where(path=odd)], state_file=state, gateway=GATEWAY)
    assert odd.read_text() == '{"mcpServers": {"s": {"command": "x", "args": ["\\ud800"]}}}\n'
    assert load_state(state).records == ()  # neither file kept a record


def test_an_uninstall_reading_the_file_as_another_client_keeps_the_records_of_tables_it_does_not_read() -> None:
    claude_code = where(ClientName.CLAUDE_CODE, "/home/u/.claude.json")
    text = json.dumps(
        {"mcpServers": {"a": {"command": "x"}}, "projects": {"/w": {"mcpServers": {"p": {"command": "y"}}}}}
    )
    installed = plan_install(claude_code, text, gateway=GATEWAY)
    as_cursor = plan_uninstall(
        where(path="/home/u/.claude.json"), installed.after, state=InstallState(records=installed.added)
    )
    assert [r.name for r in as_cursor.removed] == ["a"]  # the project entry, still wrapped, keeps its record


def test_a_second_install_waits_for_the_first_to_finish(tmp_path: Path) -> None:
    import fcntl
    import threading

    target = tmp_path / "mcp.json"
    target.write_text(config({"a": {"command": "x"}}))
    state = tmp_path / "state" / "installs.json"
    state.parent.mkdir()
    done = threading.Event()

    def install() -> None:
        run(Action.INSTALL, [where(path=target)], state_file=state, gateway=GATEWAY)
        done.set()

    with (tmp_path / "state" / "installs.json.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another install or uninstall at work
        worker = threading.Thread(target=install)
        worker.start()
        assert not done.wait(0.5)
        assert load_state(state).records == ()
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(10)
    assert done.is_set() and [r.name for r in load_state(state).records] == ["a"]


CODEX_LAYOUTS = [
    '[mcp_servers.s]\ncommand = "npx"\ncwd = "/w"\n\n# next\n[x]\ny = 1\n',
    '[mcp_servers.r]\nurl = "https://h/mcp"  # remote\nhttp_headers = { A = "b" }\n',
    '[mcp_servers.s]\ncommand = "npx"\n[mcp_servers.s.env]\nA = "1"\n',
    '# servers\r\n[mcp_servers.s]\r\ncommand = "npx"\r\nargs = ["-y", "srv"]   # pinned\r\n\r\n[other]\r\nk = true\r\n',
]


@pytest.mark.parametrize("text", CODEX_LAYOUTS)
def test_uninstall_gives_back_a_file_install_left_as_it_was_byte_for_byte(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(text.encode())
    state = tmp_path / "state" / "installs.json"
    location = where(ClientName.CODEX, path)
    [installed] = run(Action.INSTALL, [location], state_file=state, gateway=GATEWAY)
    assert installed.plan.changed
    run(Action.UNINSTALL, [location], state_file=state)
    assert path.read_bytes() == text.encode()
    assert load_state(state).records == () and load_state(state).files == ()


def test_a_file_edited_since_install_is_restored_entry_by_entry_keeping_the_edit(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(config({"a": {"command": "x"}}))
    state = tmp_path / "state" / "installs.json"
    run(Action.INSTALL, [where(path=path)], state_file=state, gateway=GATEWAY)
    edited = json.loads(path.read_text())
    edited["theme"] = "dark"  # the client saved a setting of its own meanwhile
    path.write_text(json.dumps(edited, indent=2) + "\n")
    run(Action.UNINSTALL, [where(path=path)], state_file=state)
    assert json.loads(path.read_text()) == {"mcpServers": {"a": {"command": "x"}}, "theme": "dark"}
