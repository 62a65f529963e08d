"""Round-trip properties of install/uninstall over generated configs (JSON and TOML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from gateway.clientconfig import parse_config, same_json
from gateway.clients import CLIENTS, ClientName, ConfigFormat, ConfigLocation, Scope
from gateway.installer import plan_install, plan_uninstall
from gateway.installstate import InstallState
from gateway.wrapping import Status, unwrap_entry, wrap_entry

GATEWAY = "/opt/gw/bin/mcp-gateway"
CURSOR = ConfigLocation(CLIENTS[ClientName.CURSOR], Scope.USER, Path("/cfg/mcp.json"), ConfigFormat.JSON)
CODEX = ConfigLocation(CLIENTS[ClientName.CODEX], Scope.USER, Path("/cfg/config.toml"), ConfigFormat.TOML)
RESERVED = {"command", "args", "url", "headers", "type", "serverUrl", "httpUrl"}
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
name = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=10)
scalar = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | text
)
json_value = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8
)
unknown_keys = st.dictionaries(name.filter(lambda k: k not in RESERVED), json_value, max_size=3)
command = name.filter(lambda c: "mcp-gateway" not in c.lower())


@st.composite
def stdio_entry(draw: st.DrawFn) -> dict[str, JsonValue]:
    entry: dict[str, JsonValue] = {"command": draw(command)}
    if draw(st.booleans()):
        entry["args"] = list[JsonValue](draw(st.lists(text, max_size=4)))
    if draw(st.booleans()):
        entry["env"] = dict[str, JsonValue](draw(st.dictionaries(name, text, max_size=3)))
    return shuffled(draw, {**draw(unknown_keys), **entry})


@st.composite
def remote_entry(draw: st.DrawFn) -> dict[str, JsonValue]:
    entry: dict[str, JsonValue] = {"url": "https://h.example/" + draw(st.from_regex(r"[a-z]{0,6}", fullmatch=True))}
    if draw(st.booleans()):
        entry["headers"] = dict[str, JsonValue](
            draw(st.dictionaries(name.filter(lambda k: ":" not in k), text, max_size=2))
        )
    return shuffled(draw, {**draw(unknown_keys), **entry})


def shuffled(draw: st.DrawFn, entry: dict[str, JsonValue]) -> dict[str, JsonValue]:
    keys = draw(st.permutations(list(entry)))
    return {key: entry[key] for key in keys}


entries = stdio_entry() | remote_entry() | json_value
documents = st.fixed_dictionaries(
    {"mcpServers": st.dictionaries(name, entries, max_size=5)},
    optional={"other": json_value, "theme": text},
)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    document = draw(documents)
    indent = draw(st.sampled_from([None, 2, 4, "\t"]))
    rendered = json.dumps(document, indent=indent, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        rendered = "// generated\n" + rendered
    if draw(st.booleans()):
        rendered = rendered.replace("\n", "\r\n")
    return rendered + draw(st.sampled_from(["", "\n"]))


def install(location: ConfigLocation, source: str) -> tuple[str, InstallState]:
    plan = plan_install(location, source, gateway=GATEWAY)
    return plan.after, InstallState(records=plan.added)


def uninstall(location: ConfigLocation, source: str, state: InstallState) -> str:
    return plan_uninstall(location, source, state=state).after


@PROPERTY
@given(json_texts())
def test_uninstall_of_install_gives_back_the_same_bytes(source: str) -> None:
    installed, state = install(CURSOR, source)
    assert uninstall(CURSOR, installed, state) == source


@PROPERTY
@given(json_texts())
def test_install_twice_is_install_once(source: str) -> None:
    once, _ = install(CURSOR, source)
    twice, state = install(CURSOR, once)
    assert twice == once
    assert state.records == ()


@PROPERTY
@given(json_texts())
def test_install_keeps_every_key_it_does_not_own(source: str) -> None:
    installed, state = install(CURSOR, source)
    before = parse_config(CURSOR, source).data()
    after = parse_config(CURSOR, installed).data()
    assert {k: v for k, v in before.items() if k != "mcpServers"} == {
        k: v for k, v in after.items() if k != "mcpServers"
    }
    wrapped = {record.name for record in state.records}
    assert isinstance(before["mcpServers"], dict) and isinstance(after["mcpServers"], dict)
    for server, value in before["mcpServers"].items():
        new = after["mcpServers"][server]
        if server not in wrapped:
            assert same_json(new, value)
            continue
        assert isinstance(value, dict) and isinstance(new, dict)
        assert new["command"] == GATEWAY
        assert {k: v for k, v in value.items() if k not in RESERVED} == {
            k: v for k, v in new.items() if k not in RESERVED
        }


@PROPERTY
@given(json_texts(), st.dictionaries(name.map(lambda n: "new-" + n), entries, max_size=2), json_value)
def test_uninstall_keeps_what_the_user_changed_elsewhere_after_install(
    source: str, added: dict[str, Any], other: JsonValue
) -> None:
    installed, state = install(CURSOR, source)
    edited = parse_config(CURSOR, installed).data()
    assert isinstance(edited["mcpServers"], dict)
    edited["mcpServers"].update(added)  # new servers the gateway never wrapped
    edited["other"] = other

    restored = parse_config(CURSOR, uninstall(CURSOR, json.dumps(edited, indent=2), state)).data()

    expected = parse_config(CURSOR, source).data()
    assert isinstance(expected["mcpServers"], dict)
    expected["mcpServers"].update(added)
    expected["other"] = other
    assert same_json(restored, expected)


@PROPERTY
@given(json_texts())
def test_without_the_record_uninstall_gives_back_every_server_from_its_command_line(source: str) -> None:
    installed, _ = install(CURSOR, source)
    restored = parse_config(CURSOR, uninstall(CURSOR, installed, InstallState())).data()
    expected = parse_config(CURSOR, source).data()
    assert isinstance(expected["mcpServers"], dict)
    for value in expected["mcpServers"].values():
        # what a command line cannot tell apart from absence: an empty list of args or of headers
        if isinstance(value, dict) and value.get("args") == [] and "command" in value:
            del value["args"]
        if isinstance(value, dict) and value.get("headers") == {} and "url" in value:
            del value["headers"]
    assert same_json(restored, expected)


@st.composite
def toml_texts(draw: st.DrawFn) -> str:
    toml_scalar = st.booleans() | st.integers(-(2**31), 2**31) | text
    servers = {}
    for server in draw(st.lists(name, max_size=4, unique=True)):
        entry: dict[str, Any] = {"command": draw(command)}
        if draw(st.booleans()):
            entry["args"] = draw(st.lists(text, max_size=3))
        if draw(st.booleans()):
            entry["env"] = draw(st.dictionaries(name, text, min_size=1, max_size=2))
        entry.update(draw(st.dictionaries(name.filter(lambda k: k not in RESERVED), toml_scalar, max_size=2)))
        servers[server] = shuffled(draw, entry)
    document = {"model": draw(text), "mcp_servers": servers}
    return tomlkit.dumps(document)


@PROPERTY
@given(toml_texts())
def test_codex_toml_round_trips_through_install_and_uninstall(source: str) -> None:
    installed, state = install(CODEX, source)
    assert install(CODEX, installed)[0] == installed
    restored = uninstall(CODEX, installed, state)
    assert same_json(parse_config(CODEX, restored).data(), parse_config(CODEX, source).data())
    assert restored == source


@PROPERTY
@given(name, stdio_entry() | remote_entry())
def test_an_entry_comes_back_from_its_wrapped_command_line_alone(server: str, entry: dict[str, JsonValue]) -> None:
    cursor = CLIENTS[ClientName.CURSOR]
    wrapped = wrap_entry(cursor, server, entry, GATEWAY)
    assert wrapped.status is Status.WRAPPED and wrapped.value is not None
    back = unwrap_entry(cursor, wrapped.value)
    assert back.status is Status.RESTORED_FROM_COMMAND and back.value is not None
    expected = {k: v for k, v in entry.items() if not (k in ("args", "headers") and not v)}
    assert same_json(back.value, expected)
