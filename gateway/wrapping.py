"""Turning one server entry into the gateway wrapping it, and back. Pure functions over parsed values.

A stdio entry keeps every key; only ``command`` and ``args`` change::

    {"command": "uvx", "args": ["mcp-server-time"], "env": {...}}
    {"command": "/abs/mcp-gateway", "args": ["wrap", "--name", "time", "--", "uvx", "mcp-server-time"], "env": {...}}

A remote entry becomes a stdio entry at the place of its URL key; its URL and headers move into
``wrap --url URL [--remote-transport sse] --header 'K: V'``, a ``type`` key becomes ``"stdio"``, and
every other key is kept.

The wrapped command line alone is enough to get the server back (`unwrap_entry` without a record);
with the record that ``install`` keeps, the original comes back exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import JsonValue

from .clients import ClientSpec, RemoteStyle
from .configdoc import EntryValue, same_json

__all__ = [
    "GATEWAY_ENV_PREFIX",
    "Invocation",
    "Status",
    "UnwrapOutcome",
    "WrapOutcome",
    "is_gateway_command",
    "is_wrapped",
    "parse_invocation",
    "remote_target",
    "unwrap_entry",
    "wrap_entry",
    "wrapped_server",
]

GATEWAY_ENV_PREFIX = "MCP_GATEWAY_"

_GATEWAY_NAMES = frozenset({"mcp-gateway", "mcp-gateway.exe", "mcp-gateway.cmd"})
_HTTP_TYPES = frozenset({"http", "streamable-http", "streamablehttp", "streamable_http"})


class Status(StrEnum):
    WRAPPED = "wrapped"
    ALREADY = "already-wrapped"
    SKIPPED = "skipped"
    """Not wrapped: the server still runs without the gateway (a finding)."""
    RESTORED = "restored"
    RESTORED_WITH_EDITS = "restored-with-edits"
    RESTORED_FROM_COMMAND = "restored-from-command"
    LEFT = "left-wrapped"
    """Not unwrapped: the entry was changed in a way we cannot undo safely (a finding)."""
    NOT_WRAPPED = "not-wrapped"


@dataclass(frozen=True)
class WrapOutcome:
    status: Status
    value: EntryValue | None = None
    reason: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnwrapOutcome:
    status: Status
    value: EntryValue | None = None
    reason: str = ""
    exact: bool = False
    """True when `value` is the recorded original, so its recorded source text may be used."""


@dataclass(frozen=True)
class Invocation:
    """What a wrapped entry's ``args`` say: ``wrap --name NAME (-- CMD ARGS... | --url URL --header H...)``."""

    name: str | None
    command: tuple[str, ...] = ()
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    transport: Literal["http", "sse"] = "http"
    extra: tuple[str, ...] = ()  # gateway options install never writes (added by hand, e.g. --policies DIR)


def is_gateway_command(command: object) -> bool:
    if not isinstance(command, str):
        return False
    return command.replace("\\", "/").rsplit("/", 1)[-1].lower() in _GATEWAY_NAMES


def is_wrapped(entry: JsonValue) -> bool:
    """True when the entry runs its server through ``mcp-gateway wrap`` (what a ``doctor`` reports)."""
    return (
        isinstance(entry, dict)
        and is_gateway_command(entry.get("command"))
        and parse_invocation(entry.get("args")) is not None
    )


def wrapped_server(entry: Mapping[str, JsonValue]) -> dict[str, JsonValue] | None:
    """A wrapped entry (``wrap ... -- CMD`` or ``wrap --url URL``) as the plain entry of the server it wraps,
    its env, cwd and disabled flag kept; None for an entry that is no wrap command line."""
    invocation = parse_invocation(entry.get("args")) if is_gateway_command(entry.get("command")) else None
    if invocation is None:
        return None
    kept: dict[str, JsonValue] = {key: value for key, value in entry.items() if key in ("env", "cwd", "disabled")}
    if invocation.url is not None:
        return {**kept, "url": invocation.url, "type": invocation.transport, "headers": dict(invocation.headers)}
    return {**kept, "command": invocation.command[0], "args": list(invocation.command[1:])}


def parse_invocation(args: object) -> Invocation | None:
    """Read a ``wrap`` command line; None if it is not one this module wrote or could have written."""
    if not isinstance(args, list) or not args or args[0] != "wrap" or not all(isinstance(a, str) for a in args):
        return None
    words: list[str] = [str(a) for a in args[1:]]
    name: str | None = None
    url: str | None = None
    headers: list[tuple[str, str]] = []
    transport: Literal["http", "sse"] = "http"
    extra: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            command = tuple(words[i + 1 :])
            return Invocation(name, command=command, extra=tuple(extra)) if command and url is None else None
        value = words[i + 1] if i + 1 < len(words) else None
        if word in ("--name", "--url", "--header", "--remote-transport") and value is None:
            return None
        if word == "--name":
            name = value
        elif word == "--url":
            url = value
        elif word == "--remote-transport":
            if value not in ("http", "sse"):
                return None
            transport = "sse" if value == "sse" else "http"
        elif word == "--header":
            key, sep, header_value = (value or "").partition(":")
            if not sep:
                return None
            headers.append((key, header_value.removeprefix(" ")))  # exactly what wrap_entry wrote
        else:
            extra.append(word)  # a gateway option added by hand (e.g. --policy P): it goes with the gateway
            i += 1
            continue
        i += 2
    if url is None:
        return None
    return Invocation(name, url=url, headers=tuple(headers), transport=transport, extra=tuple(extra))


def wrap_entry(spec: ClientSpec, name: str, entry: JsonValue, gateway: str) -> WrapOutcome:
    """The entry with the gateway wrapping its server, or why it is left as it is."""
    if not isinstance(entry, dict):
        return WrapOutcome(Status.SKIPPED, reason="not an object; not a server entry this tool understands")
    if "command" in entry:
        return _wrap_stdio(name, entry, gateway)
    if spec.remote is not None and _url_key(spec.remote, entry) is not None:
        return _wrap_remote(spec.remote, name, entry, gateway)
    return WrapOutcome(Status.SKIPPED, reason=f"neither a command nor a URL {spec.title} connects to; left as it is")


def _wrap_stdio(name: str, entry: EntryValue, gateway: str) -> WrapOutcome:
    command, args = entry["command"], entry.get("args", [])
    if is_gateway_command(command):
        if isinstance(args, list) and args[:1] == ["wrap"]:
            return WrapOutcome(Status.ALREADY)
        return WrapOutcome(Status.ALREADY, reason="already runs mcp-gateway")
    if not isinstance(command, str) or not command:
        return WrapOutcome(Status.SKIPPED, reason="'command' is not a non-empty string")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return WrapOutcome(Status.SKIPPED, reason="'args' is not a list of strings")
    wrapped_args: list[JsonValue] = ["wrap", "--name", name, "--", command, *args]
    value: EntryValue = {}
    for key, item in entry.items():
        if key == "command":
            value["command"] = gateway
            value["args"] = wrapped_args
        elif key != "args":
            value[key] = item
    return WrapOutcome(Status.WRAPPED, value, warnings=_env_warnings(entry))


def _wrap_remote(remote: RemoteStyle, name: str, entry: EntryValue, gateway: str) -> WrapOutcome:
    url_key = _url_key(remote, entry)
    assert url_key is not None
    url = entry[url_key]
    blocked = [key for key in remote.unsupported_keys if key in entry]
    if blocked:
        return WrapOutcome(
            Status.SKIPPED, reason=f"uses {blocked[0]!r}, which the gateway cannot pass on; left unwrapped"
        )
    transport = _transport(remote, entry, url_key)
    if transport is None:
        return WrapOutcome(Status.SKIPPED, reason=f"unknown transport type {entry.get(remote.type_key or '')!r}")
    headers = entry.get(remote.headers_key, {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return WrapOutcome(Status.SKIPPED, reason=f"'{remote.headers_key}' is not an object of strings")
    args: list[JsonValue] = ["wrap", "--name", name, "--url", str(url)]
    if transport == "sse":
        args += ["--remote-transport", "sse"]
    for key, header in headers.items():
        args += ["--header", f"{key}: {header}"]
    url_keys = {*remote.http_url_keys, *remote.sse_url_keys}
    value: EntryValue = {}
    for key, item in entry.items():
        if key == url_key:
            value["command"] = gateway
            value["args"] = args
        elif key == remote.type_key:
            value[key] = "stdio"
        elif key not in url_keys and key != remote.headers_key:
            value[key] = item
    warnings = list(_env_warnings(entry))
    if headers:
        warnings.append(
            f"its {remote.headers_key} are now on the gateway's command line, where other local users "
            "can read them in the process list"
        )
    return WrapOutcome(Status.WRAPPED, value, warnings=tuple(warnings))


def remote_target(remote: RemoteStyle, entry: Mapping[str, JsonValue]) -> tuple[str, Literal["http", "sse"]] | None:
    """The URL a client connects to for `entry` and its transport as the client reads them (as install
    wraps it), or None for an entry without a URL or of a transport type the gateway does not know."""
    url_key = _url_key(remote, entry)
    if url_key is None:
        return None
    transport = _transport(remote, entry, url_key)
    return None if transport is None else (str(entry[url_key]), transport)


def _url_key(remote: RemoteStyle, entry: Mapping[str, JsonValue]) -> str | None:
    for key in (*remote.http_url_keys, *remote.sse_url_keys):
        if isinstance(entry.get(key), str) and entry[key]:
            return key
    return None


def _transport(remote: RemoteStyle, entry: Mapping[str, JsonValue], url_key: str) -> Literal["http", "sse"] | None:
    declared = entry.get(remote.type_key) if remote.type_key else None
    if isinstance(declared, str):
        kind = declared.lower()
        if kind in _HTTP_TYPES:
            return "http"
        return "sse" if kind == "sse" else None
    if declared is not None:
        return None
    if url_key in remote.sse_url_keys:
        return "sse"
    url = str(entry[url_key]).split("?", 1)[0].rstrip("/")
    return "sse" if url.endswith("/sse") else "http"


def _env_warnings(entry: Mapping[str, JsonValue]) -> tuple[str, ...]:
    env = entry.get("env")
    if not isinstance(env, dict):
        return ()
    # the client hands this env to the gateway process now: a project config could switch the gateway off
    reserved = sorted(key for key in env if key.upper().startswith(GATEWAY_ENV_PREFIX))
    if not reserved:
        return ()
    return (f"its env sets {', '.join(reserved)}, which the gateway reads as its own settings; review them",)


def unwrap_entry(
    spec: ClientSpec,
    entry: JsonValue,
    original: JsonValue | None = None,
    wrapped: JsonValue | None = None,
) -> UnwrapOutcome:
    """The server the entry wrapped. `original`/`wrapped` are the install record, when there is one.

    - Unchanged since install: the recorded original, exactly.
    - Edited since install but still a ``wrap`` command line: the server from the command line, with
      the user's edits to the other keys kept.
    - No longer a ``wrap`` command line: left as it is; the user has made it their own.
    """
    invocation = None
    if isinstance(entry, dict) and is_gateway_command(entry.get("command")):
        invocation = parse_invocation(entry.get("args"))
    if invocation is None or not isinstance(entry, dict):
        if original is None or same_json(entry, original):  # never wrapped, or put back by hand
            return UnwrapOutcome(Status.NOT_WRAPPED)
        return UnwrapOutcome(
            Status.LEFT, reason="changed by hand since install and no longer a 'wrap' command; left as it is"
        )
    if original is not None and wrapped is not None and same_json(entry, wrapped) and isinstance(original, dict):
        return UnwrapOutcome(Status.RESTORED, original, exact=True)
    if original is None and invocation.extra:
        # not installed by mcp-gateway (no record) and set up with options of its own: the user's doing
        return UnwrapOutcome(
            Status.LEFT,
            reason=f"runs 'mcp-gateway wrap' with options of its own ({' '.join(invocation.extra)}) and was not put "
            "there by install; left as it is",
        )
    recorded = original if isinstance(original, dict) else None
    status = Status.RESTORED_WITH_EDITS if recorded is not None else Status.RESTORED_FROM_COMMAND
    if invocation.command:
        return UnwrapOutcome(status, _restore_stdio(entry, invocation, recorded))
    if spec.remote is None:
        return UnwrapOutcome(Status.LEFT, reason=f"wraps a URL, which {spec.title} cannot connect to; left as it is")
    return UnwrapOutcome(status, _restore_remote(spec.remote, entry, invocation, recorded))


def _restore_stdio(entry: EntryValue, invocation: Invocation, recorded: EntryValue | None) -> EntryValue:
    command, *args = invocation.command
    # an entry that had no 'args' before install gets none back; without a record, empty args are dropped
    keep_args = bool(args) or (recorded is not None and "args" in recorded)
    value: EntryValue = {}
    for key, item in entry.items():
        if key == "command":
            value["command"] = command
            if keep_args:
                value["args"] = list(args)
        elif key != "args":
            value[key] = item
    return value


def _restore_remote(
    remote: RemoteStyle, entry: EntryValue, invocation: Invocation, recorded: EntryValue | None
) -> EntryValue:
    sse = invocation.transport == "sse"
    fallback = remote.sse_url_keys[0] if sse and remote.sse_url_keys else remote.http_url_keys[0]
    url_key = (_url_key(remote, recorded) if recorded is not None else None) or fallback
    restored: EntryValue = {url_key: invocation.url}
    had_headers = recorded is not None and remote.headers_key in recorded
    if invocation.headers or had_headers:
        restored[remote.headers_key] = dict(invocation.headers)
    value: EntryValue = {}
    for key, item in entry.items():
        if key == "command":
            value.update(restored)
        elif key == remote.type_key:
            fallback_type = "sse" if sse else "http"
            value[key] = recorded.get(key, fallback_type) if recorded is not None else fallback_type
        elif key != "args":
            value[key] = item
    return value
