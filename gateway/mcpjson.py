"""Reading server definitions from an mcp.json: Cursor / Claude Desktop ``mcpServers`` and VS Code ``servers``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .jsonc import JsoncError
from .jsonc import parse as parse_jsonc
from .specs import ServerSpec, StdioCommand
from .wrapping import wrapped_server

__all__ = ["check_prefixes", "load_servers", "parse_servers", "server_prefix"]

_ENV_REF = re.compile(r"\$\{(env:)?([A-Za-z_][A-Za-z0-9_]*)\}|\$\{/\}")
# the IDEs' own variables, which are no environment variables (Cursor and VS Code expand them)
_WORKSPACE_VARS = {"workspaceFolder", "workspaceRoot", "workspaceFolderBasename"}
_IDE_DIRS = {".cursor", ".vscode"}
_HTTP_TYPES = {"http", "streamable-http", "streamable_http", "streamablehttp", "streamableHttp"}


def load_servers(path: Path) -> list[ServerSpec]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as some editors write, is no JSON error
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such mcp.json; check --mcp-json-path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from exc
    try:
        data = parse_jsonc(text).to_python()
    except JsoncError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); fix the file") from exc
    return parse_servers(data, path)


def server_prefix(name: str) -> str:
    """The prefix run mode gives a server's tools, prompts and resources (`<prefix>__tool`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "server"


def check_prefixes(specs: list[ServerSpec], path: Path) -> None:
    """Refuse two servers whose names become the same prefix: their tools could not be told apart."""
    seen: dict[str, str] = {}
    for spec in specs:
        prefix = server_prefix(spec.name)
        if prefix in seen:
            raise ConfigError(
                f"{path}: the servers {seen[prefix]!r} and {spec.name!r} both become the prefix {prefix!r} "
                "(names keep letters, digits, '_', '.' and '-'); rename one of them"
            )
        seen[prefix] = spec.name


def _plain(value: object) -> bool:
    """A string, or a number written without quotes (it is passed on as its text)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _expand(value: str, where: str, path: Path | None = None) -> str:
    if "${input:" in value:
        raise ConfigError(
            f"{where}: '${{input:...}}' prompts are not supported here; put the value in the file "
            "or in an environment variable and use ${env:NAME}"
        )

    def substitute(match: re.Match[str]) -> str:
        name = match.group(2)
        if name is None:  # ${/}
            return os.sep
        if not match.group(1):
            if name == "userHome":
                return str(Path.home())
            if name == "pathSeparator":
                return os.sep
            if name in _WORKSPACE_VARS:
                return _workspace(name, where, path)
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name!r} is not set")
        return os.environ[name]

    return _ENV_REF.sub(substitute, value)


def _workspace(name: str, where: str, path: Path | None) -> str:
    """The workspace an IDE would put in ${workspaceFolder}: the folder holding the config's .cursor or
    .vscode directory."""
    folder = path.resolve().parent if path is not None else None
    if folder is None or folder.name not in _IDE_DIRS:
        raise ConfigError(
            f"{where}: ${{{name}}} is the IDE's own variable, and this mcp.json is not in a workspace's "
            ".cursor or .vscode folder to take it from; write the folder's path instead"
        )
    return folder.parent.name if name == "workspaceFolderBasename" else str(folder.parent)


def _is_gateway(entry: dict[str, Any]) -> bool:
    # A Lasso-style config lists the gateway itself next to the servers it fronts; fronting it would recurse.
    words = [str(entry.get("command", "")), *map(str, entry.get("args") or [])]
    return any(Path(word).name == "mcp-gateway" for word in words[:1]) or "--mcp-json-path" in words


def parse_servers(data: Any, path: Path) -> list[ServerSpec]:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object with 'mcpServers' (or 'servers')")
    servers = data.get("mcpServers") if data.get("mcpServers") is not None else data.get("servers")
    if servers is None and isinstance(data.get("mcp"), dict):
        servers = data["mcp"].get("servers")
    if not isinstance(servers, dict):
        raise ConfigError(f"{path}: no 'mcpServers' (Cursor, Claude) or 'servers' (VS Code) object found")
    # Lasso's layout: the gateway's own entry carries the servers it fronts in a nested "servers" map.
    nested = [
        entry["servers"]
        for entry in servers.values()
        if isinstance(entry, dict) and _is_gateway(entry) and isinstance(entry.get("servers"), dict)
    ]
    if nested:
        servers = {name: entry for group in nested for name, entry in group.items()}
    specs: list[ServerSpec] = []
    for name, given in servers.items():
        where = f"{path}: server {name!r}"
        entry = (wrapped_server(given) if isinstance(given, dict) else None) or given
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be an object with 'command' or 'url'")
        disabled = entry.get("disabled", False)
        if not isinstance(disabled, bool):
            raise ConfigError(f"{where}: 'disabled' must be true or false (without quotes), not {disabled!r}")
        if disabled or (_is_gateway(entry) and entry is given):  # a gateway entry that fronts no one server
            continue
        kind = str(entry.get("type") or entry.get("transport") or "").strip()
        url = entry.get("url") or entry.get("serverUrl")
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict):
            raise ConfigError(f"{where}: 'headers' must be an object")
        if not all(_plain(v) for v in headers.values()):
            raise ConfigError(f"{where}: 'headers' must map names to strings")
        header_items = tuple((str(k), _expand(str(v), where, path)) for k, v in headers.items())
        if kind == "stdio" and url and not entry.get("command"):
            raise ConfigError(f"{where}: type 'stdio' needs a 'command'; for a 'url', use type http or sse")
        if url and kind != "stdio":
            expanded_url = _expand(url, where, path) if isinstance(url, str) else ""
            if not expanded_url.startswith(("http://", "https://")):
                raise ConfigError(f"{where}: 'url' must be an http:// or https:// URL, not {url!r}")
            transport: Literal["http", "sse"] = (
                "sse" if kind == "sse" or (not kind and str(url).rstrip("/").endswith("/sse")) else "http"
            )
            if kind and kind != "sse" and kind not in _HTTP_TYPES:
                raise ConfigError(f"{where}: unknown type {kind!r}; use stdio, http or sse")
            specs.append(ServerSpec(name=name, url=expanded_url, transport=transport, headers=header_items))
            continue
        command = entry.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"{where}: needs a 'command' (stdio) or a 'url' (remote)")
        if kind and kind != "stdio":
            raise ConfigError(f"{where}: type {kind!r} does not go with a 'command'; use stdio, or a 'url' for http")
        args = entry.get("args") or []
        if not isinstance(args, list) or not all(_plain(a) for a in args):
            raise ConfigError(f"{where}: 'args' must be a list of strings")
        env = entry.get("env") or {}
        if not isinstance(env, dict) or not all(_plain(v) for v in env.values()):
            raise ConfigError(f"{where}: 'env' must be an object of strings")
        cwd = entry.get("cwd")
        expanded_cwd = str(path.parent.resolve())  # a server without a cwd runs beside its config
        if cwd is not None:
            if not isinstance(cwd, str) or not cwd.strip():
                raise ConfigError(f"{where}: 'cwd' must be a directory path (a string)")
            expanded_cwd = _expand(cwd, where, path)
            if not Path(expanded_cwd).is_dir():
                raise ConfigError(f"{where}: 'cwd' {cwd!r} is not an existing directory")
        specs.append(
            ServerSpec(
                name=name,
                stdio=StdioCommand(
                    command=_expand(command, where, path),
                    args=tuple(_expand(str(a), where, path) for a in args),
                    env=tuple((str(k), _expand(str(v), where, path)) for k, v in env.items()),
                    cwd=expanded_cwd,
                ),
            )
        )
    if not specs:
        raise ConfigError(f"{path}: no enabled servers to front")
    return specs
