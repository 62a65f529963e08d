"""The servers configured in IDE clients, as `ServerSpec`s (for ``scan`` and ``doctor``).

A wrapped entry (``mcp-gateway wrap ... -- CMD``) is read back to the server it wraps, so the scan
looks at the real server and the doctor can tell both apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .clientconfig import list_entries, read_config
from .clients import ClientName, ConfigLocation, Environment, RemoteStyle, all_locations
from .errors import ConfigError
from .specs import ServerSpec, StdioCommand
from .wrapping import remote_target, wrapped_server

__all__ = ["ClientServer", "client_server_specs", "configured_servers"]


@dataclass(frozen=True)
class ClientServer:
    location: ConfigLocation
    name: str
    entry: Any
    wrapped: bool
    spec: ServerSpec | None  # the real server behind the entry; None if the entry is not understood
    problem: str | None = None


def _spec(name: str, entry: Mapping[str, Any], cwd: Path, remote: RemoteStyle | None = None) -> ServerSpec | None:
    target = remote_target(remote, entry) if remote is not None else None
    url = target[0] if target else entry.get("url") or entry.get("serverUrl") or entry.get("httpUrl")
    if isinstance(url, str):
        # as the client reads the entry (its own keys and type names), as install wraps it
        transport: Literal["http", "sse"] = (
            target[1] if target else "sse" if entry.get("type") == "sse" or url.rstrip("/").endswith("/sse") else "http"
        )
        headers = entry.get("headers") or entry.get("http_headers") or {}
        return ServerSpec(
            name=name,
            url=url,
            transport=transport,
            headers=tuple((str(k), str(v)) for k, v in headers.items()) if isinstance(headers, dict) else (),
        )
    command = entry.get("command")
    if not isinstance(command, str):
        return None
    args = [str(a) for a in entry.get("args") or []] if isinstance(entry.get("args"), list) else []
    raw_env = entry.get("env")
    env: dict[str, Any] = raw_env if isinstance(raw_env, dict) else {}
    return ServerSpec(
        name=name,
        stdio=StdioCommand(
            command, tuple(args), tuple((str(k), str(v)) for k, v in env.items()), cwd=str(entry.get("cwd") or cwd)
        ),
    )


def configured_servers(
    names: tuple[ClientName, ...] = tuple(ClientName), project: Path | None = None
) -> list[ClientServer]:
    env = Environment.from_os(project)
    found: list[ClientServer] = []
    read: set[tuple[str, Path]] = set()
    for location in all_locations(env, names):
        key = (location.client.name, location.path.resolve())
        if key in read:  # the project is the home folder: its project config is the user config
            continue
        read.add(key)
        document = read_config(location)
        if document is None:
            continue
        for entry in list_entries(document):
            value = entry.value
            if not isinstance(value, dict):
                found.append(ClientServer(location, entry.name, value, False, None, "the entry is not an object"))
                continue
            unwrapped = wrapped_server(value)
            wrapped = unwrapped is not None
            real: Mapping[str, Any] = unwrapped if unwrapped is not None else value
            spec = _spec(entry.name, real, env.project, None if wrapped else location.client.remote)
            found.append(
                ClientServer(
                    location,
                    entry.name,
                    value,
                    wrapped,
                    spec,
                    None if spec else "no 'command' or 'url' the gateway understands",
                )
            )
    return found


def client_server_specs(client: str, project: Path | None = None) -> list[ServerSpec]:
    try:
        name = ClientName(client)
    except ValueError as exc:
        raise ConfigError(f"unknown client {client!r}; use one of {', '.join(c.value for c in ClientName)}") from exc
    servers = [server.spec for server in configured_servers((name,), project) if server.spec is not None]
    if not servers:
        raise ConfigError(f"no servers configured for {client}; nothing to scan")
    return servers
